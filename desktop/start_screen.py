"""Start screen: new project, open, open demo, recent projects (paths only)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.project import SUFFIX


DEMO_NOTE = (
    "The demo is a small support-reply project with candidates from a tiny built-in model; its passphrase is “demo”."
)


class StartScreen(QWidget):
    new_requested = Signal()
    open_requested = Signal()
    demo_requested = Signal()
    recent_chosen = Signal(str)
    recent_removed = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(1)
        title = QLabel("RLHF Studio")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        title.setFont(font)
        tagline = QLabel(
            "Rank your model's answers, train a reward model, fine-tune, evaluate blind. "
            "Offline, on this machine; every project is encrypted."
        )
        tagline.setWordWrap(True)
        column.addWidget(title)
        column.addWidget(tagline)
        column.addSpacing(18)

        buttons = QHBoxLayout()
        self.new_button = QPushButton("New project…")
        self.open_button = QPushButton("Open project…")
        self.demo_button = QPushButton("Open demo")
        for b in (self.new_button, self.open_button, self.demo_button):
            b.setMinimumHeight(38)
            b.setMinimumWidth(150)
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.new_button.clicked.connect(self.new_requested)
        self.open_button.clicked.connect(self.open_requested)
        self.demo_button.clicked.connect(self.demo_requested)
        column.addLayout(buttons)
        self.demo_note = QLabel(DEMO_NOTE)
        self.demo_note.setWordWrap(True)  # readable, not greyed out: it holds the demo's passphrase
        column.addWidget(self.demo_note)
        column.addSpacing(18)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        column.addWidget(line)
        recent_label = QLabel("<b>Recent projects</b>")
        column.addWidget(recent_label)
        self.recent = QListWidget()
        self.recent.setMinimumHeight(180)
        self.recent.itemActivated.connect(self._activated)
        self.recent.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.recent.customContextMenuRequested.connect(self._menu)
        self.empty_note = QLabel("None yet. Projects you open appear here (only their location is remembered).")
        self.empty_note.setWordWrap(True)
        column.addWidget(self.recent)
        column.addWidget(self.empty_note)
        column.addStretch(2)
        holder = QWidget()
        holder.setLayout(column)
        holder.setMinimumWidth(620)
        holder.setMaximumWidth(760)
        outer.addWidget(holder, 4)
        outer.addStretch(1)

    def set_busy(self, text: str = "") -> None:
        """While the demo (or a project) is being made: say so here, not only in the status bar."""
        for b in (self.new_button, self.open_button, self.demo_button):
            b.setEnabled(not text)
        self.demo_note.setText(f"<b>{text}</b>" if text else DEMO_NOTE)

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for p in paths:
            path = Path(p)
            exists = (path / "key.json").exists()
            item = QListWidgetItem(
                f"{path.name.removesuffix(SUFFIX)}    —    {path.parent}" + ("" if exists else "    (missing)")
            )
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            if not exists:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.recent.addItem(item)
        self.recent.setVisible(bool(paths))
        self.empty_note.setVisible(not paths)

    def _activated(self, item: QListWidgetItem) -> None:
        self.recent_chosen.emit(item.data(Qt.ItemDataRole.UserRole))

    def _menu(self, pos) -> None:
        item = self.recent.itemAt(pos)
        if item is None:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._activated(item))
        menu.addAction("Remove from list", lambda: self.recent_removed.emit(item.data(Qt.ItemDataRole.UserRole)))
        menu.exec(self.recent.mapToGlobal(pos))
