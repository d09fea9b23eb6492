"""treeplay.policy stage: one `Policy` interface over real model backends.

`load_policy("embedded")` gives the embedded SmolLM2-135M-Instruct on CPU; any local HF model dir
or cached hub id works with backend "hf"; backend "vllm" needs the `[gpu]` extra.
"""

from __future__ import annotations

from typing import Any

from treeplay.policy.records import Completion, Policy, SampleRequest, SamplingParams, Scored, ScoreRequest

__all__ = [
    "Completion",
    "Policy",
    "SampleRequest",
    "SamplingParams",
    "ScoreRequest",
    "Scored",
    "load_policy",
]

BACKENDS = ("hf", "vllm")


def load_policy(model: str = "embedded", *, backend: str = "hf", **kw: Any) -> Policy:
    """A `Policy` for `model` ("embedded", "embedded:qwen-coder-0.5b", a local dir or cached hub id).

    hf keyword arguments: device ("cpu"/"cuda"), dtype, adapter (LoRA dir), max_batch_rows,
    reuse_prefix. vllm keyword arguments: see `treeplay.policy.vllm_backend.VLLMPolicy`.
    """
    if backend == "hf":
        from treeplay.policy.hf import HFPolicy
        from treeplay.policy.models import load_model_and_tokenizer

        load_kw = {k: kw.pop(k) for k in ("device", "dtype", "adapter") if k in kw}
        hf_model, tokenizer, fmt = load_model_and_tokenizer(model, **load_kw)
        return HFPolicy(hf_model, tokenizer, fmt, model_id=model, **kw)
    if backend == "vllm":
        from treeplay.policy.vllm_backend import VLLMPolicy

        return VLLMPolicy.from_model(model, **kw)
    raise ValueError(f"unknown policy backend {backend!r} (expected one of {BACKENDS})")
