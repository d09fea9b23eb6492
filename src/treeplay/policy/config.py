"""Which policy to load and where: the options every command that samples shares.

`PolicyConfig.load()` is the one place that turns model/backend/device/threads (and an optional
LoRA adapter) into a `Policy`; the stage CLIs get these fields as options from
`treeplay.config_cli`, and `RunConfig.policy_config()` gives them for a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from treeplay.policy.records import Policy

Backend = Literal["auto", "llamacpp", "hf", "vllm"]


@dataclass(frozen=True)
class PolicyConfig:
    model: str = field(default="embedded", metadata={
        "help": "Policy model: embedded (Qwen2.5-Coder-0.5B), embedded:qwen-coder-1.5b, embedded:smollm2-135m, "
                "a trained model dir, a local HF dir or a cached hub id."})
    backend: Backend = field(default="auto", metadata={
        "help": "auto (llama.cpp for embedded GGUF models on CPU, else hf), llamacpp, hf or vllm."})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda (hf and vllm backends)."})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads of the engine (torch or llama.cpp); default: all cores.", "ge": 1})
    n_parallel: int = field(default=4, metadata={
        "help": "llama.cpp: requests decoded together in one batch (slots). 4 was fastest here; 1 makes sampled "
                "runs reproducible (which requests share a batch moves near-ties; docs/policy.md).", "ge": 1})
    early_stop: bool = field(default=True, metadata={
        "help": "llama.cpp: stop decoding a request once the stop rule has settled where its code ends "
                "(the same completions, fewer tokens; docs/policy.md)."})
    adapter: str | None = field(default=None, metadata={
        "help": "LoRA adapter dir on top of the model (hf backend; for llama.cpp pass the trained model dir "
                "as the model)."})

    def load(self, **backend_options: Any) -> Policy:
        """The policy these options name (torch threads set too); extra options go to the backend."""
        from treeplay.policy import load_policy

        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        from treeplay.policy.load import resolve_backend

        options: dict[str, Any] = {"device": self.device, "threads": self.threads, **backend_options}
        if resolve_backend(self.model, self.backend, self.device) == "llamacpp":
            options.setdefault("n_parallel", self.n_parallel)
            options.setdefault("early_stop", self.early_stop)
        if self.adapter:
            options["adapter"] = self.adapter
        return load_policy(self.model, backend=self.backend, **options)
