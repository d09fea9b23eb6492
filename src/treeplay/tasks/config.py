"""`TaskSource`: the tasks stage's config, which tasks a run trains on (`train_tasks:` of a run config).

Fields are written like the other stage configs (`field(default=..., metadata={"help": ...})`);
`treeplay.run_config` types its `train_tasks:` section with a model derived from them
(`config_fields.config_section_model`), so a bad key names `train_tasks.<field>` before any work.
The loaded task ids (not this config) go into the data stages' digests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from treeplay.config_fields import option
from treeplay.tasks.load import load_tasks
from treeplay.tasks.records import Task

TaskOrder = Literal["file", "round-robin-cwe"]


@dataclass(frozen=True)
class TaskSource:
    """Which tasks to train on: a file or directory of any task format, filtered and cut."""

    path: str = field(metadata={"help": "Task file or directory (any format `load_tasks` reads); "
                                        "`data:` at the start stands for the shared data root."})
    format: str | None = option(None, "Task format (default: detected from the content or layout).")
    language: str | None = option(None, "Keep these languages only (comma-separated codes: py, c, ...).")
    cwe: str | None = option(None, "Keep these CWEs only (comma-separated, e.g. CWE-89,CWE-79).")
    split: str | None = option(None, "Keep these splits only (comma-separated: train, val, eval, heldout-cwe).")
    exclude_language: str | None = option(None, "Drop these languages (comma-separated codes).")
    limit: int | None = option(None, "Tasks kept at most, after the filters and the order (None: all).", ge=1)
    order: TaskOrder = option("file", "Which tasks a limit keeps: `file`, the first ones in file order "
                                      "(SafeCoder files are sorted by CWE, so a small limit covers one or two "
                                      "CWEs); `round-robin-cwe`, one task of each CWE in turn, then the next.")

    def load(self, path: Path) -> list[Task]:
        """The tasks of `path` (this source's `path`, resolved by the caller) after the filters: the
        given languages, CWEs and splits, no excluded language, only tasks whose golden differs from
        their vulnerable reference (or that lack one of them), in `order`, cut to `limit`."""
        tasks = load_tasks(path, format=self.format, language=self.language, cwe=self.cwe, split=self.split)
        if self.exclude_language:
            excluded = {x.strip() for x in self.exclude_language.split(",")}
            tasks = [t for t in tasks if t.language not in excluded]
        tasks = [t for t in tasks if t.golden is None or t.changed_spans or t.vulnerable is None]
        if self.order == "round-robin-cwe":
            tasks = round_robin_by_cwe(tasks)
        return tasks[: self.limit] if self.limit else tasks


def round_robin_by_cwe(tasks: Sequence[Task]) -> list[Task]:
    """Tasks interleaved across primary CWEs (first of each CWE in order of appearance, then the
    second of each, ...), so that any prefix of the list covers as many CWEs as it can."""
    groups: dict[str | None, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.primary_cwe, []).append(task)
    queues = list(groups.values())
    out: list[Task] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out
