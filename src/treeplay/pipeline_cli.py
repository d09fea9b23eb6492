"""`treeplay run CONFIG`: the whole pipeline (Algorithm 1 with baselines) from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run_command(
    config: Annotated[Path, typer.Argument(help="Run config (YAML), e.g. configs/embedded.yaml")],
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where to write (default runs/<name>)")] = None,
) -> None:
    """Run base eval, then for each method build data, train for T rounds and evaluate; then report.

    Rerunning the same command resumes: finished stages are skipped, an interrupted one continues.
    """
    from rich.console import Console

    from treeplay.pipeline import ConfigError, run_pipeline

    try:
        out = run_pipeline(config, run_dir)
    except ConfigError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"run dir: {out}")
    typer.echo(f"report:  {out / 'report.md'}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
