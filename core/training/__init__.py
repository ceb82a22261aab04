"""Training jobs: reward model, policy (PPO, RLOO/GRPO, DPO), pairs, checkpoints."""
