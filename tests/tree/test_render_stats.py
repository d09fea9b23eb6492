from __future__ import annotations

import json
from pathlib import Path

from _tree_fixtures import GOLDEN, NODE_AT, hand_built_tree
from rich.console import Console
from typer.testing import CliRunner

from treeplay.cli import app
from treeplay.jsonl import append_jsonl, read_jsonl
from treeplay.tasks.records import Task
from treeplay.tree.records import Branch, Tree
from treeplay.tree.render import branch_diff_html, rich_tree, tree_html
from treeplay.tree.stats import compute_stats, node_line


def _with_task(task: Task) -> Tree:
    tree = hand_built_tree()
    return Tree(**{**tree.__dict__, "task": task.to_dict()})


def test_stats_counts_labels_share_and_gpt4o_agreement(sql_task: Task) -> None:
    stats = compute_stats([_with_task(sql_task)], {sql_task.id: sql_task}).to_dict()
    assert stats["trees"] == 1 and stats["nodes"] == 2
    assert stats["branches_by_label"] == {"nonfunctional": 1, "secure": 2, "unparseable": 3, "vulnerable": 2}
    # risk-node branches: the 5 at n1, one of them verified vulnerable
    assert stats["risk_node_branches_by_label"]["vulnerable"] == 1
    assert stats["verified_vulnerable_share"] == 1 / 5
    assert stats["nonfunctional_share"] == 1 / 8
    assert stats["pairs_by_mode"] == {
        "golden-vs-branch": 1,  # only the verified vulnerable reject
        "golden-vs-unparseable": 1,  # the finished unparseable branch, counted apart (opt-in)
        "sibling": 1,
        "both": 2,
        "whole-sequence": 2,
        "sft": 1,
    }
    # n1 sits on the cur.execute line, the line GPT-4o annotated: full agreement for diff and oracle
    for name in ("diff", "oracle"):
        agreement = stats["agreement_with_gpt4o"][name]
        assert (agreement["precision"], agreement["recall"]) == (1.0, 1.0)
    assert "entropy" not in stats["agreement_with_gpt4o"]


def test_node_line_skips_the_newline_a_token_snap_leaves() -> None:
    assert node_line(GOLDEN, NODE_AT) == 2
    assert node_line(GOLDEN, NODE_AT - 1) == 2  # on the "\n" ending line 1
    assert node_line(GOLDEN, 0) == 1


def test_terminal_tree_shows_nodes_and_labels(sql_task: Task) -> None:
    console = Console(record=True, width=200)
    console.print(rich_tree(hand_built_tree(), sql_task))
    text = console.export_text()
    assert "n1 diff+oracle @char" in text
    assert "vulnerable CWE-89 L5" in text and "secure" in text and "cut at max tokens" in text


def test_html_page_marks_nodes_diffs_and_findings(sql_task: Task) -> None:
    page = tree_html(hand_built_tree(), sql_task)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert page.count('class="node"') == 2  # root and n1 marked in the golden path
    assert '<section id="n1"' in page
    branch = Branch(
        "n1",
        "a\n",
        "x = 1\ny = eval(s)\n",
        (1,),
        (-1.0,),
        "vulnerable",
        ({"line": 3, "cwe": "CWE-95", "analyzer": "bandit", "rule": "B307", "message": "eval"},),
        "CWE-95",
        3,
    )
    diff = branch_diff_html("x = 1\ny = int(s)\n", branch, task_prefix_lines=2)
    assert '<span class="ctx">  x = 1</span>' in diff
    assert '<span class="del">- y = int(s)</span>' in diff
    assert '<span class="add flag">+ y = eval(s)</span>' in diff
    assert "CWE-95 bandit:B307 eval" in diff


def test_cli_pairs_show_stats_from_a_trees_file(sql_task: Task, tmp_path: Path) -> None:
    trees = tmp_path / "trees.jsonl"
    append_jsonl(trees, [_with_task(sql_task)])
    runner = CliRunner()
    out = tmp_path / "pairs.jsonl"
    result = runner.invoke(app, ["tree", "pairs", str(trees), "--mode", "both", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(read_jsonl(out))) == 2
    result = runner.invoke(app, ["tree", "pairs", str(trees), "--mode", "both", "--with-unparseable", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p["mode"] for p in read_jsonl(out)) == ["golden-vs-branch", "golden-vs-unparseable", "sibling"]
    html_out = tmp_path / "t.html"
    result = runner.invoke(app, ["tree", "show", str(trees), "--task", sql_task.id, "--html", str(html_out)])
    assert result.exit_code == 0 and "golden" in html_out.read_text()
    result = runner.invoke(app, ["tree", "stats", str(trees), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["branches"] == 8
    result = runner.invoke(app, ["tree", "show", str(trees), "--task", "nope"])
    assert result.exit_code == 2 and "no tree for task 'nope'" in result.output
    result = runner.invoke(app, ["tree", "pairs", str(trees), "--mode", "odd", "--out", str(out)])
    assert result.exit_code == 2


def test_annotations_are_matched_to_trees_by_golden_code(sql_task: Task) -> None:
    from dataclasses import replace

    from treeplay.tree.stats import attach_annotations

    plain = replace(sql_task, annotated_nodes=())
    annotated_other_id = replace(sql_task, id="gpt4o:1")
    tree = _with_task(plain)
    before = compute_stats([tree], {plain.id: plain}).to_dict()
    assert before["agreement_with_gpt4o"] == {}
    merged = attach_annotations([tree], {plain.id: plain}, [annotated_other_id])
    assert merged[plain.id].annotated_nodes == sql_task.annotated_nodes
    after = compute_stats([tree], merged).to_dict()
    assert after["agreement_with_gpt4o"]["diff"]["recall"] == 1.0
