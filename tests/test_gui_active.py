"""The Annotate page's queue order, model check, review list and quality tags (real widgets, offscreen,
real encrypted projects, real background jobs). The model's view is never on screen before the expert
has judged the prompt it is about."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QListWidget

from core.active import stored_order
from desktop.pages.annotate import AnnotatePage
from tests.test_active import GOOD, add_uncertain, build

K = Qt.Key


def goodness(text: str) -> int:
    return sum(text.count(w) for w in GOOD)


def visible_text(page) -> str:
    texts = [w.text() for w in page.findChildren(QLabel) if w.isVisibleTo(page)]
    texts += [w.text() for w in page.findChildren(QAbstractButton) if w.isVisibleTo(page)]
    for lst in page.findChildren(QListWidget):
        texts += [lst.item(i).text() for i in range(lst.count())]
    return "\n".join(texts)


@pytest.fixture
def page(qtbot, tmp_path):
    proj, judged, open_ = build(tmp_path, n_open=6)
    p = AnnotatePage()
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    yield p, proj, judged, open_
    p.set_project(None)
    qtbot.waitUntil(lambda: not any(h.running for h in p.assist._handles.values()), timeout=30_000)
    proj.close()


def wait_handle(qtbot, page, key):
    qtbot.waitUntil(lambda: page.assist.handle(key) is not None and not page.assist.handle(key).running, timeout=60_000)
    h = page.assist.handle(key)
    assert h.state == "finished", h.error
    return h.result


def test_model_check_only_after_submit(page, qtbot):
    page, proj, judged, open_ = page
    page.set_project(proj)
    page.session.consistency_share = 0.0
    item = page.item
    # before judging: no model view anywhere, and none was even asked for
    assert page.assist.handle("explain") is None
    assert not page.assist.note.isVisible()
    assert "model" not in visible_text(page).lower().replace("model check after", "")
    # the expert ranks the worst reply first: a slip the model disagrees with
    order = sorted(range(item.k), key=lambda i: goodness(item.candidates[i].text))
    best = order[-1]
    for i in order[:-1]:
        qtbot.keyClick(page, K.Key_1 + i)
    qtbot.keyClick(page, K.Key_Return)
    assert page.item.prompt_id != item.prompt_id
    view = wait_handle(qtbot, page, "explain")
    assert view is not None and view.prompt_id == item.prompt_id and view.top_differs
    assert page.assist.note.isVisible()
    assert f"would have ranked {best + 1} first" in page.assist.note.text()
    # back on the judged prompt (to change it), the model's view is not shown beside it
    qtbot.keyClick(page, K.Key_Comma)
    assert page.item.prompt_id == item.prompt_id
    assert not page.assist.note.isVisible() and "would have" not in visible_text(page)
    qtbot.keyClick(page, K.Key_Period)
    assert page.item.prompt_id != item.prompt_id and page.assist.note.isVisible()
    # switched off: nothing is asked after the next submit
    page.assist.check_box.setChecked(False)
    assert not page.assist.note.isVisible()
    handle = page.assist.handle("explain")
    for k in (K.Key_1, K.Key_2, K.Key_3, K.Key_Return):
        qtbot.keyClick(page, k)
    assert page.assist.handle("explain") is handle
    assert proj.get_setting("annotation.model_check") is False


def test_informative_order_from_the_page(page, qtbot):
    page, proj, judged, open_ = page
    uncertain, _ = add_uncertain(proj)
    page.set_project(proj)
    page.session.consistency_share = 0.0
    assert page.assist.order_combo.currentText() == "Project order"  # the default
    first = page.item.prompt_id
    page.assist.order_combo.setCurrentIndex(1)
    order = wait_handle(qtbot, page, "refresh")
    assert order.ready and order.prompt_ids[0] == uncertain and page.session.informative
    assert page.item.prompt_id == first  # the item on screen stays
    assert "most informative first" in page.progress_label.text()
    assert "Most informative first" in page.assist.order_status.text()
    qtbot.keyClick(page, K.Key_Period)  # next: the queue's pick
    assert page.item.prompt_id == uncertain
    assert stored_order(proj).prompt_ids == order.prompt_ids
    assert proj.get_setting("annotation.queue_order") == "informative"


def test_review_list_shows_the_slip_and_opens_it(page, qtbot):
    page, proj, judged, open_ = page
    slip_pid, rids = judged[3]
    proj.record_ranking(slip_pid, [[rids[0]], [rids[1]], [rids[2]], [rids[3]]])
    page.set_project(proj)
    page.tabs.setCurrentIndex(2)
    page.assist.review_button.click()
    wait_handle(qtbot, page, "review")
    lst = page.assist.review_list
    assert lst.count() >= 1 and f"#{slip_pid} " in lst.item(0).text()
    best_shown = page.session.display_index(slip_pid, rids[3]) + 1
    assert f"would have ranked {best_shown} first" in lst.item(0).text()
    lst.itemActivated.emit(lst.item(0))
    assert page.item.prompt_id == slip_pid and page.tabs.currentIndex() == 0
    assert page.builder.tiers[0] == [page.item.index_of(rids[0])]  # the expert's own ranking, prefilled
    page.set_project(None)
    assert lst.count() == 0


def test_quality_tags_on_cards_can_be_overruled(page, qtbot):
    page, proj, judged, open_ = page
    pid = proj.add_prompt("A prompt with copies and a loop.")
    base = "You can return the item within 30 days for a full refund from your account page."
    for text in (base, base.upper(), "Sorry. " * 12, "Send us a photo and we will ship a free replacement today."):
        proj.add_response(pid, text)
    page.set_project(proj)
    page.goto_prompt(pid)
    cards = [c for c in page._cards[: page.item.k]]
    tagged = {i: c.quality.text() for i, c in enumerate(cards) if c.quality_row.isVisibleTo(page)}
    assert sorted(t.split(" ", 1)[1] for t in tagged.values()) == ["duplicate", "repetitive"]
    loop = next(i for i, t in tagged.items() if "repetitive" in t)
    cards[loop].overrule_button.click()
    assert not cards[loop].quality_row.isVisibleTo(page)
    assert proj.get_setting("quality.overruled") == {str(page.item.candidates[loop].id): ["repetitive"]}
