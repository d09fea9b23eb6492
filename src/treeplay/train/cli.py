"""CLI commands of the training stage: `treeplay train ...`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from treeplay.config_cli import Section, config_options
from treeplay.config_fields import help_of
from treeplay.policy.config import PolicyConfig
from treeplay.train.config import TrainConfig


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@config_options(cfg=Section(TrainConfig, "train", flat=True, ignore=("model", "accelerate_config")))
def train_cmd(
    data: Path = typer.Option(..., "--data", help="pairs JSONL (treeplay tree pairs)"),
    model: str = typer.Option(PolicyConfig.model, "--model", help=help_of(PolicyConfig, "model")),
    out: Path = typer.Option(..., "--out", help="run directory (checkpoints, logs, final model)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
    eval_data: Path | None = typer.Option(None, "--eval-data", help="held-out pairs: margins before/after"),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N pairs"),
    *,
    cfg: TrainConfig,
) -> None:
    """Train a policy with SFT, unstructured self-play DPO or TSP node-level DPO.

    Every TrainConfig field is an option; `--config FILE` reads its `train:` section (or the whole
    file when it has none, as configs/train/*.yaml)."""
    from treeplay.train.data import read_pairs
    from treeplay.train.trainer import train

    try:
        pairs = read_pairs(data)
        held_out = read_pairs(eval_data) if eval_data is not None else None
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    if limit is not None:
        pairs = pairs[:limit]
    result = train(cfg, pairs, model, out, resume=resume, eval_pairs=held_out)
    summary = {
        "final_model_dir": result.final_model_dir,
        "adapter": result.adapter,
        "steps": result.steps,
        "pairs_per_step": result.pairs_per_step,
        "tokens_per_step": round(result.tokens_per_step, 1),
        "pairs_used": result.pairs_used,
        "final_metrics": result.final_metrics,
        "eval_before": result.eval_before,
        "eval_after": result.eval_after,
        "elapsed_s": round(result.elapsed_s, 1),
    }
    typer.echo(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.command("train")(train_cmd)
