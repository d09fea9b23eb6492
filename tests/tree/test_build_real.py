"""One slow end-to-end test: the real embedded policy and the real static oracle."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tree_fixtures import GOLDEN, PREFIX

from treeplay.jsonl import read_jsonl
from treeplay.policy.records import ScoreRequest
from treeplay.tasks.records import Task
from treeplay.tree.builder import TreeBuilder, TreeConfig
from treeplay.tree.offsets import prefix_hash
from treeplay.tree.pairs import pairs, whole_sequence_pairs
from treeplay.tree.placement import node_prefix, rebranch_offset
from treeplay.tree.records import tree_from_dict
from treeplay.tree.writer import build_trees

PICKLE = Task(
    id="t-pickle",
    language="py",
    cwe=("CWE-502",),
    instruction="Load a cached Python object from a file path.",
    prefix="import json\nimport pickle\n\ndef load_cache(path):\n",
    golden="    with open(path) as f:\n        return json.load(f)\n",
)


@pytest.mark.slow
def test_build_resume_offsets_and_pairs_with_real_policy_and_oracle(
    embedded_policy, sql_task: Task, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = TreeConfig(
        strategies="diff,entropy,oracle", k=2, root_samples=2, depth=2, max_new_tokens=32, entropy_top_m=1
    )
    out = tmp_path / "trees.jsonl"
    first = build_trees([sql_task], embedded_policy, config=config, out_path=out, seed=3, progress=False)
    assert first.built == 1
    second = build_trees(
        [sql_task, PICKLE], embedded_policy, config=config, out_path=out, seed=3, progress=False
    )
    assert (second.built, second.skipped) == (1, 1)
    trees = [tree_from_dict(r) for r in read_jsonl(out)]
    assert [t.task_id for t in trees] == [sql_task.id, PICKLE.id]

    tasks = {sql_task.id: sql_task, PICKLE.id: PICKLE}
    for tree in trees:
        task = tasks[tree.task_id]
        assert tree.golden_source == "task" and tree.model_id
        by_id = {n.id: n for n in tree.nodes}
        for branch in tree.branches:
            node = by_id[branch.node_id]
            # prefix + completion reproduces the branch program exactly, from the recorded node offset
            assert branch.prefix == node_prefix(task, tree, node)
            assert prefix_hash(branch.prefix) == node.prefix_hash
            assert branch.text == branch.prefix + branch.completion and branch.text.startswith(task.prefix)
            assert len(branch.token_ids) == len(branch.logprobs) > 0
            assert branch.label in {"secure", "vulnerable", "unparseable", "nonfunctional"}
            assert (branch.label == "vulnerable") == (branch.cwe is not None)
            assert branch.completion.strip()  # empty completions are dropped
            if branch.finish_reason == "length" and "\n" in branch.completion:
                assert branch.completion.endswith("\n")  # budget-cut text trimmed to its last full line
        trunk = [n for n in tree.nodes if n.parent is None and n.id != "root"]
        assert trunk, "diff/entropy must propose at least one trunk node"
        golden = tree.golden or ""
        (root_score,) = embedded_policy.score([ScoreRequest(task, task.prefix, golden)])
        for node in trunk:
            # on a token boundary of the policy's own tokenization of the golden completion
            assert node.token_offset is not None
            assert root_score.char_offsets[node.token_offset] == node.char_offset
            (head,) = embedded_policy.score([ScoreRequest(task, task.prefix, golden[: node.char_offset])])
            assert head.token_ids == root_score.token_ids[: node.token_offset]
            scores = tree.golden_scores[node.id]
            assert len(scores["token_ids"]) == len(scores["logprobs"]) > 0
        # depth-2 nodes sit at the first flagged line of a vulnerable branch
        for node in tree.nodes:
            if node.depth == 2:
                parent = tree.branches[node.branch_of_parent or 0]
                assert parent.label == "vulnerable" and node.parent == parent.node_id
                offset = rebranch_offset(task, parent)
                assert offset is not None and node.char_offset <= offset
        for pair in pairs(tree, task, "both") + whole_sequence_pairs(tree, task):
            assert pair.prefix.startswith(task.prefix) and pair.chosen != pair.rejected

    # deterministic under the seed (stats hold wall time, everything else must match)
    again = TreeBuilder(embedded_policy, config).build(sql_task, round=0, seed=3)
    assert again.nodes == trees[0].nodes
    assert [(b.completion, b.label) for b in again.branches] == [
        (b.completion, b.label) for b in trees[0].branches
    ]
    assert GOLDEN and PREFIX  # the sql task is the hand-built one
