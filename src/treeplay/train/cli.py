"""CLI commands of the training stage: `treeplay train ...`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

METHOD_HELP = "sft (golden paths), selfplay (whole-sequence DPO baseline) or tsp (node-level DPO)"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def train_cmd(
    method: str = typer.Option(..., "--method", help=METHOD_HELP),
    data: Path = typer.Option(..., "--data", help="pairs JSONL (treeplay tree pairs)"),
    model: str = typer.Option("embedded", "--model", help="embedded, a local HF model dir or cached hub id"),
    out: Path = typer.Option(..., "--out", help="run directory (checkpoints, logs, final model)"),
    lora: bool = typer.Option(False, "--lora", help="train a LoRA adapter instead of all weights"),
    resume: bool = typer.Option(False, "--resume", help="continue from the newest checkpoint in --out"),
    config: Path | None = typer.Option(None, "--config", help="YAML/JSON training config (configs/train/*.yaml)"),
    eval_data: Path | None = typer.Option(None, "--eval-data", help="held-out pairs: margins before/after"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="optimiser steps (default: from epochs)"),
    epochs: float | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size", help="pairs per micro-batch per process"),
    grad_accum: int | None = typer.Option(None, "--grad-accum"),
    lr: float | None = typer.Option(None, "--lr", help="learning rate"),
    beta: float | None = typer.Option(None, "--beta", help="DPO beta"),
    seed: int | None = typer.Option(None, "--seed"),
    save_every: int | None = typer.Option(None, "--save-every", help="checkpoint every N steps"),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N pairs"),
    option: list[str] = typer.Option([], "--set", help="any TrainConfig field, e.g. --set sft_alpha=0.2"),
) -> None:
    """Train a policy with SFT, unstructured self-play DPO or TSP node-level DPO."""
    import yaml

    from treeplay.train.config import METHODS, TrainConfig, read_options
    from treeplay.train.data import read_pairs
    from treeplay.train.trainer import train

    if method not in METHODS:
        raise _fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values = read_options(config)
        except (ValueError, FileNotFoundError) as exc:
            raise _fail(str(exc)) from None
    values["method"] = method
    flags = {"max_steps": max_steps, "epochs": epochs, "batch_size": batch_size, "grad_accum": grad_accum,
             "learning_rate": lr, "beta": beta, "seed": seed, "save_every": save_every}
    values.update({k: v for k, v in flags.items() if v is not None})
    if lora:
        values["lora"] = True
    for item in option:
        if "=" not in item:
            raise _fail(f"--set expects key=value, got {item!r}")
        key, raw_value = item.split("=", 1)
        values[key.strip()] = yaml.safe_load(raw_value)
    try:
        cfg = TrainConfig.from_dict(values, source="options")
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
