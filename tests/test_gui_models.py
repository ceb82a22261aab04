"""The Models page and the Generate dialog (pytest-qt, offscreen) with a real tiny model and project."""

from __future__ import annotations

import pytest
import torch

from core.models.candidates import model_origin
from desktop.pages.models import ModelsPage, registered_models
from tests.train_gui_helpers import app_context, gui_settings, make_project, tiny_model  # noqa: F401


@pytest.fixture
def page(qtbot, app_context, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    proj = make_project(tmp_path / "models.rlhfproj", n_prompts=5, n_heldout=2, rank=False)
    page = ModelsPage(app_context)
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.show()
    page.set_project(proj)
    yield page
    app_context.runner.cancel_all()
    app_context.runner.wait(60_000)
    page.set_project(None)
    proj.close()
    torch.set_num_threads(before)


def wait_done(qtbot, handle, timeout=60_000):
    if handle.running:
        with qtbot.waitSignal(handle.done, timeout=timeout):
            pass


def test_add_model_shows_device_dtype_memory_and_rejects_non_model(qtbot, page, tiny_model, tmp_path):
    assert page.table.rowCount() == 0 and "No models yet" in page.status.text()
    handle = page.add_model(tiny_model)
    wait_done(qtbot, handle)
    assert handle.state == "finished", handle.error
    path = model_origin(tiny_model)
    assert registered_models(page.project) == [path]
    row = page.row_texts(path)
    assert row["Device"] == "cpu" and row["Dtype"] == "float32" and row["Type"] == "gpt2"
    assert row["Inference"].endswith(("KiB", "MiB", "GiB")) and row["Training"].endswith(("KiB", "MiB", "GiB"))
    assert row["Parameters"].endswith(("K", "M"))
    assert "Added" in page.status.text()
    # the list is an encrypted project setting: it survives a lock, and the view is cleared meanwhile
    proj = page.project
    page.set_project(None)
    assert page.table.rowCount() == 0
    page.set_project(proj)
    assert page.table.rowCount() == 1
    qtbot.waitUntil(lambda: page.row_texts(path)["Device"] == "cpu", timeout=30_000)

    not_a_model = tmp_path / "photos"
    not_a_model.mkdir()
    (not_a_model / "cat.jpg").write_bytes(b"\xff\xd8")
    handle = page.add_model(not_a_model)
    wait_done(qtbot, handle)
    assert handle.state == "failed"
    assert "not a Hugging Face model folder" in page.status.text() and "config.json" in page.status.text()
    assert registered_models(page.project) == [path]

    page.table.selectRow(0)
    page.remove_button.click()
    assert registered_models(page.project) == [] and page.table.rowCount() == 0


def test_generate_dialog_stores_k_candidates(qtbot, page, tiny_model):
    proj = page.project
    wait_done(qtbot, page.add_model(tiny_model))
    page.table.selectRow(0)
    dialog = page.open_generate_dialog()
    assert dialog.model_combo.currentData() == model_origin(tiny_model)
    dialog.k.setValue(2)
    dialog.max_new_tokens.setValue(8)
    dialog.temperature_mix.setText("0.7, 1.3")
    dialog.scope.setCurrentIndex(dialog.scope.findData("train"))
    dialog.start_button.click()
    handle = dialog.handle
    assert handle.running and not dialog.start_button.isEnabled()
    wait_done(qtbot, handle)
    assert handle.state == "finished", handle.error
    report = dialog.report
    train_ids = proj.prompt_ids(split="train")
    origin = {"kind": "model", "model": model_origin(tiny_model)}
    assert report.prompts == len(train_ids)
    for pid in train_ids:
        assert proj.count_responses(pid, origin) == 2
        temps = sorted(
            r.origin["settings"]["temperature"] for r in proj.responses(pid) if r.origin.get("kind") == "model"
        )
        assert temps == [0.7, 1.3]
    for pid in proj.prompt_ids(split="heldout"):
        assert proj.count_responses(pid, origin) == 0
    assert "Added" in dialog.result.text() and dialog.start_button.isEnabled()

    # again: every train prompt already has K from this model, nothing is added
    dialog.start_button.click()
    wait_done(qtbot, dialog.handle)
    assert dialog.report.added == 0 and dialog.report.skipped == len(train_ids)

    # a bad temperature mix is a message, not a crash
    dialog.temperature_mix.setText("warm, hot")
    assert dialog.start() is None and "Temperature mix" in dialog.result.text()
