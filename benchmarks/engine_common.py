"""What the llama.cpp benchmarks share: seeded requests for one bench's prompts, and another engine
over an already loaded policy's GGUF, adapters, tokenizer and prompt format."""

from __future__ import annotations

from typing import Any


def bench_requests(bench: str, tasks: int, max_new_tokens: int = 160) -> list:
    """One request per task of `bench` (its first `tasks`), T = 0.2 as in the experiment's evaluation;
    HumanEval gets its stop strings."""
    from treeplay.eval.evaluate import HUMANEVAL_STOP, is_humaneval, resolve_bench
    from treeplay.policy.records import SampleRequest, SamplingParams

    chosen = resolve_bench(bench, limit=tasks)
    stop = HUMANEVAL_STOP if is_humaneval(chosen) else ()
    params = SamplingParams(temperature=0.2, top_p=0.95, max_new_tokens=max_new_tokens, seed=0, stop=stop)
    return [SampleRequest(t, t.prefix, 1, params, request_id=t.id) for t in chosen]


def engine_like(loaded: Any, name: str, **config: Any) -> Any:
    """A fresh llama.cpp engine for `loaded`'s model with its own `EngineConfig(**config)`."""
    from treeplay.policy.llamacpp import EngineConfig, LlamaCppPolicy

    return LlamaCppPolicy(loaded.gguf, loaded.tokenizer, loaded.prompt_format, name, adapters=loaded.adapters,
                          config=EngineConfig(**config))  # fmt: skip
