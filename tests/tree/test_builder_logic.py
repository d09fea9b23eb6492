from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tree_fixtures import GOLDEN, PREFIX

from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail, to_jsonable
from treeplay.policy.records import Completion, SampleRequest, Scored, ScoreRequest
from treeplay.tasks.records import Task
from treeplay.tree.builder import TreeConfig, derive_seed
from treeplay.tree.offsets import line_number_start
from treeplay.tree.placement import (
    choose_golden,
    merge_root,
    next_node_number,
    node_prefix,
    rebranch_offset,
    select_within_budget,
)
from treeplay.tree.records import Branch, Node, Tree, tree_from_dict
from treeplay.tree.strategies import PlacedNode
from treeplay.tree.writer import done_task_ids

NODE_AT = GOLDEN.index("    cur.execute")
VULN_COMPLETION = (
    "    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n    return cur.fetchone()\n"
)


def _branch(prefix: str, completion: str, label: str, line: int | None, node: str = "n1") -> Branch:
    return Branch(node, prefix, completion, (1,), (-1.0,), label, first_flagged_line=line)  # type: ignore[arg-type]


def test_rebranch_offset_is_the_start_of_the_first_flagged_line(sql_task: Task) -> None:
    prefix = PREFIX + GOLDEN[:NODE_AT]
    # extra line first so the flagged line is inside the completion, not at the node itself
    completion = "    q = name\n" + VULN_COMPLETION
    flagged = (prefix + completion).count("\n", 0, (prefix + completion).index('    cur.execute("')) + 1
    branch = _branch(prefix, completion, "vulnerable", flagged)
    offset = rebranch_offset(sql_task, branch)
    assert offset is not None
    path = branch.text[len(PREFIX) :]
    assert path[offset:].startswith("    cur.execute(\"SELECT * FROM users WHERE name = '%s'")
    assert offset > NODE_AT
    # the child node's prefix + a re-sampled completion reproduces the program exactly
    deep = Node("n2", "n1", 0, offset, None, "rebranch", "h", depth=2)
    tree = Tree("t-sql", GOLDEN, "task", (deep,), (branch,), 0, "m", "h")
    child_prefix = node_prefix(sql_task, tree, deep)
    assert child_prefix + path[offset:] == branch.text


def test_rebranch_needs_a_flagged_line_inside_the_completion(sql_task: Task) -> None:
    prefix = PREFIX + GOLDEN[:NODE_AT]
    at_node = (prefix + VULN_COMPLETION).count("\n", 0, len(prefix)) + 1
    assert line_number_start(prefix + VULN_COMPLETION, at_node) == len(prefix)
    assert rebranch_offset(sql_task, _branch(prefix, VULN_COMPLETION, "vulnerable", at_node)) is None
    assert rebranch_offset(sql_task, _branch(prefix, VULN_COMPLETION, "vulnerable", 1)) is None
    assert rebranch_offset(sql_task, _branch(prefix, VULN_COMPLETION, "secure", None)) is None
    assert rebranch_offset(sql_task, _branch(prefix, VULN_COMPLETION, "vulnerable", 99)) is None


def test_choose_golden_prefers_task_then_most_likely_secure(prompt_only_task: Task, sql_task: Task) -> None:
    assert choose_golden(sql_task, []) == (GOLDEN, "task")
    root = [
        Branch("root", "import os\n", "a()\n", (1, 2), (-0.1, -0.1), "secure"),
        Branch("root", "import os\n", "b()\n", (1,), (-0.05,), "secure"),
        Branch("root", "import os\n", "c()\n", (1,), (-0.01,), "vulnerable"),
        Branch("root", "import os\n", "d()\n", (1,), (-0.01,), "nonfunctional"),
    ]
    assert choose_golden(prompt_only_task, root) == ("b()\n", "self-play")
    assert choose_golden(prompt_only_task, root[2:]) == (None, "none")


def test_budget_keeps_agreed_nodes_first() -> None:
    placed = [
        PlacedNode(5, 1, ("entropy",)),
        PlacedNode(9, 2, ("diff", "oracle")),
        PlacedNode(20, 3, ("entropy",)),
    ]
    assert [p.char_offset for p in select_within_budget(placed, 2)] == [5, 9]
    assert [p.char_offset for p in select_within_budget(placed, 1)] == [9]
    assert select_within_budget(placed, 0) == []


def test_config_validation_and_hash() -> None:
    assert TreeConfig().hash() == TreeConfig().hash()
    assert TreeConfig(k=2).hash() != TreeConfig().hash()
    with pytest.raises(ValueError, match="unknown risk-node strategy"):
        TreeConfig(strategies="diff,nope")
    with pytest.raises(ValueError, match="k must be"):
        TreeConfig(k=0)
    assert derive_seed(0, "t", "n1") == derive_seed(0, "t", "n1") != derive_seed(1, "t", "n1")


def _tree(task_id: str, config_hash: str = "h") -> Tree:
    return Tree(task_id, GOLDEN, "task", (), (), 0, "m", config_hash)


def test_resume_skips_done_trees_and_repairs_a_truncated_tail(tmp_path: Path) -> None:
    out = tmp_path / "trees.jsonl"
    append_jsonl(out, [_tree("a"), _tree("b")])
    with out.open("a") as fh:  # a kill in the middle of the third tree
        fh.write(json.dumps(to_jsonable(_tree("c")))[:40])
    assert done_task_ids(out, "h") == {"a", "b"}
    assert repair_truncated_tail(out)
    append_jsonl(out, [_tree("c")])
    ids = [r["task_id"] for r in read_jsonl(out)]
    assert ids == ["a", "b", "c"]
    with pytest.raises(ValueError, match="built with config h"):
        done_task_ids(out, "other")


def test_tree_round_trips_through_json(sql_task: Task) -> None:
    node = Node("n1", None, None, NODE_AT, 4, "diff", "hash")
    branch = Branch("n1", PREFIX, "x", (1, 2), (-0.5, -0.25), "vulnerable", ({"rule": "B608"},), "CWE-89", 5)
    tree = Tree(
        "t-sql",
        GOLDEN,
        "task",
        (node,),
        (branch,),
        2,
        "m",
        "h",
        {"n1": {"token_ids": [1], "logprobs": [-1.0]}},
        {"nodes": 1},
        sql_task.to_dict(),
    )
    again = tree_from_dict(json.loads(json.dumps(to_jsonable(tree))))
    assert again == tree
    assert Task.from_dict(again.task or {}) == sql_task


def test_identical_branches_are_dropped_per_node() -> None:
    from treeplay.tree.builder import _Pending, dedupe_pending

    def item(node: str, text: str, index: int) -> _Pending:
        return _Pending(node, "p", Completion(node, index, text, (1,), (-1.0,), "stop"))

    items = [item("n1", "a", 0), item("n1", "a", 1), item("n1", "b", 2), item("n2", "a", 0)]
    kept = dedupe_pending(items)
    assert [(p.node_id, p.completion.text, p.completion.index) for p in kept] == [
        ("n1", "a", 0),
        ("n1", "b", 2),
        ("n2", "a", 0),
    ]


def test_merge_root_folds_offset_zero_proposals_into_the_root() -> None:
    root = Node("root", None, None, 0, 0, "root", "h", depth=1)
    placed = [PlacedNode(0, 0, ("oracle",)), PlacedNode(0, 0, ("diff", "oracle")), PlacedNode(7, 2, ("diff",))]
    nodes, rest = merge_root([root], placed)
    assert [n.strategy for n in nodes] == ["root+oracle+diff"]
    assert [p.char_offset for p in rest] == [7]
    assert merge_root([], placed) == ([], placed)  # no root node (root_samples 0): nothing to fold into
    assert next_node_number([root]) == 1
    assert next_node_number([root, Node("n3", None, None, 5, 1, "diff", "h")]) == 4


class _CharPolicy:
    """Every character is a token; samples are fixed text, so placement is checked by hand."""

    model_id = "chars"

    def __init__(self) -> None:
        self.sampled: list[SampleRequest] = []

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        self.sampled += requests
        return [
            Completion(r.request_id, i, f"    return {i}\n", (1,), (-0.5,), "stop") for r in requests for i in range(r.n)
        ]

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        return [
            Scored(r.request_id, (1,) * len(r.continuation), (-0.1,) * len(r.continuation), (),
                   tuple(range(len(r.continuation))))
            for r in requests
        ]


def test_rebranch_phase_adds_a_node_at_the_first_flagged_line_of_a_vulnerable_branch(sql_task: Task) -> None:
    from treeplay.oracle.records import Verdict
    from treeplay.tree.builder import TreeBuilder, _Growth

    policy = _CharPolicy()
    builder = TreeBuilder(policy, TreeConfig(k=2), judge=lambda items: [Verdict("secure") for _ in items])  # type: ignore[arg-type]
    prefix = PREFIX + GOLDEN[:NODE_AT]
    completion = "    q = name\n" + VULN_COMPLETION
    flagged = (prefix + completion).count("\n", 0, (prefix + completion).index('    cur.execute("')) + 1
    grow = _Growth(sql_task, seed=0)
    grow.nodes = [Node("n1", None, None, NODE_AT, 3, "diff", "h", depth=1)]
    grow.branches = [_branch(prefix, completion, "vulnerable", flagged, node="n1")]

    assert builder.rebranch(grow, 2)
    new = grow.nodes[-1]
    # the node sits where the flagged line starts: after the parent's prefix and the "    q = name\n" line
    assert (new.id, new.parent, new.branch_of_parent, new.depth, new.strategy) == ("n2", "n1", 0, 2, "rebranch")
    assert (new.char_offset, new.token_offset) == (NODE_AT + len("    q = name\n"), len("    q = name\n"))
    assert [(r.request_id, r.prefix, r.n) for r in policy.sampled] == [("n2", prefix + "    q = name\n", 2)]
    assert [(b.node_id, b.completion, b.label) for b in grow.branches[1:]] == [
        ("n2", "    return 0\n", "secure"),
        ("n2", "    return 1\n", "secure"),
    ]
    assert not builder.rebranch(grow, 3)  # the depth-2 branches are secure: nothing to branch on


class _ScoreCounter(_CharPolicy):
    """Scores as `_CharPolicy` (ids 1, one per character) and records what it was asked to score."""

    def __init__(self) -> None:
        super().__init__()
        self.scored: list[str] = []

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        self.scored += [r.continuation for r in requests]
        return super().score(requests)


def test_a_budget_cut_branch_keeps_its_sampled_tokens_up_to_a_newline_that_ends_a_token(sql_task: Task) -> None:
    """Trimming to the last full line cuts the sampled tokens where a token ends at that newline
    (no second forward); a newline inside a token (`"\\n    "`, one token) is scored again."""
    from treeplay.tree.builder import TreeBuilder, _Pending

    policy = _ScoreCounter()
    builder = TreeBuilder(policy, TreeConfig(k=2), judge=lambda items: [])  # type: ignore[arg-type]
    # tokens "    x = 1", "\n", "    y" (stopped by the budget): a token ends at the newline
    on_boundary = Completion("a", 0, "    x = 1\n    y", (11, 12, 13), (-0.1, -0.2, -0.3), "length",
                             token_ends=(9, 10, 15))  # fmt: skip
    # tokens "    x = 1", "\n    ", "y": the newline is inside the second token
    inside = Completion("b", 0, "    x = 1\n    y", (11, 14, 15), (-0.1, -0.4, -0.5), "length",
                        token_ends=(9, 14, 15))  # fmt: skip
    ended = Completion("c", 0, "    x = 1\n", (11, 12), (-0.1, -0.2), "stop", token_ends=(9, 10))
    pending = [_Pending("n1", PREFIX, c) for c in (on_boundary, inside, ended)]

    kept = builder._trim(sql_task, pending)

    assert [p.completion.text for p in kept] == ["    x = 1\n"] * 3
    assert (kept[0].completion.token_ids, kept[0].completion.logprobs) == ((11, 12), (-0.1, -0.2))
    assert kept[0].completion.token_ends == (9, 10)
    assert policy.scored == ["    x = 1\n"]  # only the branch whose newline is inside a token
    assert kept[1].completion.token_ids == (1,) * 10 and kept[1].completion.logprobs == (-0.1,) * 10
    assert kept[2] is pending[2]  # ended by the stop rule: not trimmed
