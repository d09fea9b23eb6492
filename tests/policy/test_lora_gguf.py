"""GGUF LoRA export: names, shapes (orientation) and metadata, checked against hand-written values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter
from safetensors.numpy import save_file

from treeplay.policy.lora_gguf import (
    AdapterExportError,
    export_lora_gguf,
    gguf_tensor_name,
    merge_adapter_chain,
)
from treeplay.policy.models import ModelChain, ModelLoadError, model_chain


def _fake_base(path: Path, arch: str = "qwen2") -> Path:
    writer = GGUFWriter(str(path), arch=arch)
    writer.add_tensor("token_embd.weight", np.zeros((4, 6), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _adapter(directory: Path, tensors: dict[str, np.ndarray], **config: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 16, **config}))
    return directory


def test_peft_keys_map_to_llama_cpp_names() -> None:
    key = "base_model.model.model.layers.11.self_attn.k_proj.lora_A.weight"
    assert gguf_tensor_name(key) == ("blk.11.attn_k.weight", "a")
    assert gguf_tensor_name("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight") == (
        "blk.0.ffn_down.weight", "b",
    )
    with pytest.raises(AdapterExportError, match="lm_head"):
        gguf_tensor_name("base_model.model.lm_head.lora_A.weight")


def test_export_writes_a_and_b_with_llama_cpp_orientation(tmp_path: Path) -> None:
    # k_proj of a toy model: in_features 6, out_features 4, rank 2 (non-square, so a transposed
    # tensor would show up as a wrong shape)
    a = np.arange(12, dtype=np.float32).reshape(2, 6)  # peft lora_A: (r, in)
    b = np.arange(8, dtype=np.float32).reshape(4, 2)  # peft lora_B: (out, r)
    adapter = _adapter(tmp_path / "final", {
        "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": a,
        "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": b,
    })
    out = export_lora_gguf(adapter, _fake_base(tmp_path / "base.gguf"))
    assert out == adapter / "adapter_model.gguf"
    reader = GGUFReader(str(out))
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["blk.0.attn_k.weight.lora_a", "blk.0.attn_k.weight.lora_b"]
    # GGUF ne order: lora_a = [in, r] = [6, 2], lora_b = [r, out] = [2, 4] (what llama.cpp checks)
    assert list(tensors["blk.0.attn_k.weight.lora_a"].shape) == [6, 2]
    assert list(tensors["blk.0.attn_k.weight.lora_b"].shape) == [2, 4]
    assert tensors["blk.0.attn_k.weight.lora_a"].data.reshape(-1)[:3].tolist() == [0.0, 1.0, 2.0]

    def text(key: str) -> str:
        field = reader.fields[key]
        return bytes(field.parts[field.data[0]]).decode()

    assert text("general.type") == "adapter" and text("adapter.type") == "lora"
    assert text("general.architecture") == "qwen2"
    alpha = reader.fields["adapter.lora.alpha"]
    assert float(alpha.parts[alpha.data[0]][0]) == 16.0


def test_export_refuses_what_llama_cpp_cannot_apply(tmp_path: Path) -> None:
    base = _fake_base(tmp_path / "base.gguf")
    half = _adapter(tmp_path / "half", {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.zeros((2, 6), np.float32),
    })
    with pytest.raises(AdapterExportError, match="lacks lora_B"):
        export_lora_gguf(half, base)
    dora = _adapter(tmp_path / "dora", {}, use_dora=True)
    with pytest.raises(AdapterExportError, match="use_dora"):
        export_lora_gguf(dora, base)
    assert not list(tmp_path.glob("*/adapter_model.gguf*"))  # nothing half-written


def test_model_chain_collects_adapters_of_earlier_rounds(tmp_path: Path) -> None:
    round1 = tmp_path / "r1" / "final"
    round2 = tmp_path / "r2" / "final"
    for directory, base in ((round1, "embedded"), (round2, str(round1))):
        directory.mkdir(parents=True)
        (directory / "treeplay_train.json").write_text(json.dumps({"base_model": base, "adapter": True}))
    assert model_chain(str(round2)) == ModelChain("embedded", (round1, round2))
    assert model_chain("embedded") == ModelChain("embedded")
    (round1 / "treeplay_train.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="field 'base_model'"):
        model_chain(str(round2))


K_A = "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"
K_B = "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"


def test_a_chain_of_two_adapters_merges_into_one_of_summed_rank(tmp_path: Path) -> None:
    """Round 2 = base + adapter 1 + adapter 2: merged into one rank-2 adapter whose B @ A (times
    alpha / r = 1) is s1 B1 A1 + s2 B2 A2, computed here by hand for 3-wide toy weights."""
    # adapter 1: r=1, alpha 2 (s1 = 2); adapter 2: r=1, alpha 3 (s2 = 3)
    one = _adapter(tmp_path / "r1", {K_A: np.array([[1, 0, 2]], np.float32), K_B: np.array([[1], [0]], np.float32)},
                   r=1, lora_alpha=2)  # fmt: skip
    two = _adapter(tmp_path / "r2", {K_A: np.array([[0, 1, 0]], np.float32), K_B: np.array([[0], [2]], np.float32)},
                   r=1, lora_alpha=3)  # fmt: skip
    out = merge_adapter_chain([one, two], _fake_base(tmp_path / "base.gguf"), tmp_path / "chain.gguf")
    reader = GGUFReader(str(out))
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    a = tensors["blk.0.attn_k.weight.lora_a"].reshape(2, 3)  # numpy (r, in)
    b = tensors["blk.0.attn_k.weight.lora_b"].reshape(2, 2)  # numpy (out, r)
    alpha = reader.fields["adapter.lora.alpha"]
    assert float(alpha.parts[alpha.data[0]][0]) == 2.0  # = the merged rank, so alpha / r = 1
    # s1 B1 A1 = 2 * [[1, 0, 2], [0, 0, 0]]; s2 B2 A2 = 3 * [[0, 0, 0], [0, 2, 0]]
    assert (b @ a).tolist() == [[2.0, 0.0, 4.0], [0.0, 6.0, 0.0]]


def test_merging_a_chain_refuses_adapters_of_different_weights(tmp_path: Path) -> None:
    one = _adapter(tmp_path / "r1", {K_A: np.ones((1, 3), np.float32), K_B: np.ones((2, 1), np.float32)}, r=1)
    other = _adapter(tmp_path / "r2", {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((1, 3), np.float32),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.ones((2, 1), np.float32),
    }, r=1)  # fmt: skip
    with pytest.raises(AdapterExportError, match="adapts other weights"):
        merge_adapter_chain([one, other], _fake_base(tmp_path / "base.gguf"), tmp_path / "chain.gguf")
