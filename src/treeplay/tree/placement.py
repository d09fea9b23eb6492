"""Where a tree's nodes go and which code prefix their branches continue.

Pure functions of tasks, nodes and branches (no policy, no oracle): the tree builder's phases
(`treeplay.tree.builder`) call them, and `pairs`/`render` use `node_prefix` to rebuild a node's
prefix from a stored tree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from treeplay.tasks.records import Task
from treeplay.tree.offsets import line_number_start
from treeplay.tree.records import Branch, Node, Tree
from treeplay.tree.strategies import PlacedNode

ROOT_ID = "root"


def choose_golden(
    task: Task, root_branches: Sequence[Branch]
) -> tuple[str | None, Literal["task", "self-play", "none"]]:
    """The task's golden, else the most likely secure (and functional) root sample, else none."""
    if task.golden is not None:
        return task.golden, "task"
    secure = [
        b for b in root_branches if b.node_id == ROOT_ID and b.label == "secure" and b.completion.strip()
    ]
    if not secure:
        return None, "none"
    best = max(secure, key=lambda b: (sum(b.logprobs), -root_branches.index(b)))
    return best.completion, "self-play"


def select_within_budget(placed: Sequence[PlacedNode], room: int) -> list[PlacedNode]:
    """Keep at most `room` nodes: most strategies agreeing first, then earliest; path order out."""
    if room <= 0:
        return []
    ranked = sorted(placed, key=lambda p: (-len(p.strategies), p.char_offset))[:room]
    return sorted(ranked, key=lambda p: p.char_offset)


def merge_root(nodes: list[Node], placed: list[PlacedNode]) -> tuple[list[Node], list[PlacedNode]]:
    """A proposal at offset 0 is the root node itself: fold its strategy names into the root."""
    if not nodes or nodes[0].id != ROOT_ID:
        return nodes, placed
    at_root = [p for p in placed if p.char_offset == 0]
    if not at_root:
        return nodes, placed
    names = ["root", *[s for p in at_root for s in p.strategies]]
    root = dataclasses.replace(nodes[0], strategy="+".join(dict.fromkeys(names)))
    return [root, *nodes[1:]], [p for p in placed if p.char_offset != 0]


def fit_branch_budget(nodes: list[Node], k: int, room: int) -> list[Node]:
    """The first nodes whose `k` branches each still fit into `room` branches."""
    return nodes[: max(0, room // k)]


def node_depth(nodes: Sequence[Node], node_id: str) -> int:
    for node in nodes:
        if node.id == node_id:
            return node.depth
    raise KeyError(node_id)


def next_node_number(nodes: Sequence[Node]) -> int:
    """The number of the next `nN` node id (1 when there is none yet)."""
    return 1 + max((int(n.id[1:]) for n in nodes if n.id.startswith("n") and n.id[1:].isdigit()), default=0)


def rebranch_offset(task: Task, branch: Branch) -> int | None:
    """Offset (into the branch path after task.prefix) of the start of its first flagged line.

    None when the branch is not vulnerable, has no flagged line, or the line starts at or before
    the branch's own node (the mistake is not inside the sampled completion).
    """
    if branch.label != "vulnerable" or branch.first_flagged_line is None:
        return None
    start = line_number_start(branch.text, branch.first_flagged_line)
    if start is None or start <= len(branch.prefix):
        return None
    return start - len(task.prefix)


def deep_node_prefix(task: Task, node: Node, branches: Sequence[Branch]) -> str:
    """The code prefix a deeper node's branches continue: its parent branch cut at the node."""
    assert node.branch_of_parent is not None
    parent = branches[node.branch_of_parent]
    return task.prefix + parent.text[len(task.prefix) :][: node.char_offset]


def node_prefix(task: Task, tree: Tree, node: Node) -> str:
    """The code prefix (task.prefix + path up to the node) that a node's branches continue."""
    if node.parent is None:
        return task.prefix + (tree.golden or "")[: node.char_offset]
    return deep_node_prefix(task, node, tree.branches)
