"""`treeplay data stats|export`: inspect and normalise task datasets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from treeplay.tasks import FORMATS, Task, TaskFormatError, load_tasks

data_app = typer.Typer(help="Inspect and normalise task datasets.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

FormatOpt = Annotated[str | None, typer.Option("--format", help=f"Override detection: {', '.join(FORMATS)}")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Keep the first N tasks (after filters)")]
LanguageOpt = Annotated[str | None, typer.Option("--language", help="Filter: py,c,cpp,js,go,java,rb")]
CweOpt = Annotated[str | None, typer.Option("--cwe", help="Filter: CWE ids, e.g. CWE-79,89")]
SplitOpt = Annotated[str | None, typer.Option("--split", help="Filter: train,val,eval,heldout-cwe,...")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="Report and skip malformed rows")]


def load_from_cli(
    paths: list[Path],
    *,
    format: str | None = None,
    limit: int | None = None,
    language: str | None = None,
    cwe: str | None = None,
    split: str | None = None,
    skip_bad: bool = False,
) -> list[Task]:
    """Load and filter tasks for a command; bad input exits with the loader's message (file, line, field)."""
    errors: list[TaskFormatError] | None = [] if skip_bad else None
    tasks: list[Task] = []
    seen: set[str] = set()
    try:
        for path in paths:
            for task in load_tasks(path, format=format, language=language, cwe=cwe, split=split, errors=errors):
                if task.id in seen:
                    raise TaskFormatError(path, "", "id", f"duplicate task id {task.id!r}")
                seen.add(task.id)
                tasks.append(task)
    except (TaskFormatError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    for error in errors or []:
        console.print(f"[yellow]skipped:[/yellow] {error}")
    return tasks if limit is None else tasks[:limit]


def _counts(tasks: list[Task]) -> dict[str, dict[str, int]]:
    return {
        "source": dict(Counter(t.source.split(":", 1)[0] for t in tasks).most_common()),
        "language": dict(Counter(t.language for t in tasks).most_common()),
        "cwe": dict(Counter(c for t in tasks for c in (t.cwe or ("none",))).most_common()),
        "split": dict(Counter(s for t in tasks for s in (t.split or ("none",))).most_common()),
        "with_golden": {"yes": sum(t.golden is not None for t in tasks), "no": sum(t.golden is None for t in tasks)},
        "with_tests": {"yes": sum(t.tests is not None for t in tasks), "no": sum(t.tests is None for t in tasks)},
    }


@data_app.command("stats")
def stats(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories")],
    format: FormatOpt = None,
    limit: LimitOpt = None,
    language: LanguageOpt = None,
    cwe: CweOpt = None,
    split: SplitOpt = None,
    skip_bad: SkipBadOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines")] = False,
) -> None:
    """Count tasks by source, language, CWE and split."""
    from treeplay.tasks.cwe_names import cwe_name

    tasks = load_from_cli(
        paths, format=format, limit=limit, language=language, cwe=cwe, split=split, skip_bad=skip_bad
    )
    counts = _counts(tasks)
    if as_json:
        typer.echo(json.dumps({"tasks": len(tasks), **counts}, indent=2))
        return
    out = Console(width=None if Console().is_terminal else 140)
    out.print(f"[bold]{len(tasks)} tasks[/bold] from {', '.join(str(p) for p in paths)}")
    for key in ("source", "split", "language"):
        table = Table(title=f"by {key}", show_header=True)
        table.add_column(key)
        table.add_column("tasks", justify="right")
        for name, count in counts[key].items():
            table.add_row(name, str(count))
        out.print(table)
    by_lang: dict[str, Counter[str]] = {}
    for task in tasks:
        for c in task.cwe or ("none",):
            by_lang.setdefault(c, Counter())[task.language] += 1
    languages = list(counts["language"])
    table = Table(title="by CWE and language", show_header=True)
    table.add_column("CWE", no_wrap=True)
    table.add_column("name", overflow="ellipsis", max_width=40, no_wrap=True)
    for lang in languages:
        table.add_column(lang, justify="right")
    table.add_column("total", justify="right")
    for c, total in counts["cwe"].items():
        row = by_lang[c]
        table.add_row(c, cwe_name(c), *(str(row.get(lang, "")) for lang in languages), str(total))
    out.print(table)


@data_app.command("export")
def export(
    paths: Annotated[list[Path], typer.Argument(help="Dataset files or directories")],
    out: Annotated[Path, typer.Option("--out", help="Normalised tasks.jsonl to write")],
    format: FormatOpt = None,
    limit: LimitOpt = None,
    language: LanguageOpt = None,
    cwe: CweOpt = None,
    split: SplitOpt = None,
    skip_bad: SkipBadOpt = False,
) -> None:
    """Write normalised tasks.jsonl (one Task per line), atomically."""
    from treeplay.jsonl import write_jsonl

    tasks = load_from_cli(
        paths, format=format, limit=limit, language=language, cwe=cwe, split=split, skip_bad=skip_bad
    )
    count = write_jsonl(out, (t.to_dict() for t in tasks))
    console.print(f"wrote {count} tasks to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
