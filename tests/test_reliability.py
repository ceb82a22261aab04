"""The reliability battery (docs/security.md, "Reliability battery").

`make test` runs the fast core of each item; `make reliability` runs the tests marked `reliability`
(full strength: 200 SIGKILLs, 1,000 generated files, 50 MB lines, the whole workflow) and then
bench/reliability.py, which prints the figures. The machinery is in tests/reliability_harness.py.
No test here depends on the machine's speed: time bounds only catch hangs.
"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.project import Project
from tests import reliability_harness as H

reliability = pytest.mark.reliability


# ---- SIGKILL ----------------------------------------------------------------------------------------


def test_kills_across_every_kind_of_write(tmp_path):
    """Fast core: two kills during each of judgment, import, passwd, backup and checkpoint writes."""
    fig = H.kill_battery(tmp_path, kills=2 * len(H.KILL_OPS), seed=1)
    assert fig["kills"] == 10 and fig["integrity_failures"] == 0 and fig["partial_imports"] == 0
    assert fig["passwd_opened_neither"] == 0 and fig["reopened_after_kill"] == 9
    # every round waits for one acknowledged operation before its kill, so each kind has something to check
    assert fig["acknowledged_judgments"] >= 2 and fig["acknowledged_imports"] >= 2 and fig["checkpoint_step"] >= 2
    assert fig["passphrase_changes"] >= 2 and fig["backups_verified"] == 2


@reliability
def test_two_hundred_kills(tmp_path):
    fig = H.kill_battery(tmp_path, kills=200, seed=2)
    assert fig["kills"] == 200 and fig["integrity_failures"] == 0 and fig["partial_imports"] == 0
    assert fig["passwd_opened_neither"] == 0 and fig["passwd_kills"] == 40
    assert fig["passwd_opened_new"] + fig["passwd_opened_old"] == 40


def test_stale_lock_after_sigkill_is_recovered(tmp_path):
    with Project.create(tmp_path / "s", "pw") as proj:
        proj.add_prompt("q")
    folder = tmp_path / "s.rlhfproj"
    code = (
        "import sys, time; from core.project import Project; p = Project.open(sys.argv[1], 'pw'); "
        "print('open', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(H.REPO)},
    )
    try:
        assert child.stdout.readline() == "open\n"
        with pytest.raises(UserError, match="already open"):
            Project.open(folder, "pw")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert (folder / "project.lock").exists()  # the dead process's lock file is still there
    with Project.open(folder, "pw") as proj:  # ... and does not stop the next open
        assert proj.counts()["prompts"] == 1


# ---- generated malformed files and edge inputs -------------------------------------------------------


def test_generated_malformed_imports_fast(tmp_path):
    fig = H.fuzz_imports(tmp_path, examples=300, derandomize=True)
    assert fig["files"] == 300 and fig["tracebacks"] == 0 and fig["partial_writes"] == 0


@reliability
def test_thousand_generated_malformed_imports(tmp_path):
    fig = H.fuzz_imports(tmp_path, examples=1000)
    assert fig["files"] == 1000 and fig["tracebacks"] == 0 and fig["partial_writes"] == 0
    assert fig["messages_without_file_and_line"] == 0 and fig["corrupt_line_not_named"] == 0


@pytest.mark.parametrize("kind", H.SMALL_EDGES)
def test_edge_inputs(kind, tmp_path):
    H.edge_case(kind, tmp_path)


@reliability
@pytest.mark.parametrize("kind", ["line_50mb", "deep_nesting", "deep_nesting_json", "responses_10000"])
def test_big_edge_inputs_bounded_memory(kind, tmp_path):
    fig = H.edge_case_measured(kind, tmp_path)
    # Memory: the file is read once; generous bounds that catch a blow-up, not a machine figure. Time is
    # not asserted (it depends on the machine): bench/reliability.py prints it.
    assert fig["peak_rss_mb"] < 400 + 8 * fig["file_mb"], fig


def test_deep_nesting_below_the_limits(tmp_path):
    """Fast core of the big inputs: nesting far past Python's recursion limit, and 2,000 responses."""
    path = tmp_path / "deep.jsonl"
    path.write_bytes(b'{"prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n")
    from core.data import import_file
    from core.errors import ImportFailed
    from core.jobs import run_job

    with Project.create(tmp_path / "d", "pw") as proj:
        with pytest.raises(ImportFailed, match="deep.jsonl:1: the JSON is nested too deeply"):
            run_job(import_file(proj, path))
        many = tmp_path / "many.jsonl"
        many.write_text(
            json.dumps(
                {"prompt": "q", "responses": [f"r{i}" for i in range(2000)], "ranking": list(range(1999, -1, -1))}
            )
            + "\n"
        )
        report = run_job(import_file(proj, many))
        assert report.responses_added == 2000 and len(proj.judgments()[0].tiers) == 2000


# ---- disk full, read-only ------------------------------------------------------------------------------


def test_disk_full_during_import_and_judgment(tmp_path):
    fig = H.disk_full_battery(tmp_path)
    if "skipped" in fig:
        pytest.skip(fig["skipped"])
    assert "disk is full" in fig["import_error"] and "disk is full" in fig["judgment_error"]
    assert fig["reopened"] and fig["acknowledged_judgments_present"] >= 10


def test_read_only_folder_gives_a_clear_error(tmp_path):
    fig = H.read_only_battery(tmp_path)
    if "skipped" in fig:
        pytest.skip(fig["skipped"])
    assert "cannot be written" in fig["read_only_error"]


# ---- model folders -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from core.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("rel_model") / "m", arch="gpt2", seed=0)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_weights_never_run_code(tiny_folder, tmp_path):
    import torch
    from safetensors.torch import load_file

    from core.models.loading import load_model

    marker = tmp_path / "code-ran"
    evil = _copy(tiny_folder, tmp_path / "evil")
    (evil / "model.safetensors").unlink()
    with open(evil / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"transformer.wte.weight": _RunsCode(marker)}, fh)
    with pytest.raises(UserError, match="were not loaded, since unpickling them could run code"):
        load_model(evil, device="cpu")
    assert not marker.exists()
    # a plain tensor-only pytorch_model.bin still loads (weights_only=True accepts tensors)
    plain = _copy(tiny_folder, tmp_path / "plain")
    torch.save(load_file(plain / "model.safetensors"), plain / "pytorch_model.bin")
    (plain / "model.safetensors").unlink()
    model, _ = load_model(plain, device="cpu")
    assert model.config.model_type == "gpt2"


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self.__init__.__globals__.__builtins__.open('MARKER', 'w') }}",
        "{% for m in messages %}{{ m.__class__.__init__.__globals__ }}{% endfor %}",
    ],
)
def test_chat_template_cannot_run_code(template, tiny_folder, tmp_path):
    from core.models.loading import format_prompt, load_tokenizer

    marker = tmp_path / "code-ran"
    folder = _copy(tiny_folder, tmp_path / "tpl")
    tok = load_tokenizer(folder)
    tok.chat_template = template.replace("MARKER", str(marker))
    with pytest.raises(UserError, match="chat template could not be applied.*unsafe"):
        format_prompt(tok, "hello")
    assert not marker.exists()


@pytest.mark.parametrize(
    "garbage",
    [
        b"{not json",
        b"\xff\xfe\x00\x01",
        b"[]",
        b'{"model_type": "no_such_arch"}',
        b'{"model_type": "gpt2", "n_layer": "many"}',
    ],
)
def test_garbage_config_is_a_clear_error(garbage, tiny_folder, tmp_path):
    from core.models.loading import load_model

    folder = _copy(tiny_folder, tmp_path / "cfg")
    (folder / "config.json").write_bytes(garbage)
    with pytest.raises(UserError, match="config.json could not be read as a model config"):
        load_model(folder, device="cpu")


# ---- the whole workflow -------------------------------------------------------------------------------


@reliability
def test_whole_workflow_canary_and_socket_guard(tmp_path):
    fig = H.workflow_canary(tmp_path)
    assert fig["connection_attempts"] == 0 and fig["canary_leaks"] == 0
    assert set(fig["policy_runs"]) == {"ppo", "rloo", "grpo", "dpo"}
