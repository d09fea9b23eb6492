"""The tree stage's write phase: stream one tree per task to JSONL, resumably.

`build_trees` runs `TreeBuilder.build` (sample, label, rebranch) per task and appends each tree
as one JSON line as soon as it is done; a rerun skips the tasks already in the file.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail
from treeplay.policy.records import Policy
from treeplay.tasks.records import Task
from treeplay.tree.builder import JudgeFn, TreeBuilder, TreeConfig


@dataclass
class BuildSummary:
    built: int = 0
    skipped: int = 0
    repaired_tail: bool = False
    elapsed_s: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)


def done_task_ids(out_path: Path | str, config_hash: str | None = None) -> set[str]:
    """Task ids already in `out_path` (a truncated last line is ignored).

    With `config_hash`, a tree built with other settings is an error (mixing configs in one file
    would silently change what the file means).
    """
    path = Path(out_path)
    if not path.exists():
        return set()
    done = set()
    for number, record in enumerate(read_jsonl(path, tolerate_truncated_tail=True), start=1):
        if config_hash is not None and record.get("config_hash") != config_hash:
            raise ValueError(
                f"{path}: tree {number} ({record.get('task_id')}) was built with config {record.get('config_hash')}, "
                f"not {config_hash}; use another --out or the same settings"
            )
        done.add(str(record["task_id"]))
    return done


def build_trees(
    tasks: Sequence[Task],
    policy: Policy,
    *,
    config: TreeConfig | None = None,
    out_path: Path | str,
    round: int = 0,
    seed: int = 0,
    progress: bool = True,
    judge: JudgeFn | None = None,
) -> BuildSummary:
    """Build a tree per task and append each as one JSON line as soon as it is done.

    Resumable: tasks whose tree is already in `out_path` are skipped and a truncated last line
    (left by a kill) is cut first, so a resumed run never duplicates a tree.
    """
    config = config or TreeConfig()
    started = time.monotonic()
    summary = BuildSummary(repaired_tail=repair_truncated_tail(out_path))
    done = done_task_ids(out_path, config.hash())
    todo = [t for t in tasks if t.id not in done]
    summary.skipped = len(tasks) - len(todo)
    builder = TreeBuilder(policy, config, judge=judge)

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from treeplay.progress import Progress

    with Progress(
        TextColumn("[bold]trees[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    ) as bar:
        handle = bar.add_task("", total=len(tasks), completed=summary.skipped)
        for task in todo:
            bar.update(handle, description=task.id)
            tree = builder.build(task, round=round, seed=seed)
            append_jsonl(out_path, [tree])
            summary.built += 1
            summary.labels.update(b.label for b in tree.branches)
            bar.advance(handle)
    summary.elapsed_s = time.monotonic() - started
    return summary
