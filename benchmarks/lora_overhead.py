"""What LoRA adapters cost llama.cpp sampling: the base model vs one adapter vs a chain of two
(round 2 of a run: base + adapter 1 + adapter 2, applied unmerged) vs the same two adapters
merged into one of rank r1 + r2 (`treeplay.policy.lora_gguf.merge_adapter_chain`; exact:
s1 B1 A1 + s2 B2 A2 = [s1 B1, s2 B2] [A1; A2]).
All variants sample the same prompts with the same seeds in one process, back to back.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/lora_overhead.py \
        runs/experiment/seed-0/sft/round-2/train/final [--bench sallm --tasks 24 --repeats 2]

Prints, per variant: wall seconds, prompt and generated tokens, generated tok/s and the time
relative to the base model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def adapter_dirs(model: Path) -> list[Path]:
    from treeplay.policy.chain import model_chain

    return [Path(p) for p in model_chain(str(model)).adapters]


def time_variant(name: str, adapters: list[Path], base: Any, tasks: list, repeats: int) -> dict:
    """Best of `repeats` timings of sampling `tasks` with `base`'s engine plus `adapters`."""
    from treeplay.policy.llamacpp import EngineConfig, LlamaCppPolicy
    from treeplay.policy.records import SampleRequest, SamplingParams

    policy = LlamaCppPolicy(base.gguf, base.tokenizer, base.prompt_format, name, adapters=adapters,
                            config=EngineConfig(threads=2))  # fmt: skip
    params = SamplingParams(temperature=0.2, top_p=0.95, max_new_tokens=160, seed=0)
    requests = [SampleRequest(t, t.prefix, 1, params, request_id=t.id) for t in tasks]
    policy.sample(requests[:2])  # warm-up
    best = None
    for _ in range(repeats):
        before = dict(policy.counts)
        started = time.perf_counter()
        policy.sample(requests)
        wall = time.perf_counter() - started
        generated = policy.counts["generated_tokens"] - before["generated_tokens"]
        prompt = policy.counts["prompt_tokens"] - before["prompt_tokens"]
        if best is None or wall < best["wall_s"]:
            best = {"variant": name, "wall_s": round(wall, 2), "prompt_tokens": prompt, "generated_tokens": generated,
                    "generated_tok_s": round(generated / wall, 1)}
    return best or {}


def main() -> None:
    from treeplay.eval.evaluate import resolve_bench
    from treeplay.policy import load_policy
    from treeplay.policy.lora_gguf import export_lora_gguf, merge_adapter_chain

    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path, help="a trained round-2 model dir (two chained adapters)")
    parser.add_argument("--bench", default="sallm")
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    dirs = adapter_dirs(args.model)
    if len(dirs) < 2:
        raise SystemExit(f"{args.model}: expected a chain of >= 2 adapters, found {len(dirs)}")
    tasks = resolve_bench(args.bench, limit=args.tasks)
    base = load_policy("embedded", backend="llamacpp", threads=2)  # its GGUF, tokenizer and prompt format
    base_gguf = base.gguf
    with tempfile.TemporaryDirectory() as tmp:
        merged = merge_adapter_chain(dirs, base_gguf, Path(tmp) / "chain.gguf")
        variants = [("base", []), ("1 adapter", [export_lora_gguf(dirs[0], base_gguf)]),
                    ("2 adapters chained", [export_lora_gguf(d, base_gguf) for d in dirs]),
                    ("2 adapters merged into one", [merged])]
        rows = [time_variant(name, adapters, base, tasks, args.repeats) for name, adapters in variants]
    base_wall = rows[0]["wall_s"]
    for row in rows:
        row["vs_base"] = round(row["wall_s"] / base_wall, 2)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
