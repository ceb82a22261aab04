"""The operations layer (core/ops): the CLI and the app build the same configs from the same preset and
overrides, because both go through core.ops.training."""

import argparse
import os

import pytest

from core.cli import policy_cmds, reward_cmds
from core.jobs import run_job
from core.ops.training import policy_preflight_job, reward_preflight_job
from core.project import Project
from core.training.policy_config import PRESETS
from tests.reward_fixtures import reward_one_thread, tiny_base  # noqa: F401 (fixtures)
from tests.test_reward_job import PASS, _fill

pytestmark = pytest.mark.usefixtures("reward_one_thread")


def _parse(register, argv):
    parser = argparse.ArgumentParser(prog="rlhf-studio")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "ops.rlhfproj", PASS) as proj:
        _fill(proj, n_train=12, n_heldout=2, seed=3)
        yield proj


@pytest.mark.parametrize(
    "flags, overrides",
    [
        ([], {}),
        (
            ["--freeze-layers", "1", "--gradient-checkpointing"],
            {"finetune": "freeze", "freeze_layers": 1, "gradient_checkpointing": True},
        ),
    ],
)
def test_cli_and_app_reward_configs_are_identical(project, tiny_base, flags, overrides):
    args = _parse(
        reward_cmds.register, ["train-reward", str(project.path), "--base", tiny_base, "--preset", "quick", *flags]
    )
    cli = reward_cmds.config_from_args(project, args)
    app = run_job(reward_preflight_job(project, os.path.abspath(tiny_base), "quick", overrides))
    assert cli == app["config"]
    assert cli.preset == "quick" and all(getattr(cli, k) == v for k, v in overrides.items())


@pytest.mark.parametrize(
    "flags, overrides",
    [
        ([], {}),
        (
            [
                "--steps",
                "7",
                "--batch-size",
                "4",
                "-k",
                "3",
                "--fixed-kl",
                "--lr",
                "0.001",
                "--length-target",
                "40",
                "--forbid",
                "sorry",
                "--repetition-weight",
                "0.5",
            ],
            {
                "total_steps": 7,
                "batch_size": 4,
                "rloo_k": 3,
                "adaptive_kl": False,
                "learning_rate": 0.001,
                "reward": {
                    "length_target": 40,
                    "length_weight": 1.0,
                    "forbidden": ["sorry"],
                    "pattern_weight": 1.0,
                    "repetition_weight": 0.5,
                },
            },
        ),
    ],
)
def test_cli_and_app_policy_configs_are_identical(project, tiny_base, flags, overrides):
    args = _parse(
        policy_cmds.register,
        [
            "train-policy",
            str(project.path),
            "--algo",
            "rloo",
            "--policy",
            tiny_base,
            "--reward",
            "1",
            "--preset",
            "quick",
            *flags,
        ],
    )
    cli = policy_cmds.config_from_args(args)
    inputs = {
        "preset": "quick",
        "algo": "rloo",
        "policy_path": os.path.abspath(tiny_base),
        "reward_run": 1,
        "overrides": overrides,
    }
    app = run_job(policy_preflight_job(project, inputs))
    assert cli == app["config"]
    assert cli.algo == "rloo" and cli.reward_run == 1
    assert cli.total_steps == (7 if flags else PRESETS["quick"]["total_steps"])
