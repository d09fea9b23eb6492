"""`treeplay run CONFIG`: the whole pipeline (Algorithm 1 with baselines) from one YAML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from treeplay.config_fields import help_of
from treeplay.policy.config import PolicyConfig

if TYPE_CHECKING:
    from treeplay.stages import Selection


def run_command(
    config: Annotated[Path, typer.Argument(help="Run config (YAML), e.g. configs/embedded.yaml")],
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where to write (default runs/<name>)")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check the config and print the plan")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this arm's stages (repeat; `base`, a method or a variant), e.g. to "
                                    "fit a long run into sessions: the other arms are left as they are"),
    ] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option("--seed", help="Run only this seed's stages (repeat; with --only: those arms of those seeds)"),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Rewrite this bundle (.tar.xz, as `treeplay bundle` writes) after every stage "
                                      "that runs, so a session that ends mid-run keeps what finished; an existing "
                                      "one must have been unbundled into the run dir first"),
    ] = None,
    reuse_from: Annotated[
        list[Path] | None,
        typer.Option("--reuse-from", help="Another run dir (repeat for more): each stage it finished with the same "
                                          "inputs hash is copied in instead of run, e.g. the base evaluations and "
                                          "trees of the run a new learning rate varies; paths in its records are "
                                          "rewritten to this run dir and stage.json says `reused_from`"),
    ] = None,
) -> None:
    """Run base eval, then for each method build data, train for T rounds and evaluate; then report.

    Every run starts with the checks of `--check` (tasks, benches, oracle judges and analyzers,
    model and extras, run dir). Rerunning the same command resumes: finished stages are skipped.
    """
    from rich.console import Console

    from treeplay.pipeline import ConfigError, StageError, run_pipeline
    from treeplay.stages import Selection

    select = Selection.of(only, seed)
    if check:
        _check_only(config, run_dir, select, bundle, reuse_from or [])
        return
    try:
        out = run_pipeline(config, run_dir, select, bundle, reuse_from or [])
    except ConfigError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except StageError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]stage failed:[/red] {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"run dir: {out}")
    typer.echo(f"report:  {out / 'report.md'}")




def _check_only(config_path: Path, run_dir: Path | None, select: Selection | None = None,
                bundle: Path | None = None, reuse_from: list[Path] | None = None) -> None:  # fmt: skip
    """`--check`: print the plan and the blockers; exit 1 when there is any."""
    from treeplay.pipeline import ConfigError, load_config
    from treeplay.run_check import check_run
    from treeplay.run_lock import default_run_dir

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        typer.echo(f"blockers:\n  - {exc}", err=True)
        raise typer.Exit(1) from None
    report = check_run(config, run_dir or default_run_dir(config.name), source=str(config_path), select=select,
                       bundle=bundle, reuse_from=reuse_from or [])  # fmt: skip
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


def selfplay_command(
    tasks: Annotated[Path, typer.Option("--tasks", help="Training tasks (any supported format)")],
    out: Annotated[Path, typer.Option("--out", help="Run directory")],
    model: Annotated[str, typer.Option("--model", help="Start model: " + help_of(PolicyConfig, "model"))] = PolicyConfig.model,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Self-play rounds T (paper: 2)")] = 2,
    method: Annotated[str, typer.Option("--method", help="tsp, selfplay or sft")] = "tsp",
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML with tree:/train:/pair_mode: sections (a run config works)")
    ] = None,
    language: Annotated[str | None, typer.Option("--language")] = None,
    cwe: Annotated[str | None, typer.Option("--cwe")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Self-play rounds without evaluation: build trees -> pairs -> train, T times.

    The model of round t is the opponent (sampler) and the DPO reference of round t+1. Resumable:
    rerun the same command after a kill.
    """
    import yaml
    from rich.console import Console

    from treeplay.pipeline import ConfigError, run_config
    from treeplay.run_config import parse_config

    sections: dict[str, object] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        sections = {k: loaded[k] for k in ("tree", "train", "pair_mode", "selfplay", "threads") if k in loaded}
    try:
        run = parse_config(
            {
                "name": out.name,
                "model": model,
                "seeds": [seed],
                "methods": [method],
                "rounds": rounds,
                "train_tasks": {"path": str(tasks), "language": language, "cwe": cwe, "limit": limit},
                "eval": {"benches": []},
                "report": False,
                **sections,
            },
            config or "command line",
        )
        result = run_config(run, out, source=str(config or "command line"))
    except (ConfigError, ValueError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    from treeplay.run_layout import RunLayout

    final = RunLayout(result).budget(seed, method)
    typer.echo(f"final model: {json.loads(final.read_text())['final_model']}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("selfplay")(selfplay_command)
