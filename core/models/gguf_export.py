"""GGUF (llama.cpp / Ollama / LM Studio) and an Ollama `Modelfile` from an exported Hugging Face folder.

    rlhf-studio export-model PROJECT RUN OUTDIR --plaintext --gguf [--gguf-type f16|q8_0|f32]

The HF folder is written first (core/training/export.py); this converts it with the `gguf` package
(llama.cpp's own Python writer, `pip install 'rlhf-studio[export]'`), for the architectures whose
tensor layout it knows here: Qwen2 (Qwen2 / Qwen2.5) and LLaMA-style models (LLaMA, Mistral) with a
byte-level BPE `tokenizer.json`. Tensor names come from gguf's own name map; LLaMA's q/k projections
are permuted to GGML's rotary layout as llama.cpp's converter does. Anything else gets a `UserError`
naming the one command that converts the folder with llama.cpp:

    python convert_hf_to_gguf.py OUTDIR --outfile OUTDIR/model.gguf --outtype f16

The `Modelfile` points Ollama at the GGUF (`ollama create NAME -f OUTDIR/Modelfile`), with a Go
TEMPLATE derived from the tokenizer's chat template (ChatML and Llama-3 by name, others by rendering
each role around a marker) and the EOS token as a stop.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Optional

from core.errors import UserError

CONVERT_COMMAND = "python convert_hf_to_gguf.py {folder} --outfile {folder}/model.gguf --outtype f16"
SUPPORTED = ("qwen2", "llama", "mistral")


def gguf_available() -> bool:
    return importlib.util.find_spec("gguf") is not None


def _refuse(folder: Path, why: str) -> UserError:
    return UserError(
        f"{why} The Hugging Face folder {folder} is complete; convert it with llama.cpp's "
        f"converter: {CONVERT_COMMAND.format(folder=folder)}"
    )


def _state_dict(folder: Path) -> dict:
    from safetensors.torch import load_file

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(load_file(str(folder / s)))
        return out
    if not (folder / "model.safetensors").is_file():
        raise _refuse(folder, "GGUF export reads model.safetensors, which this folder lacks.")
    return load_file(str(folder / "model.safetensors"))


def _permute(w, n_head: int, n_head_kv: int):
    """HF LLaMA q/k rows (rotate-half layout) -> GGML's interleaved rotary layout (llama.cpp's permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _vocab(folder: Path, n_vocab: int):
    """(tokens, token types, tokenizer model) from a byte-level BPE tokenizer.json, padded to n_vocab."""
    import gguf

    tj = folder / "tokenizer.json"
    if not tj.is_file():
        raise _refuse(folder, "GGUF export here needs a tokenizer.json (byte-level BPE).")
    data = json.loads(tj.read_text("utf-8"))
    if data.get("model", {}).get("type") != "BPE":
        raise _refuse(folder, f"GGUF export here handles BPE tokenizers, not {data.get('model', {}).get('type')}.")
    vocab = dict(data["model"]["vocab"])
    special = set()
    for t in data.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
        if t.get("special"):
            special.add(t["id"])
    by_id = {i: tok for tok, i in vocab.items()}
    tokens, types = [], []
    for i in range(max(n_vocab, len(by_id))):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    return tokens, types


def export_gguf(folder, out_file=None, *, outtype: str = "f16", name: Optional[str] = None) -> Path:
    """Write `folder`'s model as GGUF (default `folder/model.gguf`); returns the file path."""
    folder = Path(folder)
    out = Path(out_file) if out_file else folder / "model.gguf"
    if not gguf_available():
        raise _refuse(
            folder, "GGUF export needs the gguf package (pip install 'rlhf-studio[export]'), which is not installed."
        )
    import gguf
    import numpy as np

    cfg = json.loads((folder / "config.json").read_text())
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED:
        raise _refuse(folder, f"GGUF export here supports Qwen2 and LLaMA-style models, not {model_type!r}.")
    if outtype not in ("f16", "f32", "q8_0"):
        raise UserError(f"GGUF type must be f16, f32 or q8_0, not {outtype!r}")
    arch = gguf.MODEL_ARCH.QWEN2 if model_type == "qwen2" else gguf.MODEL_ARCH.LLAMA
    n_layer, n_head = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    tensors = _state_dict(folder)
    n_vocab = tensors["model.embed_tokens.weight"].shape[0]
    tokens, types = _vocab(folder, n_vocab)
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))

    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name or folder.name)
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    if cfg.get("head_dim"):
        writer.add_key_length(cfg["head_dim"])
        writer.add_value_length(cfg["head_dim"])
    file_type = {
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "f32": gguf.LlamaFileType.ALL_F32,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre("qwen2" if model_type == "qwen2" else "llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(arch, n_layer)
    for hf_name, t in tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gg_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gg_name is None:
            writer.close()
            out.unlink(missing_ok=True)
            raise _refuse(folder, f"GGUF export does not know the tensor {hf_name}.")
        data = t.float().numpy()
        if arch == gguf.MODEL_ARCH.LLAMA and hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head, n_head)
        elif arch == gguf.MODEL_ARCH.LLAMA and hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_head, n_kv)
        if data.ndim == 1 or outtype == "f32":  # norms and biases stay f32, as llama.cpp writes them
            writer.add_tensor(gg_name, data.astype(np.float32))
        elif outtype == "q8_0" and data.shape[-1] % 32 == 0:
            q = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(gg_name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(gg_name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


# ---------------------------------------------------------------------------------------------------
# Ollama Modelfile

_CHATML = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
_LLAMA3 = (
    "<|begin_of_text|>{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def _go_escape(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')


def ollama_template(tokenizer) -> Optional[str]:
    """A Go template for Ollama equivalent to the tokenizer's chat template, or None without one."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    if "<|im_start|>" in template:
        return _CHATML
    if "<|start_header_id|>" in template:
        return _LLAMA3
    marker = "\x00CONTENT\x00"
    parts = {}
    for role in ("system", "user", "assistant"):
        try:
            text = tokenizer.apply_chat_template([{"role": role, "content": marker}], tokenize=False)
        except Exception:  # templates that refuse a lone system/assistant turn
            continue
        if text.count(marker) == 1:
            parts[role] = text.split(marker)
    if "user" not in parts:
        return None
    lone = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False)
    with_prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    gen_prefix = with_prompt[len(lone) :] if with_prompt.startswith(lone) else ""
    branches = []
    for i, (role, (pre, post)) in enumerate(parts.items()):
        head = "if" if i == 0 else "else if"
        branches.append(f'{{{{ {head} eq .Role "{role}" }}}}{_go_escape(pre)}{{{{ .Content }}}}{_go_escape(post)}')
    return "{{- range .Messages }}" + "".join(branches) + "{{ end }}{{ end }}" + _go_escape(gen_prefix)


def write_modelfile(
    folder, tokenizer=None, gguf_file: Optional[str] = "model.gguf", temperature: Optional[float] = None
) -> Path:
    """Write `folder/Modelfile` for `ollama create NAME -f folder/Modelfile`."""
    folder = Path(folder)
    if tokenizer is None:
        from core.models.loading import load_tokenizer

        tokenizer = load_tokenizer(folder)
    lines = [
        "# Ollama Modelfile written by RLHF Studio: ollama create NAME -f Modelfile",
        f"FROM ./{gguf_file}" if gguf_file else "FROM .",
    ]
    template = ollama_template(tokenizer)
    if template:
        lines.append(f'TEMPLATE """{template}"""')
    else:
        lines.append("# no chat template: prompts are sent as raw text")
    stops = []
    if tokenizer.eos_token:
        stops.append(tokenizer.eos_token)
    if template == _CHATML:
        stops.append("<|im_end|>")
    elif template == _LLAMA3:
        stops.append("<|eot_id|>")
    for s in dict.fromkeys(stops):
        lines.append(f'PARAMETER stop "{s}"')
    if temperature is not None:
        lines.append(f"PARAMETER temperature {temperature}")
    path = folder / "Modelfile"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path
