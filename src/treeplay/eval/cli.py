"""CLI commands of the eval stage: `treeplay eval` and `treeplay report`."""

from __future__ import annotations

from pathlib import Path

import typer

from treeplay.config_cli import Section, config_options
from treeplay.eval.config import EvalConfig
from treeplay.eval.evaluate import BENCH_HELP
from treeplay.policy.config import PolicyConfig

RUN_KEYS = ("benches", "limit", "limits")  # keys of a run config's eval: section given here by --bench, --limit


@config_options(policy=Section(PolicyConfig), sampling=Section(EvalConfig, "eval", ignore=RUN_KEYS))
def eval_command(
    bench: list[str] = typer.Option(..., "--bench", help=f"benchmark (repeatable): {BENCH_HELP}"),
    out: Path = typer.Option(..., "--out", help="output dir; each bench writes OUT/<bench>/"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="first N tasks of each bench"),
    seed: int = typer.Option(0, "--seed"),
    data_root: Path | None = typer.Option(None, "--data-root", help="default: $TREEPLAY_DATA or ../shared/data"),
    *,
    policy: PolicyConfig,
    sampling: EvalConfig,
) -> None:
    """Evaluate a model: SPR@1 (+ strict, unparseable), func(-sec)@k, HumanEval pass@k, per CWE/language.

    Every EvalConfig field is an option; `--config FILE` reads the `eval:` section of a run config."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeRemainingColumn

    from treeplay.eval.evaluate import EvalError, bench_slug, evaluate, resolve_bench
    from treeplay.progress import Progress

    console = Console(soft_wrap=True)
    try:
        task_sets = {name: resolve_bench(name, data_root, limit=limit) for name in bench}
    except (EvalError, FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--bench") from None
    console.print(f"loading policy {policy.model!r} ({policy.backend})")
    model = policy.load()
    for name, tasks in task_sets.items():
        target = out / bench_slug(name)
        with Progress(
            TextColumn(f"[bold]{name}[/bold]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console,
        ) as bar:  # fmt: skip
            job = bar.add_task(name, total=len(tasks))

            def advance(done: int, total: int, job: TaskID = job) -> None:
                bar.update(job, completed=done, total=total)

            try:
                metrics = evaluate(
                    model, tasks, bench=name, config=sampling, out_dir=target, seed=seed, progress=advance,
                )  # fmt: skip
            except EvalError as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
        console.print(_summary_line(name, metrics) + f"  -> {target}")


def _summary_line(name: str, metrics: dict) -> str:  # type: ignore[type-arg]
    parts = [f"{name}: {metrics['tasks_evaluated']} tasks, {metrics['generations']} generations"]
    for key in ("spr@1", "strict_spr@1", "unparseable_share", "func@1", "func-sec@1", "pass@1"):
        value = (metrics.get(key) or {}).get("value")
        if value is not None:
            parts.append(f"{key}={100 * value:.1f}%")
    table = (metrics.get("oracle_vs_test") or {}).get("all") or {}
    if table.get("total"):
        parts.append(
            f"oracle-vs-security-test: {table['secure_fail']} of "
            f"{table['secure_fail'] + table['vulnerable_fail']} test-failing programs called secure"
        )
    return ", ".join(parts)


def report_command(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="a `treeplay run` output dir"),
) -> None:
    """Write RUN_DIR/report.md and one self-contained RUN_DIR/report.html."""
    from treeplay.eval.report import write_report

    md_path, html_path = write_report(run_dir)
    typer.echo(f"report: {md_path}\n        {html_path}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("eval")(eval_command)
    app.command("report")(report_command)
