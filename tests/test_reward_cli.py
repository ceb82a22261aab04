"""`train-reward` on the command line: progress, run id, held-out accuracy; presets fill a full config."""

import argparse

import pytest

from core.cli import main, reward_cmds
from core.errors import UserError
from core.project import Project
from core.training.presets import PRESETS, make_config
from tests.reward_fixtures import reward_one_thread, tiny_base  # noqa: F401 (fixtures)
from tests.test_reward_job import PASS, _fill

pytestmark = pytest.mark.usefixtures("reward_one_thread")


def _parse(argv):
    parser = argparse.ArgumentParser(prog="rlhf-studio")
    reward_cmds.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_train_reward_command(tiny_base, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cli.rlhfproj"
    with Project.create(folder, PASS) as proj:
        _fill(proj, n_train=24, n_heldout=4, seed=1)
    monkeypatch.setenv("RLHF_STUDIO_PASSPHRASE", PASS)
    assert main(["train-reward", str(folder), "--base", tiny_base, "--preset", "quick", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "run 1:" in out and "validation pairwise accuracy" in out and "held-out split" in out
    with Project.open(folder, PASS) as proj:
        run = proj.run(1)
        assert run.status == "done" and run.config["preset"] == "quick"
        assert proj.has_artifact(1, "final")
    assert main(["train-reward", str(folder)]) == 2
    assert "--base" in capsys.readouterr().err
    args = _parse(["train-reward", str(folder), "--resume", "1"])
    with pytest.raises(UserError, match="already finished"):
        args.func(args)


def test_presets_scale_with_data_and_device():
    cfgs = {p: make_config("/m", p, device_type="cpu", n_params=5_000_000, n_train_prompts=40) for p in PRESETS}
    steps = {p: c.epochs * -(-40 // c.prompts_per_step) for p, c in cfgs.items()}
    assert steps["quick"] < steps["balanced"] < steps["thorough"]
    assert all(c.finetune == "full" and c.device == "cpu" for c in cfgs.values())
    big_cpu = make_config("/m", "balanced", device_type="cpu", n_params=1_500_000_000, n_train_prompts=500)
    assert big_cpu.finetune == "lora"
    no_room = make_config(
        "/m", "balanced", device_type="cuda", n_params=7_000_000_000, n_train_prompts=500, memory_free=40 * 2**30
    )
    assert no_room.finetune == "lora" and no_room.gradient_checkpointing
    many = make_config("/m", "quick", device_type="cuda", n_params=500_000_000, n_train_prompts=20_000)
    assert many.epochs == 1.0 and many.learning_rate < 1e-4
    # A validation split big enough to choose by: early stopping and the best weights; a small one trains
    # to the end and keeps the last weights.
    assert many.restore_best and many.early_stopping_patience > 0
    assert all(not c.restore_best and c.early_stopping_patience == 0 for c in cfgs.values())
    assert (
        make_config("/m", "quick", device_type="cpu", n_params=5e6, n_train_prompts=40, learning_rate=0.5).learning_rate
        == 0.5
    )
    with pytest.raises(UserError):
        make_config("/m", "fast", device_type="cpu", n_params=5e6, n_train_prompts=40)
