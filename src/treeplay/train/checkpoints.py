"""The trainer's checkpoint phase: the run directory's resume rules, saving and loading state.

A checkpoint is `out/checkpoints/step-NNNNNNN/` (accelerate state: model, optimiser, scheduler,
RNG; plus `trainer_state.json`). It is written to `step-N.partial` and renamed when complete, so
only complete checkpoints are ever listed. With frozen parameters (LoRA) it holds the trainable
parameters only and names them in `trainable_keys.json`; loading checks that key set.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from treeplay.jsonl import read_jsonl, repair_truncated_tail, write_jsonl
from treeplay.train.config import TrainConfig

CHECKPOINT_PREFIX = "step-"
TRAINABLE_KEYS_FILE = "trainable_keys.json"
TRAINER_STATE_FILE = "trainer_state.json"


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with trainer_state.json), oldest first."""
    root = out_dir / "checkpoints"
    found = []
    if root.is_dir():
        for d in root.iterdir():
            number = d.name[len(CHECKPOINT_PREFIX) :]
            if d.name.startswith(CHECKPOINT_PREFIX) and number.isdigit() and (d / TRAINER_STATE_FILE).exists():
                found.append((int(number), d))
    return sorted(found)


def check_run_dir(out: Path, config: TrainConfig, *, resume: bool) -> Path:
    """Refuse to overwrite checkpoints without `resume`, and to resume with changed maths options.

    Returns the path of the run's `train_config.json` (written by the trainer once it starts).
    """
    if list_checkpoints(out) and not resume:
        raise FileExistsError(f"{out} already holds checkpoints; pass resume=True (--resume) or use a new --out")
    config_path = out / "train_config.json"
    if resume and config_path.exists():
        previous = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")), source=str(config_path))
        diff = config.resume_mismatches(previous)
        if diff:
            raise ValueError(f"{config_path}: cannot resume with changed option(s) {', '.join(diff)}")
    return config_path


def trainable_keys(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def keep_trainable_only(models: list[nn.Module], weights: list[dict[str, Any]], _out: str) -> None:
    """accelerate save-state pre-hook: with frozen parameters (LoRA), a checkpoint holds only the
    trainable ones. The frozen base is reloaded from the base model on resume; saving it too made
    every LoRA checkpoint of the 0.5B model 2.5 GB instead of ~0.1 GB. FSDP/DeepSpeed save
    their own shards (no `weights` here) and are left alone."""
    if len(weights) != len(models):
        return
    for model, state in zip(models, weights, strict=True):
        keep = trainable_keys(model)
        if len(keep) < sum(1 for _ in model.parameters()):
            for key in [k for k in state if k not in keep]:
                del state[key]
            Path(_out, TRAINABLE_KEYS_FILE).write_text(json.dumps(sorted(keep)), encoding="utf-8")


def load_checkpoint(accelerator: Any, scorer: nn.Module, ckpt: Path) -> tuple[int, int]:
    """Load a checkpoint; returns its (step, tokens seen).

    A trainable-only one must hold exactly the model's trainable parameters (load with
    strict=False would otherwise skip a mismatch silently).
    """
    keys_file = ckpt / TRAINABLE_KEYS_FILE
    if not keys_file.exists():
        accelerator.load_state(str(ckpt))
    else:
        saved = set(json.loads(keys_file.read_text(encoding="utf-8")))
        expected = trainable_keys(scorer)
        if saved != expected:
            diff = sorted(saved ^ expected)[:3]
            raise ValueError(
                f"{ckpt}: checkpoint's trainable parameters differ from the model's (e.g. {diff}); wrong base or LoRA config"
            )
        accelerator.load_state(str(ckpt), strict=False)
    state = json.loads((ckpt / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    return int(state["step"]), int(state["tokens_seen"])


def save_checkpoint(accelerator: Any, out_dir: Path, step: int, state: dict[str, Any], keep: int) -> None:
    """Save the accelerate state plus `state` as step `step`; keep the newest `keep` checkpoints."""
    root = out_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:07d}"
    partial = root / f"{CHECKPOINT_PREFIX}{step:07d}.partial"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / TRAINER_STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # a checkpoint is visible only once complete
        for _, old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def truncate_metrics(path: Path, last_step: int) -> None:
    """On resume, drop metric lines of steps after the checkpoint (they will be redone)."""
    if not path.exists():
        return
    repair_truncated_tail(path)
    kept = [r for r in read_jsonl(path, tolerate_truncated_tail=True) if int(r.get("step", 0)) <= last_step]
    write_jsonl(path, kept)
