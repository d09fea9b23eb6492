"""Summary figures of a trees file: nodes, labels, pairs, oracle-verified share, GPT-4o agreement."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from treeplay.tasks.records import Task
from treeplay.tree.pairs import count_by_mode
from treeplay.tree.records import Tree
from treeplay.tree.strategies import find_line

AUTOMATIC = ("diff", "oracle", "entropy", "llm", "root")


def node_line(path: str, offset: int) -> int:
    """1-based line a node points at: the line of the first non-blank character at/after it.

    A token-snapped node often sits on the newline that ends the previous line (BPE tokens like
    "\\n    "); the decision it stands for is on the next line.
    """
    position = offset
    while position < len(path) and path[position] in " \t\r\n":
        position += 1
    if position >= len(path):
        position = offset
    return path.count("\n", 0, position) + 1


@dataclass
class Agreement:
    """Line-level agreement of one strategy's nodes with the GPT-4o annotated nodes."""

    trees: int = 0
    strategy_lines: int = 0
    annotated_lines: int = 0
    hits: int = 0  # lines both the strategy and GPT-4o marked

    @property
    def precision(self) -> float | None:
        return self.hits / self.strategy_lines if self.strategy_lines else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.annotated_lines if self.annotated_lines else None


@dataclass
class TreeStats:
    trees: int = 0
    nodes: int = 0
    nodes_per_task: list[int] = field(default_factory=list)
    nodes_by_strategy: Counter[str] = field(default_factory=Counter)
    nodes_by_depth: Counter[int] = field(default_factory=Counter)
    branches_by_label: Counter[str] = field(default_factory=Counter)
    risk_branches_by_label: Counter[str] = field(default_factory=Counter)  # not the plain root node
    golden_sources: Counter[str] = field(default_factory=Counter)
    truncated_branches: int = 0
    dropped_empty_or_duplicate: int = 0
    build_seconds: float = 0.0
    pairs_by_mode: dict[str, int] = field(default_factory=dict)
    agreement: dict[str, Agreement] = field(default_factory=dict)

    @property
    def branches(self) -> int:
        return sum(self.branches_by_label.values())

    @property
    def verified_vulnerable_share(self) -> float | None:
        """Share of risk-node branches the oracle verified as vulnerable.

        The reference implementation labels every branch sampled at a risk node as vulnerable;
        this is how often that assumption holds.
        """
        total = sum(self.risk_branches_by_label.values())
        return self.risk_branches_by_label["vulnerable"] / total if total else None

    @property
    def nonfunctional_share(self) -> float | None:
        """Share of branches labelled `nonfunctional` (failed tests, or the oracle's static
        functional sanity check when the task has no tests)."""
        return self.branches_by_label["nonfunctional"] / self.branches if self.branches else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trees": self.trees,
            "nodes": self.nodes,
            "nodes_per_task_mean": (self.nodes / self.trees) if self.trees else 0.0,
            "nodes_per_task_max": max(self.nodes_per_task, default=0),
            "nodes_by_strategy": dict(sorted(self.nodes_by_strategy.items())),
            "nodes_by_depth": {str(k): v for k, v in sorted(self.nodes_by_depth.items())},
            "branches": self.branches,
            "branches_by_label": dict(sorted(self.branches_by_label.items())),
            "risk_node_branches_by_label": dict(sorted(self.risk_branches_by_label.items())),
            "verified_vulnerable_share": self.verified_vulnerable_share,
            "nonfunctional_share": self.nonfunctional_share,
            "truncated_branches": self.truncated_branches,
            "dropped_empty_or_duplicate": self.dropped_empty_or_duplicate,
            "golden_sources": dict(sorted(self.golden_sources.items())),
            "build_seconds": round(self.build_seconds, 1),
            "pairs_by_mode": self.pairs_by_mode,
            "agreement_with_gpt4o": {
                name: {
                    "trees": a.trees,
                    "strategy_lines": a.strategy_lines,
                    "annotated_lines": a.annotated_lines,
                    "precision": a.precision,
                    "recall": a.recall,
                }
                for name, a in sorted(self.agreement.items())
            },
        }


def annotated_lines(task: Task, golden: str) -> set[int]:
    """Golden lines (1-based, in the golden completion) of the task's GPT-4o nodes."""
    lines = set()
    for node in task.annotated_nodes:
        start = find_line(golden, node.line)
        if start is not None:
            lines.add(golden.count("\n", 0, start) + 1)
    return lines


def strategy_lines(tree: Tree, strategy: str) -> set[int]:
    """Golden lines of the trunk nodes a strategy proposed (alone or merged with others)."""
    golden = tree.golden or ""
    return {
        node_line(golden, node.char_offset)
        for node in tree.nodes
        if node.parent is None and strategy in node.strategy.split("+")
    }


def compute_stats(trees: Sequence[Tree], tasks_by_id: dict[str, Task]) -> TreeStats:
    stats = TreeStats(trees=len(trees))
    for tree in trees:
        stats.nodes += len(tree.nodes)
        stats.nodes_per_task.append(len(tree.nodes))
        stats.golden_sources[tree.golden_source] += 1
        stats.dropped_empty_or_duplicate += int(tree.stats.get("dropped_empty_or_duplicate", 0))
        stats.build_seconds += float(tree.stats.get("elapsed_s", 0.0))
        strategy_of = {n.id: n.strategy for n in tree.nodes}
        for node in tree.nodes:
            stats.nodes_by_depth[node.depth] += 1
            for name in node.strategy.split("+"):
                stats.nodes_by_strategy[name] += 1
        for branch in tree.branches:
            stats.branches_by_label[branch.label] += 1
            stats.truncated_branches += branch.finish_reason == "length"
            if strategy_of.get(branch.node_id) != "root":
                stats.risk_branches_by_label[branch.label] += 1
        task = tasks_by_id.get(tree.task_id)
        if task is None or not task.annotated_nodes or not tree.golden:
            continue
        wanted = annotated_lines(task, tree.golden)
        if not wanted:
            continue
        built = {s for n in tree.nodes if n.parent is None for s in n.strategy.split("+")}
        for name in sorted(built & set(AUTOMATIC) - {"root"}):
            found = strategy_lines(tree, name)
            agreement = stats.agreement.setdefault(name, Agreement())
            agreement.trees += 1
            agreement.strategy_lines += len(found)
            agreement.annotated_lines += len(wanted)
            agreement.hits += len(found & wanted)
    stats.pairs_by_mode = count_by_mode(trees, tasks_by_id)
    return stats


def tasks_from_trees(trees: Sequence[Tree]) -> dict[str, Task]:
    """Task records from the snapshots stored in the trees (`Tree.task`)."""
    result = {}
    for tree in trees:
        if tree.task is not None:
            result[tree.task_id] = Task.from_dict(tree.task)
    return result


def attach_annotations(
    trees: Sequence[Tree], tasks_by_id: dict[str, Task], annotated: Sequence[Task]
) -> dict[str, Task]:
    """Give each tree's task the GPT-4o nodes of the annotated task with the same golden code.

    The TSP reference's annotated file holds the SafeCoder rows with other ids, so rows are
    matched by their golden completion. Returns a new mapping; unmatched tasks are unchanged.
    """
    by_golden = {t.golden: t.annotated_nodes for t in annotated if t.golden and t.annotated_nodes}
    result = dict(tasks_by_id)
    for tree in trees:
        task = result.get(tree.task_id)
        if task is not None and not task.annotated_nodes and task.golden in by_golden:
            result[tree.task_id] = dataclasses.replace(task, annotated_nodes=by_golden[task.golden])
    return result
