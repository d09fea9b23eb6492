"""What early stop saves: llama.cpp sampling with `EngineConfig.early_stop` off (decode to EOS, the
fence or max_new_tokens, then cut) vs on (stream, stop once the stop rule has settled), for one model
on one bench's prompts with the same seeds, in one process, back to back; the completions must be
the same (counted), only the decoded tokens and the time differ.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/early_stop.py \
        runs/experiment/seed-0/tsp/round-2/train/final [--bench sallm --tasks 32 --max-new-tokens 160]

Prints one JSON line per setting (wall seconds, tokens the engine sent, tokens kept after the cut)
and the ratio of the two wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any


def run(policy: Any, requests: list, name: str) -> tuple[dict, list]:
    before = policy.counts["generated_tokens"]
    started = time.perf_counter()
    out = policy.sample(requests)
    wall = time.perf_counter() - started
    sent = policy.counts["generated_tokens"] - before
    kept = sum(len(c.token_ids) for c in out)
    return {"setting": name, "wall_s": round(wall, 2), "tokens_sent": sent, "tokens_kept": kept,
            "sent_tok_s": round(sent / wall, 1)}, out  # fmt: skip


def main() -> None:
    from engine_common import bench_requests, engine_like  # this directory is on sys.path

    from treeplay.policy import load_policy

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="embedded", help="embedded or a trained model dir")
    parser.add_argument("--bench", default="sallm")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    requests = bench_requests(args.bench, args.tasks, args.max_new_tokens)
    loaded = load_policy(args.model, backend="llamacpp", threads=args.threads)  # GGUF, adapters, tokenizer, format
    rows, outputs = [], []
    for early in (False, True):
        policy = engine_like(loaded, args.model, threads=args.threads, early_stop=early)
        policy.sample(requests[:2])  # warm-up
        row, out = run(policy, requests, "early stop" if early else "whole response")
        rows.append(row)
        outputs.append(out)
    same = sum(a.token_ids == b.token_ids for a, b in zip(*outputs, strict=True))
    for row in rows:
        print(json.dumps({**row, "model": args.model, "bench": args.bench, "tasks": len(requests)}))
    print(json.dumps({"same_completions": f"{same}/{len(requests)}",
                      "wall_ratio_early_vs_whole": round(rows[1]["wall_s"] / rows[0]["wall_s"], 2),
                      "tokens_sent_ratio": round(rows[1]["tokens_sent"] / max(1, rows[0]["tokens_sent"]), 2)}))


if __name__ == "__main__":
    main()
