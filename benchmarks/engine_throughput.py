"""The same tree-shaped sampling workload through the torch backend and the llama.cpp backend.

Workload: T SafeCoder Python train tasks, N trunk nodes per task (line starts spread over the golden
solution), B branches per node, up to M new tokens, temperature 0.8, stop rules on (as in a real tree
build). Each backend loads the embedded model (timed), then samples the nodes task by task (one
`sample` call per task, like `TreeBuilder`). Prints load time, sampling wall time, generated tokens,
tokens/s and the llama.cpp / torch ratio of end-to-end tokens/s.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/engine_throughput.py --threads 2

`--out FILE` appends the result as one JSON line. Time it on an otherwise idle machine (say in the
docs when a figure was taken under load).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any


def node_requests(tasks: list[Any], nodes: int, branches: int, max_new_tokens: int) -> list[list[Any]]:
    """Per task, `nodes` requests at line starts spread evenly over the golden solution."""
    from treeplay.policy import SampleRequest, SamplingParams

    per_task = []
    for t_index, task in enumerate(tasks):
        golden = task.golden or ""
        starts = [0] + [i + 1 for i, ch in enumerate(golden) if ch == "\n" and i + 1 < len(golden)]
        picks = [starts[round(k * (len(starts) - 1) / max(1, nodes - 1))] for k in range(nodes)]
        params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens, seed=t_index)
        per_task.append([
            SampleRequest(task, task.prefix + golden[:offset], n=branches, params=params, request_id=f"{task.id}@{offset}")
            for offset in picks
        ])
    return per_task


def measure(backend: str, threads: int, workload: list[list[Any]]) -> dict[str, Any]:
    from treeplay.policy import load_policy

    started = time.perf_counter()
    policy = load_policy("embedded", backend=backend, threads=threads)
    loaded = time.perf_counter()
    completions = []
    for requests in workload:
        completions.extend(policy.sample(requests))
    done = time.perf_counter()
    tokens = sum(len(c.token_ids) for c in completions)
    empty = sum(not c.text.strip() for c in completions)
    return {
        "backend": backend,
        "load_s": round(loaded - started, 2),
        "sample_s": round(done - loaded, 2),
        "completions": len(completions),
        "empty": empty,
        "generated_tokens": tokens,
        "tokens_per_s": round(tokens / (done - loaded), 2),
        "end_to_end_tokens_per_s": round(tokens / (done - started), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="hf,llamacpp")
    parser.add_argument("--data", default=os.environ.get("TREEPLAY_SHARED_DATA", "../shared/data"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from treeplay.tasks import load_tasks

    tasks = [t for t in load_tasks(f"{args.data}/safecoder/sec-new-desc.train.jsonl", language="py") if t.golden]
    workload = node_requests(tasks[: args.tasks], args.nodes, args.branches, args.max_new_tokens)
    results = {}
    for backend in args.backends.split(","):
        results[backend] = measure(backend, args.threads, workload)
        print(json.dumps(results[backend]), flush=True)
    summary: dict[str, Any] = {
        "workload": vars(args) | {"requests": sum(len(w) for w in workload)},
        "results": results,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_end": os.getloadavg()[0],
    }
    if "hf" in results and "llamacpp" in results:
        summary["ratio_end_to_end"] = round(
            results["llamacpp"]["end_to_end_tokens_per_s"] / results["hf"]["end_to_end_tokens_per_s"], 2
        )
        summary["ratio_sampling"] = round(results["llamacpp"]["tokens_per_s"] / results["hf"]["tokens_per_s"], 2)
    print(json.dumps(summary, indent=2))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
