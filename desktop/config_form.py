"""An "Advanced…" form generated from a hyperparameter dataclass: one row per field, its docstring as tooltip.

    form = ConfigForm(RewardConfig(...), hidden={"base_model"})
    form.values()            # {"learning_rate": 1e-5, ...}, typed like the dataclass fields
    form.set_values(config)  # show another config (e.g. after the preset changed)

Nested dataclass fields (PolicyConfig.reward) become a titled group with their own rows; their values
come back as a nested dict. The form edits values only; validation is the dataclass's own.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from typing import Any, Literal, Optional, Union, get_args, get_origin

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

__all__ = ["field_docs", "ConfigForm", "ConfigDialog", "changed_fields"]


def field_docs(cls) -> dict[str, str]:
    """{field name: the string literal written under it} (attribute docstrings, read from the source)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a hint we cannot resolve falls back to the value's type
        return {}


def _unwrap_optional(tp) -> tuple[Any, bool]:
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _fmt_float(v: float) -> str:
    return repr(float(v)) if abs(v) >= 1e-4 or v == 0 else f"{v:.0e}".replace("e-0", "e-")


def _label(name: str) -> str:
    return name.replace("_", " ")


class _Field:
    """One editable value: a widget plus how to read and write it."""

    def __init__(self, name: str, tp, value, doc: str):
        self.name, self.doc = name, doc
        base, self.optional = _unwrap_optional(tp)
        if base is Any or base is None:
            base = type(value) if value is not None else str
        self.base = base
        origin = get_origin(base)
        if origin is Literal:
            self.kind = "choice"
            self.widget = QComboBox()
            self.choices = list(get_args(base))
            self.widget.addItems([str(c) for c in self.choices])
        elif base is bool:
            self.kind = "bool"
            self.widget = QCheckBox()
        elif base is int and not self.optional:
            self.kind = "int"
            self.widget = QSpinBox()
            self.widget.setRange(-1_000_000_000, 1_000_000_000)
            self.widget.setGroupSeparatorShown(True)
        elif origin in (list, tuple) or base in (list, tuple):
            self.kind = "list"
            self.widget = QLineEdit()
            self.widget.setPlaceholderText("comma-separated; empty for none")
            inner = get_args(base)
            self.item_type = inner[0] if inner and inner[0] is not Ellipsis else str
            self.container = tuple if (origin or base) is tuple else list
        else:  # float, str, Optional[int] / Optional[float]: typed text ("1e-5" is easier to type than spins)
            self.kind = "float" if base is float else "int" if base is int else "str"
            self.widget = QLineEdit()
            if self.optional:
                self.widget.setPlaceholderText("empty = none")
        self.widget.setObjectName(f"field_{name}")
        tip = f"<b>{name}</b><br>{doc}" if doc else name
        self.widget.setToolTip(tip)
        self.set(value)

    def set(self, value) -> None:
        w = self.widget
        if self.kind == "choice":
            w.setCurrentIndex(self.choices.index(value) if value in self.choices else 0)
        elif self.kind == "bool":
            w.setChecked(bool(value))
        elif self.kind == "int" and isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif self.kind == "list":
            w.setText("" if value is None else ", ".join(str(v) for v in value))
        elif value is None:
            w.setText("")
        elif self.kind == "float":
            w.setText(_fmt_float(value))
        else:
            w.setText(str(value))

    def get(self):
        w = self.widget
        if self.kind == "choice":
            return self.choices[w.currentIndex()]
        if self.kind == "bool":
            return w.isChecked()
        if self.kind == "int" and isinstance(w, QSpinBox):
            return w.value()
        text = w.text().strip()
        if self.kind == "list":
            if not text:
                return None if self.optional else self.container()
            return self.container(self.item_type(t.strip()) for t in text.split(",") if t.strip())
        if not text and self.optional:
            return None
        if self.kind == "float":
            return float(text)
        if self.kind == "int":
            return int(text)
        return text

    def valid(self) -> bool:
        try:
            self.get()
            return True
        except (TypeError, ValueError):
            return False


class ConfigForm(QWidget):
    """Every field of a dataclass instance, editable; nested dataclasses as groups."""

    def __init__(self, config, hidden: set[str] = frozenset(), parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.cls = type(config)
        self.hidden = set(hidden)
        self.fields: dict[str, _Field] = {}
        self.groups: dict[str, "ConfigForm"] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        layout.addLayout(form)
        docs, hints = field_docs(self.cls), _hints(self.cls)
        for f in dataclasses.fields(self.cls):
            if f.name in self.hidden:
                continue
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                box = QGroupBox(f"{_label(f.name)} — {docs.get(f.name, '')}".rstrip(" —"))
                inner = QVBoxLayout(box)
                sub = ConfigForm(value, parent=box)
                inner.addWidget(sub)
                self.groups[f.name] = sub
                layout.addWidget(box)
                continue
            field = _Field(f.name, hints.get(f.name, type(value)), value, docs.get(f.name, ""))
            label = QLabel(_label(f.name))
            label.setToolTip(field.widget.toolTip())
            form.addRow(label, field.widget)
            self.fields[f.name] = field

    def values(self) -> dict[str, Any]:
        out = {name: field.get() for name, field in self.fields.items()}
        out.update({name: sub.values() for name, sub in self.groups.items()})
        return out

    def invalid(self) -> list[str]:
        bad = [name for name, field in self.fields.items() if not field.valid()]
        for name, sub in self.groups.items():
            bad += [f"{name}.{b}" for b in sub.invalid()]
        return bad

    def set_values(self, config) -> None:
        for name, field in self.fields.items():
            field.set(getattr(config, name))
        for name, sub in self.groups.items():
            sub.set_values(getattr(config, name))

    def widget_for(self, name: str) -> QWidget:
        head, _, rest = name.partition(".")
        return self.groups[head].widget_for(rest) if rest else self.fields[name].widget


def changed_fields(values: dict, reference) -> dict:
    """The entries of `values` that differ from the dataclass instance `reference` (nested: recursively)."""
    out = {}
    for key, value in values.items():
        ref = getattr(reference, key, None)
        if dataclasses.is_dataclass(ref) and isinstance(value, dict):
            sub = changed_fields(value, ref)
            if sub:
                out[key] = sub
        elif value != ref:
            out[key] = value
    return out


class ConfigDialog(QDialog):
    """The Advanced… dialog: a scrollable ConfigForm with OK, Cancel and "Reset to preset"."""

    def __init__(
        self,
        title: str,
        config,
        preset_config=None,
        hidden: set[str] = frozenset(),
        note: str = "",
        parent: Optional[QWidget] = None,
    ):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(620, 640)
        self.preset_config = preset_config
        layout = QVBoxLayout(self)
        if note:
            lbl = QLabel(note)
            lbl.setWordWrap(True)
            layout.addWidget(lbl)
        self.form = ConfigForm(config, hidden=hidden)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        layout.addWidget(scroll, 1)
        self.error = QLabel()
        self.error.setStyleSheet("color: #d9534f;")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        if preset_config is not None:
            reset = QPushButton("Reset to preset")
            reset.clicked.connect(lambda: self.form.set_values(self.preset_config))
            buttons.addButton(reset, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        bad = self.form.invalid()
        if bad:
            self.error.setText("Not a valid value: " + ", ".join(bad))
            self.form.widget_for(bad[0]).setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self.accept()

    def values(self) -> dict[str, Any]:
        return self.form.values()
