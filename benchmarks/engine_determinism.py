"""Are sampled runs reproducible, and what does reproducibility cost? For each slot count
(`n_parallel`), two fresh llama.cpp engines sample the same seeded requests (one bench's prompts,
T = 0.2 as in the experiment's evaluation); prints how many completions the two passes share and
each pass's wall time, then the time ratio of the slot counts (all in one process, back to back).

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/engine_determinism.py \
        [MODEL] [--bench sallm --tasks 32 --slots 1,4]

With several slots, which requests share a batch depends on timing, and a batch of another size
sums in another order: a near-tie can then sample another token. With one slot the requests run
in order and every pass repeats the same arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any


def one_pass(loaded: Any, slots: int, requests: list, model: str) -> tuple[float, list]:
    from engine_common import engine_like  # this directory is on sys.path

    policy = engine_like(loaded, model, threads=loaded.config.threads, n_parallel=slots)
    started = time.perf_counter()
    out = policy.sample(requests)
    return time.perf_counter() - started, out


def main() -> None:
    from engine_common import bench_requests  # this directory is on sys.path

    from treeplay.policy import load_policy

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="embedded", help="embedded or a trained model dir")
    parser.add_argument("--bench", default="sallm")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--slots", default="1,4")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    requests = bench_requests(args.bench, args.tasks)
    loaded = load_policy(args.model, backend="llamacpp", threads=args.threads)
    walls = {}
    for slots in (int(s) for s in args.slots.split(",")):
        (wall_a, first), (wall_b, second) = (one_pass(loaded, slots, requests, args.model) for _ in range(2))
        same = sum(a.token_ids == b.token_ids for a, b in zip(first, second, strict=True))
        walls[slots] = (wall_a + wall_b) / 2
        print(json.dumps({"n_parallel": slots, "same_completions": f"{same}/{len(requests)}", "wall_s": [round(wall_a, 1), round(wall_b, 1)],
                          "tokens": sum(len(c.token_ids) for c in first), "bench": args.bench, "model": args.model}))  # fmt: skip
    if len(walls) > 1:
        fastest = min(walls.values())
        print(json.dumps({"wall_vs_fastest": {k: round(v / fastest, 2) for k, v in walls.items()}}))


if __name__ == "__main__":
    main()
