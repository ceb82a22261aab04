"""Train page: the reward model (Bradley–Terry on the expert's rankings) and the policy (PPO/RLOO/GRPO/DPO).

Each tab: choose the model and a preset, read the pre-flight check, Start; live charts, progress with ETA
and Cancel; Resume a cancelled run; the list of runs. Everything that computes — pre-flight checks (they
count parameters and read the judgments), training, scoring, export — is a core job (core.ops.training)
on the worker (desktop.worker). The page only turns Progress events into chart points and table rows.

    run_controls  presets, the model picker, the runs table, the controls both tabs share (_Tab)
    reward_tab    the Reward model tab (and its scoring view)
    policy_tab    the Policy tab (monitors, expert check, export)
    page          TrainPage, the two tabs together
"""

from desktop.pages.train.page import TrainPage
from desktop.pages.train.policy_tab import PolicyTab
from desktop.pages.train.reward_tab import RewardTab

__all__ = ["TrainPage", "RewardTab", "PolicyTab"]
