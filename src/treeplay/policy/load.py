"""Load a `Policy` for a model name: choose the backend ("auto": llama.cpp for embedded GGUF models on
CPU, else the torch backend) and build it. The backends' heavy imports happen here, on first load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from treeplay.policy.records import Policy

BACKENDS = ("auto", "llamacpp", "hf", "vllm")


def resolve_backend(model: str, backend: str = "auto", device: str = "cpu") -> str:
    """The backend "auto" stands for: llama.cpp for embedded GGUF models (and models trained from
    them) on CPU when `xllamacpp` is installed, else the torch backend."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"unknown policy backend {backend!r} (expected one of {BACKENDS})")
        return backend
    import importlib.util

    from treeplay.policy.models import embedded_key, model_chain

    embedded = embedded_key(model_chain(model).base) is not None
    if embedded and device == "cpu" and importlib.util.find_spec("xllamacpp") is not None:
        return "llamacpp"
    return "hf"


def load_policy(model: str = "embedded", *, backend: str = "auto", **kw: Any) -> Policy:
    """A `Policy` for `model` (an embedded name, a trained run dir, a local HF dir or cached hub id).

    Common keyword arguments: device ("cpu"/"cuda"), threads. hf: dtype, adapter (LoRA dir),
    max_batch_rows, reuse_prefix. llamacpp: n_parallel, ctx_per_slot, branch_mode (see
    `treeplay.policy.llamacpp.EngineConfig`). vllm: see `treeplay.policy.vllm_backend.VLLMPolicy`.
    """
    device = kw.pop("device", "cpu")
    threads = kw.pop("threads", None)
    chosen = resolve_backend(model, backend, device)
    if chosen == "llamacpp":
        return _load_llamacpp(model, device=device, threads=threads, **kw)
    if chosen == "hf":
        return _load_hf(model, device=device, threads=threads, **kw)
    from treeplay.policy.vllm_backend import VLLMPolicy

    return VLLMPolicy.from_model(model, **kw)


def _load_hf(model: str, *, device: str, threads: int | None, **kw: Any) -> Policy:
    from treeplay.policy.hf import HFPolicy
    from treeplay.policy.models import load_model_and_tokenizer

    if threads:
        import torch

        torch.set_num_threads(threads)
    load_kw = {k: kw.pop(k) for k in ("dtype", "adapter") if k in kw}
    hf_model, tokenizer, fmt = load_model_and_tokenizer(model, device=device, **load_kw)
    return HFPolicy(hf_model, tokenizer, fmt, model_id=model, **kw)


def engine_adapters(adapter_dirs: Sequence[str | Path], gguf: Path) -> list[Path]:
    """The GGUF adapters llama.cpp applies for a chain of trained rounds: one exported adapter, or a
    chain of them merged into one adapter of the summed rank (exact; one LoRA product per weight
    instead of one per round: faster sampling, see docs/policy.md), cached in the last round's dir."""
    from treeplay.policy.lora_gguf import CHAIN_ADAPTER_NAME, export_lora_gguf, merge_adapter_chain

    dirs = [Path(d) for d in adapter_dirs]
    if len(dirs) <= 1:
        return [export_lora_gguf(d, gguf) for d in dirs]
    return [merge_adapter_chain(dirs, gguf, dirs[-1] / CHAIN_ADAPTER_NAME)]


def _load_llamacpp(model: str, *, device: str, threads: int | None, **kw: Any) -> Policy:
    from transformers import AutoTokenizer

    from treeplay.policy.llamacpp import EngineConfig, LlamaCppPolicy, default_threads
    from treeplay.policy.models import (
        EMBEDDED_MODELS,
        ModelLoadError,
        embedded_key,
        embedded_tokenizer_dir,
        ensure_embedded_gguf,
        model_chain,
        resolve_prompt_format,
    )

    if kw.pop("adapter", None):
        raise ValueError("backend llamacpp: pass a trained model dir as the model instead of --adapter")
    chain = model_chain(model)
    key = embedded_key(chain.base)
    if key is None:
        raise ModelLoadError(
            f"backend llamacpp needs an embedded GGUF model (or a model trained from one); {chain.base!r} "
            "is not one: use --backend hf"
        )
    gguf = ensure_embedded_gguf(key)
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir(key)), local_files_only=True)
    fmt = resolve_prompt_format(chain.base, tokenizer, EMBEDDED_MODELS[key].prompt_format)
    adapters = engine_adapters(chain.adapters, gguf)
    engine_kw = {k: kw.pop(k) for k in ("n_parallel", "ctx_per_slot", "branch_mode", "early_stop") if k in kw}
    config = EngineConfig(threads=threads or default_threads(), **engine_kw)

    def scorer() -> Policy:
        return _load_hf(model, device=device, threads=threads, **kw)

    return LlamaCppPolicy(gguf, tokenizer, fmt, model, adapters=adapters, config=config, scorer=scorer)
