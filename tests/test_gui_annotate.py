"""The Annotate page driven with the keyboard (pytest-qt, offscreen) on real encrypted projects:
what was typed is what is stored, after closing and reopening the project."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QListWidget, QPlainTextEdit, QTextEdit

from core.project import Project
from desktop.pages.annotate import AnnotatePage
from tests.annotate_helpers import PASSPHRASE, make_project

K = Qt.Key


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One project built per module (Argon2id costs ~1 s a time); each test gets its own copy."""
    return make_project(tmp_path_factory.mktemp("annotate-template"), n=8, k=4)


@pytest.fixture
def setup(tmp_path, qtbot, template):
    src, pids = template
    path = tmp_path / src.name
    shutil.copytree(src, path)
    proj = Project.open(path, PASSPHRASE)
    page = AnnotatePage()
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.set_project(proj)
    page.session.consistency_share = 0.0  # deterministic queue; re-checks are tested in core
    yield page, proj, path, pids
    page.set_project(None)
    if not proj.closed:
        proj.close()


def keys(qtbot, page, seq):
    for k in seq:
        if isinstance(k, str):
            qtbot.keyClicks(page, k)
        else:
            qtbot.keyClick(page, k)


def reopen(page, proj, path):
    page.set_project(None)
    proj.close()
    return Project.open(path, PASSPHRASE)


def shown_ids(page):
    return [r.id for r in page.item.candidates]


def test_rank_five_with_keyboard_then_reopen(setup, qtbot):
    page, proj, path, pids = setup
    expected = []
    # a tie ("2 = 4"), a backspace, and Enter with one left (it goes last)
    plans = [
        ([K.Key_2, "=", K.Key_4, K.Key_1, K.Key_Return], [[1, 3], [0], [2]]),
        ([K.Key_1, K.Key_2, K.Key_3, K.Key_4, K.Key_Enter], [[0], [1], [2], [3]]),
        ([K.Key_4, K.Key_3, K.Key_Backspace, K.Key_1, K.Key_2, K.Key_Return], [[3], [0], [1], [2]]),
        ([K.Key_3, "t", K.Key_1, "=", K.Key_2, K.Key_Return], [[2, 0, 1], [3]]),
        ([K.Key_1, K.Key_2, K.Key_3, K.Key_Return], [[0], [1], [2], [3]]),
    ]
    # when the next item is shown, its predecessor's judgment is already committed: another
    # connection (which sees only committed data) counts it
    other = sqlite3.connect(path / "project.db")
    committed_when_shown = []

    def count_committed(_item):
        committed_when_shown.append(
            other.execute("SELECT count(*) FROM judgments WHERE status='current'").fetchone()[0]
        )

    page.item_shown.connect(count_committed)
    for seq, tiers in plans:
        ids = shown_ids(page)
        expected.append((page.item.prompt_id, [[ids[i] for i in t] for t in tiers]))
        keys(qtbot, page, seq)
    page.item_shown.disconnect(count_committed)
    other.close()
    assert committed_when_shown == [1, 2, 3, 4, 5]
    assert [p for p, _ in expected] == pids[:5]  # queue: unranked, in project order
    assert page.item.prompt_id == pids[5]
    assert page.session.progress.judged == 5
    assert "5 of 8 judged" in page.progress_label.text()
    proj = reopen(page, proj, path)
    try:
        got = [(j.prompt_id, j.tiers) for j in proj.judgments(kind="ranking")]
        assert got == expected
        # reopening the page continues after the ranked items
        page.set_project(proj)
        assert page.item.prompt_id == pids[5]
    finally:
        page.set_project(None)
        proj.close()


def test_pairwise_five_with_keyboard_then_reopen(setup, qtbot):
    page, proj, path, pids = setup
    qtbot.keyClick(page, K.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert page.mode == "pairwise" and page.mode_stack.currentIndex() == 1
    expected = []
    for key, result in (("a", "a"), ("b", "b"), ("t", "tie"), ("x", "both_bad"), ("b", "b")):
        item = page.item
        a, b = item.candidates[item.pair[0]].id, item.candidates[item.pair[1]].id
        # the two cards shown are labelled A and B, the others hidden
        assert page._cards[item.pair[0]].number.text() == "A" and page._cards[item.pair[1]].number.text() == "B"
        assert sum(c.isVisible() for c in page._cards) == 2
        expected.append((item.prompt_id, a, b, result))
        qtbot.keyClicks(page, key)
    proj = reopen(page, proj, path)
    with proj:
        got = [(j.prompt_id, j.a, j.b, j.choice) for j in proj.judgments(kind="pairwise")]
        assert got == expected and [g[0] for g in got] == pids[:5]


def test_rating_five_with_keyboard_then_reopen(setup, qtbot):
    page, proj, path, pids = setup
    qtbot.keyClick(page, K.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert page.mode == "rating"
    expected = []
    for n in range(5):
        ids = shown_ids(page)
        if n == 0:  # select with Tab / arrows, rate out of order
            keys(qtbot, page, [K.Key_Tab, K.Key_Tab, K.Key_6])
            assert page.ratings == {2: 6} and page.selected == 3  # moved on to the next unrated card
            keys(qtbot, page, [K.Key_Backtab, K.Key_Left, K.Key_2])
            assert page.ratings == {2: 6, 1: 2} and page.selected == 3
            keys(qtbot, page, [K.Key_Right, K.Key_5])  # Right wraps to the first card
            assert page.selected == 3
            keys(qtbot, page, [K.Key_1])
            ratings = {0: 5, 1: 2, 2: 6, 3: 1}
            assert page.ratings == ratings
        else:  # 1..7 in a row: each moves to the next card
            keys(qtbot, page, [K.Key_7, K.Key_5, K.Key_3, K.Key_1])
            ratings = {0: 7, 1: 5, 2: 3, 3: 1}
            assert page.ratings == ratings
        expected.append((page.item.prompt_id, {ids[i]: float(v) for i, v in ratings.items()}))
        qtbot.keyClick(page, K.Key_Return)
    proj = reopen(page, proj, path)
    with proj:
        got = [(j.prompt_id, j.ratings) for j in proj.judgments(kind="rating")]
        assert got == expected and [g[0] for g in got] == pids[:5]


def test_rating_selection_keys(setup, qtbot):
    page, proj, path, pids = setup
    page.set_mode("rating")
    keys(qtbot, page, [K.Key_Tab, K.Key_Tab])
    assert page.selected == 2 and page._cards[2].selected
    keys(qtbot, page, [K.Key_6])
    assert page.ratings == {2: 6} and page.selected == 3
    keys(qtbot, page, [K.Key_Backtab, K.Key_Backspace])
    assert page.ratings == {} and page.selected == 2
    qtbot.keyClick(page, K.Key_Return)  # incomplete: a message, nothing recorded
    assert "missing" in page.message.text() and proj.judgments() == []
    page._cards[0].rated.emit(0, 4)  # a click on a card's rating button
    assert page.ratings == {0: 4}


def test_backspace_and_ties_in_the_builder_and_list(setup, qtbot):
    page, *_ = setup
    keys(qtbot, page, [K.Key_3, K.Key_1, K.Key_Backspace])
    assert page.builder.tiers == [[2]]
    assert page._cards[0].badge.isHidden() and page._cards[2].badge.text() == "#1"
    keys(qtbot, page, ["=", K.Key_4])
    assert page.builder.tiers == [[2, 3]]
    assert "(tie)" in page._cards[3].badge.text()
    keys(qtbot, page, [K.Key_1])
    assert page.builder.tiers == [[2, 3], [0]]
    rows = [page.rank_list.item(i).text() for i in range(page.rank_list.count())]
    assert rows[0].startswith("1.  Candidate 3 (tie)") and rows[1].startswith("1.  Candidate 4 (tie)")
    assert rows[2].startswith("2.  Candidate 1") and "not placed" in rows[3]
    keys(qtbot, page, [K.Key_3])  # already placed: a message, nothing changes
    assert "already placed" in page.message.text() and page.builder.tiers == [[2, 3], [0]]


def test_drag_and_drop_reorders(setup, qtbot):
    page, proj, path, pids = setup
    keys(qtbot, page, [K.Key_1, K.Key_2, K.Key_3, K.Key_4])
    model = page.rank_list.model()
    assert model.moveRow(QModelIndex(), 3, QModelIndex(), 0)  # drag the last to the top
    qtbot.waitUntil(lambda: page.builder.tiers == [[3], [0], [1], [2]], timeout=30_000)
    # ticking the box on the second row ties it with the first
    page.rank_list.item(1).setCheckState(Qt.CheckState.Checked)
    assert page.builder.tiers == [[3, 0], [1], [2]]
    ids = shown_ids(page)
    qtbot.keyClick(page, K.Key_Return)
    assert proj.judgments()[0].tiers == [[ids[3], ids[0]], [ids[1]], [ids[2]]]


def test_undo_restores_the_previous_state(setup, qtbot):
    page, proj, path, pids = setup
    ids = shown_ids(page)
    keys(qtbot, page, [K.Key_1, K.Key_2, K.Key_3, K.Key_Return])
    assert page.item.prompt_id == pids[1]
    first = proj.judgments()[0]
    # revisit and re-rank: supersedes; Ctrl+Z brings the first ranking back
    keys(qtbot, page, [","])
    assert page.item.prompt_id == pids[0] and page.builder.tiers == [[0], [1], [2], [3]]  # prefilled
    page.builder.clear()
    keys(qtbot, page, [K.Key_4, K.Key_3, K.Key_2, K.Key_Return])
    assert proj.judgments()[0].tiers == [[ids[3]], [ids[2]], [ids[1]], [ids[0]]]
    qtbot.keyClick(page, K.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.item.prompt_id == pids[0]
    assert [j.id for j in proj.judgments()] == [first.id]
    assert page.builder.tiers == [[0], [1], [2], [3]]  # the first ranking, prefilled again
    qtbot.keyClick(page, K.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert proj.judgments() == [] and page.item.prompt_id == pids[0] and page.builder.tiers == []
    assert page.session.progress.judged == 0
    assert not page.undo_button.isEnabled()
    # skip, then undo the skip
    qtbot.keyClicks(page, "s")
    assert page.item.prompt_id == pids[1] and proj.prompt_status()[0][3] == "skipped"
    qtbot.keyClick(page, K.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert page.item.prompt_id == pids[0] and proj.prompt_status()[0][3] == "unranked"


def test_flags_comment_navigation_overlay(setup, qtbot):
    page, proj, path, pids = setup
    qtbot.keyClick(page, K.Key_F1)
    qtbot.keyClick(page, K.Key_F3)
    qtbot.keyClick(page, K.Key_F3)
    qtbot.keyClick(page, K.Key_F2)
    qtbot.keyClicks(page, "c")
    assert page.tabs.currentIndex() == 0
    qtbot.keyClicks(page.comment, "too long")  # typed into the field: not ranking keys
    assert page.builder.tiers == []
    qtbot.keyClick(page.comment, K.Key_Escape)
    keys(qtbot, page, [K.Key_2, K.Key_1, K.Key_3, K.Key_Return])
    j = proj.judgments()[0]
    assert j.flags == ("harmful", "toxic") and j.comment == "too long"
    # the next item starts clean
    assert page.comment.text() == "" and not any(cb.isChecked() for cb in page.flag_checks)
    # next / previous without judging
    keys(qtbot, page, ["."])
    assert page.item.prompt_id == pids[2]
    qtbot.keyClick(page, K.Key_Left, Qt.KeyboardModifier.AltModifier)
    assert page.item.prompt_id == pids[1]
    keys(qtbot, page, [","])
    assert page.item.prompt_id == pids[0] and page.comment.text() == "too long"  # prefilled
    assert page.flag_checks[0].isChecked() and page.flag_checks[1].isChecked()
    # ? shows every shortcut; any key closes it without acting
    qtbot.keyClicks(page, "?")
    assert page.overlay.isVisible()
    text = page.overlay.label.text()
    for needle in ("Backspace", "Ctrl+Z", "F1", "both bad", "1 … 7", "Enter"):
        assert needle in text
    qtbot.keyClick(page, K.Key_1)
    assert not page.overlay.isVisible() and page.builder.tiers == [[1], [0], [2], [3]]  # prefill unchanged


def test_diff_and_guidelines_and_chat(setup, qtbot):
    page, proj, path, pids = setup
    qtbot.keyClicks(page, "d")
    assert page.center_stack.currentWidget() is page.diff_view
    html = page.diff_view.browser.toHtml()
    assert "More detail follows" in page.diff_view.browser.toPlainText() and "line-through" in html
    qtbot.keyClick(page, K.Key_Escape)
    assert page.center_stack.currentWidget() is page.cards_widget
    # guidelines: shown, edited, saved encrypted in the project
    assert "concise" in page.guidelines_view.toPlainText()
    qtbot.keyClicks(page, "g")
    assert page.tabs.currentIndex() == 1
    page.guidelines_button.click()
    page.guidelines_edit.setPlainText("Be **kind**.")
    page.guidelines_button.click()
    assert proj.get_setting("guidelines") == "Be **kind**." and page.guidelines_view.toPlainText().strip() == "Be kind."
    # a chat prompt (the 4th) is shown as a dialogue
    keys(qtbot, page, [".", ".", "."])
    assert page.item.prompt.is_chat
    shown = page.prompt_view.toPlainText()
    assert "System:" in shown and "User:" in shown and "You are terse." in shown


def test_lock_clears_every_decrypted_text(setup, qtbot):
    page, proj, path, pids = setup
    qtbot.keyClicks(page, "c")
    qtbot.keyClicks(page.comment, "secret note")
    qtbot.keyClick(page.comment, K.Key_Escape)
    keys(qtbot, page, [K.Key_1, "d"])
    secrets = [proj.prompt(p).prompt for p in pids[:2]] + [r.text for r in proj.responses(pids[0])]
    secrets = [s if isinstance(s, str) else s[-1]["content"] for s in secrets]
    page.set_project(None)
    texts = []
    for w in page.findChildren(QTextEdit) + page.findChildren(QPlainTextEdit):
        texts.append(w.toPlainText())
    for w in page.findChildren(QLineEdit):
        texts.append(w.text())
        w.undo()  # nothing to bring back either
        texts.append(w.text())
    for w in page.findChildren(QLabel):
        texts.append(w.text())
    for w in page.findChildren(QListWidget):
        texts += [w.item(i).text() for i in range(w.count())]
    blob = "\n".join(texts)
    for s in secrets + ["secret note", "concise", "Answer", "Task 0"]:
        assert s[:20] not in blob
    assert page.session is None and page.item is None
    # keys do nothing while locked
    keys(qtbot, page, [K.Key_1, K.Key_Return])
    assert proj.judgments() == []


def test_consistency_recheck_through_the_page(setup, qtbot):
    page, proj, path, pids = setup
    keys(qtbot, page, [K.Key_1, K.Key_2, K.Key_3, K.Key_Return])  # judge two items
    keys(qtbot, page, [K.Key_1, K.Key_2, K.Key_3, K.Key_Return])
    page.session.history = page.session.history[-1:]  # let the judged items be re-shown
    page.session.index = 0
    page.session.consistency_share = 1.0
    keys(qtbot, page, [K.Key_1, K.Key_2, K.Key_3, K.Key_Return])
    item = page.item
    assert item.purpose == "consistency" and item.prompt_id in pids[:2]
    # blind: the page shows it like any other item (no marker), in a fresh order
    assert "re-check" not in page.progress_label.text().lower()
    original = proj.judgments(prompt_id=item.prompt_id)[0]
    best = original.tiers[0][0]
    first = item.index_of(best)
    rest = [i for i in range(4) if i != first]
    keys(qtbot, page, [K.Key_1 + first] + [K.Key_1 + i for i in rest[:2]] + [K.Key_Return])
    assert page.item.purpose == "annotation"
    assert len(proj.judgments(purpose="consistency")) == 1
    assert proj.judgments(prompt_id=item.prompt_id)[0].id == original.id  # the original stays current
    qtbot.keyClicks(page, "g")
    assert "agreed with yourself on 100%" in page.consistency_label.text()
