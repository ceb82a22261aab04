"""Memory plans: the pre-flight picks 4-bit QLoRA + checkpointing for a 7B on 24 GB, and refuses
quantized plans clearly where they are impossible (a CPU, or no bitsandbytes). No weights allocated."""

import pytest

from core.errors import UserError
from core.training.policy_config import PolicyConfig
from core.training.quantization import GIB, ModelShape, choose_plan, plan_for_policy, plan_for_reward
from core.training.reward import RewardConfig

# Qwen2.5-7B's shapes (config.json of the released model), counted on the meta device.
QWEN25_7B = dict(
    hidden_size=3584,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    intermediate_size=18944,
    vocab_size=152064,
    tie_word_embeddings=False,
    max_position_embeddings=32768,
)
FREE_24GB = int(23.5 * GIB)  # a 24 GB card with the CUDA context and the desktop taking their share


@pytest.fixture(scope="module")
def qwen7b():
    from transformers import Qwen2Config

    shape = ModelShape.from_config(Qwen2Config(**QWEN25_7B))
    assert 7.5e9 < shape.n_params < 7.7e9
    return shape


def test_7b_reward_model_on_24gb_gets_qlora_with_checkpointing(qwen7b):
    cfg = RewardConfig(base_model="unused", finetune="lora", max_length=512, prompts_per_micro_batch=1)
    plan = plan_for_reward(cfg, "cuda", free_bytes=FREE_24GB, shape=qwen7b, bnb=True)
    assert (plan.quantization, plan.gradient_checkpointing) == ("4bit", True)
    assert plan.need_bytes <= 0.9 * FREE_24GB
    assert "4-bit (NF4) base + LoRA (QLoRA), gradient checkpointing" in plan.describe()


def test_7b_policy_on_24gb_gets_qlora_and_a_big_card_keeps_full_precision(qwen7b):
    cfg = PolicyConfig(
        algo="ppo", mode="lora", minibatch_size=8, max_prompt_tokens=256, max_new_tokens=128, dtype="bfloat16"
    )
    plan = plan_for_policy(cfg, "cuda", free_bytes=FREE_24GB, shape=qwen7b, bnb=True)
    assert (plan.quantization, plan.gradient_checkpointing) == ("4bit", True)
    big = plan_for_policy(cfg, "cuda", free_bytes=80 * GIB, shape=qwen7b, bnb=True)
    assert (big.quantization, big.gradient_checkpointing) == ("none", False)


def test_4bit_is_refused_on_a_cpu_and_without_bitsandbytes(qwen7b):
    cfg = RewardConfig(base_model="unused", finetune="lora", quantization="4bit")
    with pytest.raises(UserError, match="needs a CUDA GPU.*4-bit plan is impossible here"):
        plan_for_reward(cfg, "cpu", free_bytes=64 * GIB, shape=qwen7b, bnb=True)
    with pytest.raises(UserError, match="bitsandbytes.*not installed.*impossible here"):
        plan_for_reward(cfg, "cuda", free_bytes=FREE_24GB, shape=qwen7b, bnb=False)
    with pytest.raises(UserError, match="switch the training mode to LoRA"):
        choose_plan(qwen7b, device_type="cuda", free_bytes=FREE_24GB, quantization="4bit", finetune="full", bnb=True)


def test_auto_falls_back_to_full_precision_or_refuses_saying_why(qwen7b):
    # auto on a CPU: quantization impossible, full precision fits in 64 GiB of RAM -> no quantization.
    cfg = RewardConfig(base_model="unused", finetune="lora", max_length=256, prompts_per_micro_batch=1)
    plan = plan_for_reward(cfg, "cpu", free_bytes=64 * GIB, shape=qwen7b)
    assert plan.quantization == "none"
    # auto on a 24 GB GPU without bitsandbytes: nothing fits; the message says 4-bit was impossible and how.
    big = RewardConfig(base_model="unused", finetune="lora", max_length=512, prompts_per_micro_batch=1)
    with pytest.raises(UserError) as err:
        plan_for_reward(big, "cuda", free_bytes=FREE_24GB, shape=qwen7b, bnb=False)
    text = str(err.value)
    assert "will not fit on cuda" in text and "4-bit (NF4) base" in text and "impossible" in text
    assert "bitsandbytes" in text
    # 8-bit is honoured when asked for by name, never picked by auto.
    assert (
        choose_plan(
            qwen7b,
            device_type="cuda",
            free_bytes=FREE_24GB,
            quantization="8bit",
            bnb=True,
            lm_logits=False,
            batch_tokens=2048,
        ).quantization
        == "8bit"
    )


def test_reward_job_records_the_concrete_plan_on_cpu(tmp_path):
    """The real pre-flight on this CPU machine: auto resolves to no quantization (the run's config says
    so, so a resume loads the same way), and asking for 4-bit is refused before a run is created."""
    import torch

    from core.models.tiny import build_tiny_model
    from core.training.reward import RewardData, PromptExample, preflight

    base = str(build_tiny_model(tmp_path / "m", arch="qwen2", seed=0))
    pairs = [(0, 1, 0.0)] * 30
    data = RewardData(
        train=[PromptExample(1, [0, 1], pairs)], val=[PromptExample(2, [0, 1], pairs)], heldout=[], snapshot_hash="x"
    )
    pre = preflight(RewardConfig(base_model=base, finetune="lora"), data, torch.device("cpu"))
    assert pre["quantization"] == "none" and "full-precision base + LoRA" in pre["plan"]
    with pytest.raises(UserError, match="4-bit plan is impossible here"):
        preflight(RewardConfig(base_model=base, finetune="lora", quantization="4bit"), data, torch.device("cpu"))


def test_block_checkpointing_gives_the_same_gradients_in_eval_mode(tmp_path):
    """The policy stays in eval mode (no dropout, working KV cache); our per-block checkpointing is
    active whenever autograd records and changes nothing but memory."""
    import torch

    from core.models.tiny import build_tiny_model
    from core.training.policy_common import load_policy_model
    from core.training.quantization import checkpoint_blocks

    torch.set_num_threads(1)
    base = str(build_tiny_model(tmp_path / "m", arch="qwen2", seed=0))
    grads = []
    for ckpt in (False, True):
        model, _ = load_policy_model(base, "cpu", "float32")
        if ckpt:
            assert checkpoint_blocks(model) == model.config.num_hidden_layers
        ids = torch.arange(3, 19).reshape(2, 8)
        model(input_ids=ids).logits.float().logsumexp(-1).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        with torch.no_grad():  # a no-grad pass (rollouts) runs the plain block
            model(input_ids=ids)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
