"""Load a tuned policy back from the project, and export it as a standard Hugging Face folder.

The export is plaintext (weights leave the encrypted project), so it needs `plaintext=True`; it is
written to the audit log. With LoRA the adapters are merged into the base weights by default
(`AutoModelForCausalLM.from_pretrained(folder)` then needs nothing else); `merge=False` writes the adapter
alone (adapter_config.json + adapter_model.safetensors, loadable through transformers' peft integration
as long as the base model folder stays where it is).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from core.errors import UserError
from core.training.policy_common import _st_load, apply_lora, load_policy_model, load_trainable_state


def _policy_files(proj, run_id: int) -> tuple[dict, dict]:
    """(meta, tensors) of a run's tuned weights: the final artifact, else its latest checkpoint."""
    run = proj.run(run_id)
    if run.kind != "policy":
        raise UserError(f"Run {run_id} is a {run.kind} run, not a policy run.")
    if proj.has_artifact(run_id, "policy"):
        files = proj.load_artifact(run_id, "policy")
        return json.loads(files["policy.json"]), _st_load(files["policy.safetensors"])
    if proj.has_artifact(run_id, "checkpoint"):
        cfg = run.config["policy"]
        files = proj.load_artifact(run_id, "checkpoint")
        meta = {k: cfg[k] for k in ("policy_path", "mode", "lora_r", "lora_alpha", "freeze_layers", "algo")}
        meta["step"] = json.loads(files["state.json"])["step"]
        return meta, _st_load(files["policy.safetensors"])
    raise UserError(f"Run {run_id} has no trained weights yet (no checkpoint).")


def load_tuned_policy(
    proj, run_id: int, *, device: Optional[str] = None, dtype: Optional[str] = None, merge: bool = True
):
    """(model, tokenizer) of a policy run, ready to generate (LoRA merged unless merge=False)."""
    meta, tensors = _policy_files(proj, run_id)
    model, tokenizer = load_policy_model(meta["policy_path"], device, dtype)
    if meta["mode"] == "lora":
        model = apply_lora(model, meta["lora_r"], meta["lora_alpha"])
        load_trainable_state(model, tensors)
        if merge:
            model = model.merge_and_unload()
            model._was_lora = True
    else:
        load_trainable_state(model, tensors)
    model.eval()
    model._rlhf_step = meta.get("step")  # which training step these weights are from
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def export_model(
    proj,
    run_id: int,
    out_dir: str | Path,
    *,
    plaintext: bool = False,
    merge: bool = True,
    gguf: bool = False,
    gguf_type: str = "f16",
) -> Path:
    """Write the tuned model (and its tokenizer) to `out_dir` as a Hugging Face folder.

    A merged or full export also gets an Ollama `Modelfile`; `gguf=True` adds `model.gguf`
    (core/models/gguf_export.py). When GGUF cannot be written here, the folder and a Modelfile
    (`FROM .`) are still complete and the `UserError` names the llama.cpp command that converts it."""
    if not plaintext:
        raise UserError("Exporting writes the model unencrypted. Confirm with plaintext=True (the CLI's --plaintext).")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new folder for the export.")
    model, tokenizer = load_tuned_policy(proj, run_id, device="cpu", merge=merge)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    kind = "adapter" if hasattr(model, "peft_config") else "merged" if getattr(model, "_was_lora", False) else "full"
    proj.audit("exported", run=run_id, what="model", form=kind)
    if kind != "adapter":
        from core.models.gguf_export import export_gguf, write_modelfile

        if not gguf:
            write_modelfile(out, tokenizer, gguf_file=None)
            return out
        try:
            export_gguf(out, outtype=gguf_type)
        except UserError:
            write_modelfile(out, tokenizer, gguf_file=None)
            raise
        write_modelfile(out, tokenizer)
        proj.audit("exported", run=run_id, what="model", form="gguf")
    elif gguf:
        raise UserError("GGUF needs a merged model: export without --adapter.")
    return out
