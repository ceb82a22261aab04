"""The Train page: the Reward model and Policy tabs; jobs run with transformers imported first."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from core.ops.ml_imports import ml_job
from desktop.pages.base import Page
from desktop.pages.train.policy_tab import PolicyTab
from desktop.pages.train.reward_tab import RewardTab
from desktop.worker import JobHandle


class TrainPage(Page):
    title = "Train"

    def __init__(self, app_context, parent: Optional[QWidget] = None):
        super().__init__(app_context, parent)
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.reward = RewardTab(self)
        self.policy = PolicyTab(self)
        self.tabs.addTab(self.reward, "Reward model")
        self.tabs.addTab(self.policy, "Policy")
        layout.addWidget(self.tabs)
        self._shown_epoch = None
        self._stale = False  # the project's content changed while this page was hidden
        if hasattr(app_context, "content_changed"):
            app_context.content_changed.connect(self._content_changed)

    def run_job(self, make_job, title: str = "", **callbacks) -> JobHandle:
        if not callable(make_job):  # an already-built generator (call_job)
            job = make_job
            make_job = lambda _cancel: job  # noqa: E731
        return super().run_job(ml_job(make_job), title, **callbacks)

    def set_project(self, project) -> None:
        super().set_project(project)
        self.reward.set_project(project)
        self.policy.set_project(project)
        self._shown_epoch = self.reward.epoch if self.isVisible() else None

    def notify_run_ended(self) -> None:
        """A run of either tab ended (finished, failed or cancelled): every page listing runs follows,
        this one included (the Policy tab's reward-run choice and pre-flight)."""
        if hasattr(self.app_context, "notify_changed"):
            self.app_context.notify_changed("run")

    def _content_changed(self, _what: str) -> None:
        """Judgments, imports and runs change the pre-flight figures: re-check now if shown, else on show."""
        if self.project is None:
            return
        if not self.isVisible():
            self._stale = True
            return
        if not self.reward.training:
            self.reward.refresh()
        if not self.policy.training:
            self.policy.refresh()

    def showEvent(self, event) -> None:
        # Models and rankings change on other pages: re-read them when the page comes back into view
        # (also on the first show after the project opened, when something changed since).
        if self.project is not None and (self._shown_epoch == self.reward.epoch or self._stale):
            if not self.reward.training:
                self.reward.refresh()
            if not self.policy.training:
                self.policy.refresh()
        self._shown_epoch = self.reward.epoch
        self._stale = False
        super().showEvent(event)
