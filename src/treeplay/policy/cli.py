"""`treeplay sample`: sample completions for tasks into a resumable JSONL file."""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from treeplay.config_cli import Section, config_options
from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail
from treeplay.policy.config import PolicyConfig
from treeplay.policy.records import Completion, SampleRequest, SamplingParams
from treeplay.tasks.records import Task

console = Console(stderr=True, soft_wrap=True)


def completed_task_ids(out: Path) -> set[str]:
    """Task ids already written to `out` (a truncated last line from a kill is dropped)."""
    if not out.exists():
        return set()
    repair_truncated_tail(out)
    return {str(row["task_id"]) for row in read_jsonl(out, tolerate_truncated_tail=True) if "task_id" in row}


def task_seed(base_seed: int, task_id: str) -> int:
    """Per-task seed: stable across runs and independent of which tasks were already done."""
    return base_seed * 1_000_003 + zlib.crc32(task_id.encode("utf-8"))


def build_requests(tasks: Sequence[Task], *, n: int, params: SamplingParams) -> list[SampleRequest]:
    return [
        SampleRequest(
            task=task,
            prefix=task.prefix,
            n=n,
            params=SamplingParams(
                temperature=params.temperature,
                top_p=params.top_p,
                max_new_tokens=params.max_new_tokens,
                stop=params.stop,
                seed=task_seed(params.seed, task.id),
            ),
            request_id=task.id,
        )
        for task in tasks
    ]


def sample_records(model_id: str, requests: Sequence[SampleRequest], completions: Sequence[Completion]) -> list[dict[str, Any]]:
    """One output record per task: the prefix and its n completions."""
    by_request: dict[str, list[Completion]] = {}
    for completion in completions:
        by_request.setdefault(completion.request_id, []).append(completion)
    records = []
    for request in requests:
        records.append(
            {
                "task_id": request.task.id,
                "model": model_id,
                "language": request.task.language,
                "prefix": request.prefix,
                "params": request.params,
                "completions": sorted(by_request.get(request.request_id, []), key=lambda c: c.index),
            }
        )
    return records


def _load_tasks(path: Path, limit: int | None, language: str | None) -> list[Task]:
    from treeplay.tasks import load_tasks  # lazy: the tasks stage is independent of this module

    try:
        return load_tasks(path, limit=limit, language=language)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@config_options(policy=Section(PolicyConfig), params=Section(SamplingParams, "sampling"))
def sample_command(
    tasks: Annotated[Path, typer.Option("--tasks", help="Task file or directory (any format load_tasks knows)")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL (appended; tasks already in it are skipped)")],
    n: Annotated[int, typer.Option("--n", min=1, help="Completions per task")] = 4,
    limit: Annotated[int | None, typer.Option("--limit", help="First N tasks")] = None,
    language: Annotated[str | None, typer.Option("--language", help="Filter tasks by language")] = None,
    batch_tasks: Annotated[int, typer.Option("--batch-tasks", min=1, help="Tasks per sampling batch")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", help="Do not print completions")] = False,
    *,
    policy: PolicyConfig,
    params: SamplingParams,
) -> None:
    """Sample N completions per task from a policy model into a resumable JSONL file.

    Every PolicyConfig and SamplingParams field is an option (`--config FILE`: its top-level policy
    keys and its `sampling:` section)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    all_tasks = _load_tasks(tasks, limit, language)
    done = completed_task_ids(out)
    todo = [task for task in all_tasks if task.id not in done]
    console.print(f"{len(all_tasks)} tasks, {len(all_tasks) - len(todo)} already in {out}, {len(todo)} to sample")
    if not todo:
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from treeplay.progress import Progress

    model = policy.load()
    out_console = Console()
    with Progress(
        TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        bar = progress.add_task("sampling", total=len(todo))
        for start in range(0, len(todo), batch_tasks):
            batch = todo[start : start + batch_tasks]
            requests = build_requests(batch, n=n, params=params)
            records = sample_records(model.model_id, requests, model.sample(requests))
            append_jsonl(out, records)
            if not quiet:
                for record in records:
                    for completion in record["completions"]:
                        progress.console.print(
                            f"[bold]{record['task_id']}[/bold] #{completion.index} ({completion.finish_reason}, "
                            f"{len(completion.token_ids)} tokens)"
                        )
                        out_console.print(record["prefix"] + completion.text, markup=False, highlight=False)
            progress.advance(bar, len(batch))
    console.print(f"wrote {len(todo)} task records to {out}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("sample")(sample_command)
