from __future__ import annotations

import dataclasses

import pytest
from _tree_fixtures import GOLDEN, NODE_AT, PREFIX
from _tree_fixtures import hand_built_tree as _tree

from treeplay.tasks.records import Task
from treeplay.tree.offsets import prefix_hash
from treeplay.tree.pairs import count_by_mode, pairs, sft_examples, whole_sequence_pairs
from treeplay.tree.placement import node_prefix
from treeplay.tree.records import Tree


def test_golden_vs_branch_uses_only_verified_rejects(sql_task: Task) -> None:
    # issue 14 items 10, 11: only the oracle-verified vulnerable reject; the unparseable branches
    # (finished or cut by the budget) are not "verified vulnerable"
    tree = _tree()
    result = pairs(tree, sql_task, "golden-vs-branch")
    assert [p.rejected for p in result] == ["    cur.execute('%s' % name)\n"]
    for pair in result:
        assert pair.node_id == "n1" and pair.mode == "golden-vs-branch"
        assert pair.prefix == PREFIX + GOLDEN[:NODE_AT]
        assert pair.prefix + pair.chosen == PREFIX + GOLDEN
        assert pair.chosen_token_ids == (11, 12) and pair.chosen_ref_logprobs == (-2.0, -3.0)
        assert pair.reference_model == "embedded" and pair.round == 1
    vulnerable = next(p for p in result if p.rejected.startswith("    cur.execute('%s'"))
    assert vulnerable.rejected_token_ids == (3, 4, 5) and vulnerable.cwe == "CWE-89"
    assert vulnerable.rejected_ref_logprobs is not None and len(vulnerable.rejected_ref_logprobs) == 3


def test_unparseable_rejects_are_an_opt_in_separate_kind(sql_task: Task) -> None:
    tree = _tree()
    only = pairs(tree, sql_task, "golden-vs-unparseable")
    assert [(p.mode, p.rejected) for p in only] == [("golden-vs-unparseable", "    cur.execute(q, (name,)\n")]
    with_opt_in = pairs(tree, sql_task, "golden-vs-branch", include_unparseable=True)
    assert sorted(p.mode for p in with_opt_in) == ["golden-vs-branch", "golden-vs-unparseable"]
    assert len(pairs(tree, sql_task, "both")) == 2  # default: no unparseable rejects
    assert count_by_mode([tree], {sql_task.id: sql_task})["golden-vs-unparseable"] == 1


def test_sibling_pairs_secure_against_vulnerable_at_the_same_node(sql_task: Task) -> None:
    result = pairs(_tree(), sql_task, "sibling")
    assert len(result) == 1
    (pair,) = result
    assert pair.chosen == "    cur.execute(q, (name,))\n"
    assert pair.rejected == "    cur.execute('%s' % name)\n"
    assert pair.chosen_token_ids == (6,) and pair.rejected_token_ids == (3, 4, 5)
    assert pair.mode == "sibling"


def test_both_is_the_union_and_root_is_left_to_the_baseline(sql_task: Task) -> None:
    both = pairs(_tree(), sql_task, "both")
    assert len(both) == 2  # golden vs the vulnerable branch, secure vs vulnerable sibling
    assert all(p.node_id == "n1" for p in both)
    with_root = pairs(_tree(), sql_task, "both", include_root=True)
    assert {p.node_id for p in with_root} == {"root", "n1"}
    with pytest.raises(ValueError, match="unknown pair mode"):
        pairs(_tree(), sql_task, "random")


def test_whole_sequence_pairs_from_root_samples(sql_task: Task) -> None:
    result = whole_sequence_pairs(_tree(), sql_task)
    chosen_rejected = {(p.chosen, p.rejected) for p in result}
    assert chosen_rejected == {
        ("    return None\n", "    return db.execute(q % name)\n"),
        (GOLDEN, "    return db.execute(q % name)\n"),
    }
    golden_pair = next(p for p in result if p.chosen == GOLDEN)
    assert golden_pair.chosen_ref_logprobs == (-1.0, -2.0, -3.0)
    assert golden_pair.rejected_token_ids == (7, 8)
    assert all(p.prefix == PREFIX and p.node_id == "root" and p.mode == "whole-sequence" for p in result)


def test_sft_examples_are_the_golden_path(sql_task: Task) -> None:
    (example,) = sft_examples(_tree(), sql_task)
    assert example.mode == "sft" and example.rejected == "" and example.chosen == GOLDEN
    no_golden = Tree("t-sql", None, "none", (), (), 0, "m", "h")
    assert sft_examples(no_golden, sql_task) == []


def test_pairs_refuse_a_mismatched_task(sql_task: Task, prompt_only_task: Task) -> None:
    with pytest.raises(ValueError, match="paired with task"):
        pairs(_tree(), prompt_only_task)


def test_node_prefix_matches_branch_prefix(sql_task: Task) -> None:
    tree = _tree()
    for branch in tree.branches:
        node = next(n for n in tree.nodes if n.id == branch.node_id)
        assert node_prefix(sql_task, tree, node) == branch.prefix
        assert prefix_hash(branch.prefix) == node.prefix_hash


def test_pairs_record_how_each_side_ended(sql_task: Task) -> None:
    """The task's golden code ended by itself; a branch side carries its own finish reason; an
    `sft` example has no rejected side (`train.end_marker` appends the end only to sides that stopped)."""
    tree = _tree()
    (golden_vs_branch,) = pairs(tree, sql_task, "golden-vs-branch")
    assert (golden_vs_branch.chosen_finish_reason, golden_vs_branch.rejected_finish_reason) == ("stop", "stop")
    (sibling,) = pairs(tree, sql_task, "sibling")
    assert (sibling.chosen_finish_reason, sibling.rejected_finish_reason) == ("stop", "stop")
    (sft,) = sft_examples(tree, sql_task)
    assert (sft.chosen_finish_reason, sft.rejected_finish_reason) == ("stop", None)
    cut = dataclasses.replace(tree, branches=tuple(
        dataclasses.replace(b, finish_reason="length") if b.label == "vulnerable" else b for b in tree.branches))
    (golden_vs_cut,) = pairs(cut, sql_task, "golden-vs-branch")
    assert golden_vs_cut.rejected_finish_reason == "length"
    self_found = dataclasses.replace(tree, golden_source="self-play")  # a model sample, its end not recorded
    assert pairs(self_found, sql_task, "golden-vs-branch")[0].chosen_finish_reason is None
