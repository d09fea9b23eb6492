"""Node-level pairs straight from tasks with a golden and a vulnerable reference solution.

Used when no trees exist yet (bootstrap, smoke runs, the measurement in docs/train.md): the node
is the start of the line where golden and vulnerable first differ, the shared prefix is
`task.prefix + golden[:node]`, chosen = golden continuation, rejected = vulnerable continuation.

    python -m treeplay.train.reference_pairs --tasks ../shared/data/safecoder/sec-new-desc.train.jsonl \
        --language py --out pairs.jsonl
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable

from treeplay.tasks.records import Task
from treeplay.tree.records import Pair


def first_divergence_line_start(a: str, b: str) -> int | None:
    """Offset of the start of the line holding the first differing character; None if a == b."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    if n == len(a) == len(b):
        return None
    return a.rfind("\n", 0, n) + 1


def reference_node_pair(task: Task, *, max_chars: int | None = 600) -> Pair | None:
    """The golden-vs-vulnerable pair at the first changed line, or None when the task lacks one."""
    if not task.golden or not task.vulnerable:
        return None
    node = first_divergence_line_start(task.golden, task.vulnerable)
    if node is None:
        return None
    chosen, rejected = task.golden[node:], task.vulnerable[node:]
    if max_chars is not None:
        chosen, rejected = chosen[:max_chars], rejected[:max_chars]
    if not chosen or not rejected or chosen == rejected:
        return None
    return Pair(
        task_id=task.id,
        node_id=f"ref@{node}",
        mode="golden-vs-branch",
        language=task.language,
        cwe=task.cwe[0] if task.cwe else None,
        instruction=task.instruction,
        prefix=task.prefix + task.golden[:node],
        chosen=chosen,
        rejected=rejected,
    )


def reference_node_pairs(tasks: Iterable[Task], *, max_chars: int | None = 600) -> list[Pair]:
    return [p for t in tasks if (p := reference_node_pair(t, max_chars=max_chars)) is not None]


def main() -> None:
    from treeplay.jsonl import write_jsonl
    from treeplay.tasks import load_tasks

    parser = argparse.ArgumentParser(description="golden-vs-vulnerable node-level pairs from tasks")
    parser.add_argument("--tasks", required=True)
    parser.add_argument("--language", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--max-chars", type=int, default=600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tasks = load_tasks(args.tasks, language=args.language, limit=args.limit)
    pairs = reference_node_pairs(tasks, max_chars=args.max_chars)
    write_jsonl(args.out, pairs)
    print(f"{len(pairs)} pairs from {len(tasks)} tasks -> {args.out}")


if __name__ == "__main__":
    main()
