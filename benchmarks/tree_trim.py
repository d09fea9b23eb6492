"""What trimming budget-cut branches costs: the tree builder cuts a completion stopped by
`max_new_tokens` back to its last full line. Before 2026-11-29 every such cut was scored again by the
torch model (one forward of prefix + kept text); now the sampled tokens are cut where a token ends at
that newline (`Completion.token_ends`) and only the rest is scored again.

Builds the trees of a run config's arm (TSP or self-play settings) for the first `--tasks` training
tasks with the real policy, records every `_trim` call's input, then trims the same inputs again
both ways, back to back in one process, and reports: build wall time, trims, how many each way
scores again and the time each way takes, whether the kept texts agree (they must), and how the
sampled tokens compare with the tokens of the re-scored text.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/tree_trim.py \
        configs/experiment-tasks36-v10-lr5e-5.yaml [--arm tsp|selfplay --tasks 6]

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any


def main() -> None:
    from treeplay.pipeline import load_config
    from treeplay.policy import load_policy
    from treeplay.run_config import load_train_tasks
    from treeplay.tree.builder import TreeBuilder

    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--arm", default="tsp")
    parser.add_argument("--tasks", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = load_config(args.config)
    arm = next(a for a in config.arms() if a.name == args.arm)
    tree_cfg = config.arm_tree_config(arm)
    tasks = load_train_tasks(config)[: args.tasks]
    policy = load_policy(config.model, threads=config.threads or 2)
    builder = TreeBuilder(policy, tree_cfg)
    calls: list[tuple[Any, list]] = []
    trim = builder._trim

    def recording(task: Any, pending: list) -> list:
        calls.append((task, list(pending)))
        return trim(task, pending)

    builder._trim = recording  # type: ignore[method-assign]
    started = time.perf_counter()
    for task in tasks:
        builder.build(task, round=1, seed=0)
    build_s = time.perf_counter() - started
    builder._trim = trim  # type: ignore[method-assign]

    def timed(strip: bool) -> tuple[float, list, int]:
        scored = 0
        out = []
        began = time.perf_counter()
        for task, pending in calls:
            given = [_without_ends(p) for p in pending] if strip else pending
            kept = trim(task, given)
            scored += sum(a.completion.token_ends == () and b.completion.text != a.completion.text
                          for a, b in zip(kept, pending, strict=True))  # fmt: skip
            out += kept
        return time.perf_counter() - began, out, scored

    old_s, old, old_scored = timed(strip=True)  # every cut scored again (the code before 2026-11-29)
    new_s, new, new_scored = timed(strip=False)
    given = [p for _, pending in calls for p in pending]
    cut = [(a, b) for a, b, p in zip(old, new, given, strict=True)
           if b.completion.token_ends and b.completion.text != p.completion.text]  # fmt: skip
    print(json.dumps({
        "config": args.config, "arm": args.arm, "tasks": len(tasks), "build_s": round(build_s, 1),
        "trim_calls": len(calls), "completions": sum(len(p) for _, p in calls),
        "trimmed": sum(a.completion.text != p.completion.text for a, p in zip(old, given, strict=True)),
        "scored_again_before": old_scored, "scored_again_now": new_scored,
        "trim_s_before": round(old_s, 2), "trim_s_now": round(new_s, 2),
        "same_texts": all(a.completion.text == b.completion.text for a, b in zip(old, new, strict=True)),
        "cut_on_sampled_tokens": len(cut),
        "same_token_ids_as_rescored": sum(a.completion.token_ids == b.completion.token_ids for a, b in cut),
        "max_abs_logprob_diff": round(_max_logprob_diff(cut), 3),
    }))


def _max_logprob_diff(cut: list) -> float:
    """Largest |engine - torch| log-prob over the cuts whose sampled and re-scored tokens agree."""
    same = [(a.completion, b.completion) for a, b in cut if a.completion.token_ids == b.completion.token_ids]
    return max((abs(x - y) for a, b in same for x, y in zip(a.logprobs, b.logprobs, strict=True)), default=0.0)


def _without_ends(pending: Any) -> Any:
    return dataclasses.replace(pending, completion=dataclasses.replace(pending.completion, token_ends=()))


if __name__ == "__main__":
    main()
