"""Export a peft LoRA adapter to a llama.cpp GGUF LoRA adapter (so the engine samples base+adapter).

llama.cpp's adapter format (what `convert_lora_to_gguf.py` writes and `llama_adapter_lora_init`
reads): `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, the base model's
`general.architecture`, and per adapted weight `W` (GGUF name `blk.N.attn_q.weight`, ne = [in, out])
two tensors `<W>.lora_a` (ne = [in, r]) and `<W>.lora_b` (ne = [r, out]). GGUF shapes are numpy
shapes reversed, so peft's `lora_A.weight` (r, in) and `lora_B.weight` (out, r) are written as they
are. The engine then adds `scale * alpha / r * B @ A @ x` to `W @ x`, the same update peft applies
(`lora_alpha / r * B @ A`). The orientation is tested on a non-square matrix (`attn_k` of Qwen2).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

GGUF_ADAPTER_NAME = "adapter_model.gguf"
CHAIN_ADAPTER_NAME = "adapter_chain.gguf"  # rounds 1..t merged into one adapter (merge_adapter_chain)

# HF (Llama/Qwen2/Mistral-style) module names -> GGUF tensor names.
MODULE_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_PEFT_KEY = re.compile(r"layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.default)?\.weight$")


class AdapterExportError(RuntimeError):
    """The adapter cannot be expressed as a llama.cpp LoRA adapter; the message says why."""


def gguf_tensor_name(peft_key: str) -> tuple[str, str]:
    """(GGUF base tensor name, "a" or "b") for a peft state-dict key."""
    match = _PEFT_KEY.search(peft_key)
    if match is None or match.group(2) not in MODULE_NAMES:
        raise AdapterExportError(f"adapter tensor {peft_key!r} has no llama.cpp equivalent (supported: {sorted(MODULE_NAMES)})")
    layer, module, which = match.groups()
    return f"blk.{layer}.{MODULE_NAMES[module]}.weight", which.lower()


def read_adapter_config(adapter_dir: Path) -> dict[str, object]:
    path = adapter_dir / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterExportError(f"{path}: cannot read ({exc})") from None
    for field, bad in (("use_dora", True), ("use_rslora", True)):
        if config.get(field) == bad:
            raise AdapterExportError(f"{path}: field {field!r}: not supported by the llama.cpp adapter export")
    for field in ("rank_pattern", "alpha_pattern"):
        if config.get(field):
            raise AdapterExportError(f"{path}: field {field!r}: per-module ranks/alphas are not supported")
    return dict(config)


def base_architecture(base_gguf: Path) -> str:
    """`general.architecture` of a GGUF model file."""
    from gguf import GGUFReader

    field = GGUFReader(str(base_gguf)).fields.get("general.architecture")
    if field is None:
        raise AdapterExportError(f"{base_gguf}: no general.architecture key")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def export_lora_gguf(adapter_dir: Path, base_gguf: Path, out: Path | None = None) -> Path:
    """Write (atomically) and return the GGUF LoRA adapter of a peft adapter directory.

    Reuses an existing export that is newer than the adapter weights.
    """
    adapter_dir = Path(adapter_dir)
    weights = adapter_dir / "adapter_model.safetensors"
    out = out or adapter_dir / GGUF_ADAPTER_NAME
    if _newer_than(out, [weights]):
        return out
    pairs, config = _peft_pairs(adapter_dir)
    return _write_adapter(out, base_gguf, float(config.get("lora_alpha", 8)), pairs)  # type: ignore[arg-type]


def _newer_than(out: Path, inputs: Sequence[Path]) -> bool:
    """`out` exists and is at least as new as every input (an earlier export to reuse)."""
    return out.is_file() and all(i.is_file() and out.stat().st_mtime >= i.stat().st_mtime for i in inputs)


def _write_adapter(out: Path, base_gguf: Path, alpha: float, pairs: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write (atomically) a llama.cpp LoRA adapter GGUF of `pairs` (name -> {"a", "b"} arrays)."""
    from gguf import GGUFWriter

    tmp = str(out) + f".tmp{os.getpid()}"
    writer = GGUFWriter(tmp, arch=base_architecture(base_gguf))
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name in sorted(pairs):
        writer.add_tensor(f"{name}.lora_a", pairs[name]["a"])
        writer.add_tensor(f"{name}.lora_b", pairs[name]["b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)
    return out


def _peft_pairs(adapter_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, object]]:
    from safetensors.numpy import load_file

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterExportError(f"{weights}: not found (expected a peft LoRA adapter saved with safetensors)")
    config = read_adapter_config(adapter_dir)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(str(weights)).items():
        name, which = gguf_tensor_name(key)
        pairs.setdefault(name, {})[which] = value.astype(np.float32)
    for name, ab in pairs.items():
        if set(ab) != {"a", "b"}:
            raise AdapterExportError(f"{weights}: tensor {name} lacks lora_{'B' if 'a' in ab else 'A'}")
        if ab["a"].shape[0] != ab["b"].shape[1]:
            raise AdapterExportError(f"{weights}: {name}: lora_A {ab['a'].shape} and lora_B {ab['b'].shape} ranks differ")
    return pairs, config


def merge_adapter_chain(adapter_dirs: Sequence[Path], base_gguf: Path, out: Path) -> Path:
    """One GGUF LoRA adapter equal to a chain of peft adapters applied together (round t's model =
    base + adapter 1 + ... + adapter t): sum_i s_i B_i A_i = [s_1 B_1 ... s_t B_t] [A_1; ...; A_t],
    with s_i = alpha_i / r_i folded into B and alpha = total rank (so llama.cpp's alpha / r is 1).
    Exact up to float rounding; one adapter of rank r_1 + ... + r_t costs the engine one LoRA
    product per weight instead of t (docs/policy.md). Reuses `out` when newer than every input."""
    dirs = [Path(d) for d in adapter_dirs]
    if not dirs:
        raise AdapterExportError("merge_adapter_chain: no adapters")
    weights = [d / "adapter_model.safetensors" for d in dirs]
    if _newer_than(out, weights):
        return out
    merged: dict[str, dict[str, list[np.ndarray]]] = {}
    for directory in dirs:
        pairs, config = _peft_pairs(directory)
        scale = float(config.get("lora_alpha", 8)) / float(config.get("r", 8))  # type: ignore[arg-type]
        if merged and set(pairs) != set(merged):
            raise AdapterExportError(f"{directory}: adapts other weights than {dirs[0]}; cannot merge the chain")
        for name, ab in pairs.items():
            slot = merged.setdefault(name, {"a": [], "b": []})
            slot["a"].append(ab["a"])
            slot["b"].append(ab["b"] * np.float32(scale))
    rank = sum(a.shape[0] for a in next(iter(merged.values()))["a"])
    stacked = {name: {"a": np.concatenate(ab["a"], axis=0), "b": np.concatenate(ab["b"], axis=1)}
               for name, ab in merged.items()}  # fmt: skip
    return _write_adapter(out, base_gguf, float(rank), stacked)
