"""A read-only view of Markdown (code blocks included) or chat messages shown as a dialogue."""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def chat_markdown(messages: list[dict]) -> str:
    """Chat messages as one Markdown document: each turn under its speaker, separated by rules."""
    parts = []
    for m in messages:
        role = ROLE_NAMES.get(m.get("role", ""), str(m.get("role", "")).title() or "Message")
        parts.append(f"**{role}:**\n\n{m.get('content', '')}")
    return "\n\n---\n\n".join(parts)


class MarkdownView(QTextBrowser):
    """Never takes keyboard focus (the Annotate page owns the keys); text stays selectable by mouse,
    long texts scroll. Links are not followed: nothing leaves the machine."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.document().setDocumentMargin(6)

    def show_text(self, text: str) -> None:
        self.setMarkdown(text)
        self.verticalScrollBar().setValue(0)

    def show_prompt(self, prompt) -> None:
        """A prompt: a string (Markdown) or a list of chat messages."""
        self.show_text(chat_markdown(prompt) if isinstance(prompt, list) else str(prompt))
