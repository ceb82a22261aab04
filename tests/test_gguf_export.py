"""Exports people use: GGUF from an HF folder (read back with gguf's own reader), the Ollama Modelfile,
and clear messages where GGUF cannot be written."""

import numpy as np
import pytest

from core.errors import UserError
from core.models import gguf_export
from core.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def qwen_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("gguf") / "qwen2", arch="qwen2", seed=0)


def test_qwen2_folder_becomes_a_gguf_file_with_weights_tokens_and_template(qwen_folder, tmp_path):
    gguf = pytest.importorskip("gguf")
    from safetensors.torch import load_file

    out = gguf_export.export_gguf(qwen_folder, tmp_path / "m.gguf", outtype="f16")
    reader = gguf.GGUFReader(str(out))
    fields = reader.fields

    def text(key):
        f = fields[key]
        return bytes(f.parts[f.data[0]]).decode()

    assert text("general.architecture") == "qwen2"
    assert text("tokenizer.ggml.model") == "gpt2"
    assert "<|assistant|>" in text("tokenizer.chat_template")
    hf = load_file(str(qwen_folder / "model.safetensors"))
    tensors = {t.name: t for t in reader.tensors}
    n_layers = 2
    assert {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"} <= set(tensors)
    assert len([n for n in tensors if n.startswith("blk.")]) == len([n for n in hf if ".layers." in n])
    emb = np.asarray(tensors["token_embd.weight"].data, dtype=np.float32)
    want = hf["model.embed_tokens.weight"].numpy()
    assert emb.shape == want.shape and np.allclose(emb, want, atol=1e-3)
    norm = np.asarray(tensors["output_norm.weight"].data)
    assert norm.dtype == np.float32  # 1-D tensors stay f32
    vocab = fields["tokenizer.ggml.tokens"]
    assert len(vocab.data) == want.shape[0]
    assert n_layers == int(fields["qwen2.block_count"].parts[-1][0])


def test_modelfile_points_at_the_gguf_with_a_template_and_stop(qwen_folder, tmp_path):
    from core.models.loading import load_tokenizer

    tok = load_tokenizer(qwen_folder)
    path = gguf_export.write_modelfile(tmp_path, tok)
    text = path.read_text()
    assert "FROM ./model.gguf" in text
    assert 'TEMPLATE """{{- range .Messages }}' in text
    assert '{{ else if eq .Role "user" }}<|user|>\n{{ .Content }}\n' in text
    assert text.rstrip().endswith(f'PARAMETER stop "{tok.eos_token}"')
    assert '<|assistant|>\n"""' in text  # the generation prompt closes the template
    chatml = type("T", (), {"chat_template": "{{ '<|im_start|>' }}", "eos_token": "<|endoftext|>"})()
    assert "<|im_start|>assistant" in gguf_export.ollama_template(chatml)


def test_unsupported_architecture_or_missing_package_names_the_convert_command(tmp_path, monkeypatch):
    gpt2 = build_tiny_model(tmp_path / "gpt2", arch="gpt2", seed=0)
    with pytest.raises(UserError, match=r"not 'gpt2'.*convert_hf_to_gguf\.py .*--outtype f16"):
        gguf_export.export_gguf(gpt2)
    monkeypatch.setattr(gguf_export, "gguf_available", lambda: False)
    with pytest.raises(UserError, match=r"needs the gguf package.*convert_hf_to_gguf\.py"):
        gguf_export.export_gguf(gpt2)
