"""`treeplay tree ...`: build trees, extract pairs, show and summarise them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from treeplay.config_cli import Section, config_options
from treeplay.policy.config import PolicyConfig
from treeplay.tree.config import TreeConfig

tree_app = typer.Typer(help="Grow oracle-labelled trees of branches at risk nodes; extract training pairs.")

PAIR_CHOICES = ("golden-vs-branch", "sibling", "both", "golden-vs-unparseable", "whole-sequence", "sft")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def _read_trees(path: Path) -> list:  # type: ignore[type-arg]
    from treeplay.jsonl import JsonlError
    from treeplay.tree.records import read_trees

    if not path.exists():
        raise _fail(f"{path}: no such trees file")
    try:
        return read_trees(path, tolerate_truncated_tail=True)
    except JsonlError as exc:
        raise _fail(str(exc)) from None


def _tasks_by_id(trees: list, tasks_path: Path | None) -> dict:  # type: ignore[type-arg]
    from treeplay.tree.stats import tasks_from_trees

    by_id = tasks_from_trees(trees)
    if tasks_path is not None:
        from treeplay.tasks import load_tasks

        by_id.update({t.id: t for t in load_tasks(tasks_path)})
    return by_id


@tree_app.command("build")
@config_options(policy=Section(PolicyConfig), tree=Section(TreeConfig, "tree"))
def build(
    tasks: Path = typer.Option(
        ..., "--tasks", help="Tasks file or directory (any format load_tasks detects)."
    ),
    out: Path = typer.Option(..., "--out", help="Trees JSONL (appended to; resumable)."),
    limit: int | None = typer.Option(None, "--limit"),
    language: str | None = typer.Option(None, "--language"),
    cwe: str | None = typer.Option(None, "--cwe"),
    split: str | None = typer.Option(None, "--split"),
    task_format: str | None = typer.Option(None, "--format", help="Tasks format (default: auto-detect)."),
    round_: int = typer.Option(0, "--round", help="Self-play round recorded in each tree."),
    seed: int = typer.Option(0, "--seed"),
    *,
    policy: PolicyConfig,
    tree: TreeConfig,
) -> None:
    """Grow one tree per task and stream them to --out (tasks already there are skipped).

    Every TreeConfig field is an option; `--config FILE` reads its `tree:` section (and the policy
    fields model/backend/device/threads at its top level, as in a run config)."""
    from treeplay.tasks import load_tasks
    from treeplay.tree.writer import build_trees

    try:
        task_list = load_tasks(
            tasks, format=task_format, limit=limit, language=language, cwe=cwe, split=split
        )
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    if not task_list:
        raise _fail(f"{tasks}: no tasks selected")
    model = policy.load()
    try:
        summary = build_trees(task_list, model, config=tree, out_path=out, round=round_, seed=seed)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    labels = ", ".join(f"{n} {label}" for label, n in sorted(summary.labels.items())) or "no branches"
    typer.echo(
        f"built {summary.built} trees, skipped {summary.skipped} already in {out}"
        f"{' (cut a truncated last line)' if summary.repaired_tail else ''}; {labels}; {summary.elapsed_s:.1f} s"
    )


@tree_app.command("pairs")
def pairs_cmd(
    trees_path: Path = typer.Argument(..., help="Trees JSONL."),
    out: Path = typer.Option(..., "--out", help="Pairs JSONL (written atomically)."),
    mode: str = typer.Option("both", "--mode", help=f"One of {', '.join(PAIR_CHOICES)}."),
    tasks: Path | None = typer.Option(
        None, "--tasks", help="Tasks file (default: the snapshots in the trees)."
    ),
    with_unparseable: bool = typer.Option(
        False, "--with-unparseable", help="Also golden vs finished unparseable branches (its own pair kind)."
    ),
) -> None:
    """Extract preference pairs (or SFT examples) from trees."""
    from treeplay.jsonl import write_jsonl
    from treeplay.tree.pairs import pairs_for_trees

    if mode not in PAIR_CHOICES:
        raise _fail(f"unknown --mode {mode!r}; choose from {', '.join(PAIR_CHOICES)}")
    trees = _read_trees(trees_path)
    result, missing = pairs_for_trees(trees, _tasks_by_id(trees, tasks), mode, include_unparseable=with_unparseable)
    if missing:
        raise _fail(f"no task record for {len(missing)} trees (e.g. {missing[0]}); pass --tasks")
    count = write_jsonl(out, result)
    typer.echo(f"wrote {count} {mode} pairs from {len(trees)} trees to {out}")


@tree_app.command("show")
def show(
    trees_path: Path = typer.Argument(..., help="Trees JSONL."),
    task_id: str | None = typer.Option(None, "--task", help="Task id (default: the first tree)."),
    html_out: Path | None = typer.Option(None, "--html", help="Write a self-contained HTML page here."),
    tasks: Path | None = typer.Option(
        None, "--tasks", help="Tasks file (default: the snapshots in the trees)."
    ),
) -> None:
    """Show one tree in the terminal (labels coloured) or as an HTML page."""
    from rich.console import Console

    from treeplay.tree.render import find_tree, rich_tree, tree_html

    trees = _read_trees(trees_path)
    try:
        tree = find_tree(trees, task_id)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    task = _tasks_by_id(trees, tasks).get(tree.task_id)
    if task is None:
        raise _fail(f"no task record for {tree.task_id}; pass --tasks")
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(tree_html(tree, task), encoding="utf-8")
        typer.echo(f"wrote {html_out}")
        return
    Console().print(rich_tree(tree, task))


@tree_app.command("stats")
def stats(
    trees_path: Path = typer.Argument(..., help="Trees JSONL."),
    tasks: Path | None = typer.Option(
        None, "--tasks", help="Tasks file (e.g. with GPT-4o nodes) to compare with."
    ),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="TSP GPT-4o nodes file; rows matched to trees by golden code."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Nodes, labels, pairs, the oracle-verified vulnerable share and agreement with GPT-4o nodes."""
    from treeplay.tree.stats import attach_annotations, compute_stats

    trees = _read_trees(trees_path)
    by_id = _tasks_by_id(trees, tasks)
    if annotations is not None:
        from treeplay.tasks import load_tasks

        by_id = attach_annotations(trees, by_id, load_tasks(annotations))
    figures = compute_stats(trees, by_id).to_dict()
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"trees in {trees_path}", show_header=False)
    for key, value in figures.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(tree_app, name="tree")
