"""The trainer's checkpoint phase on its own: run-dir rules and the trainable-only key check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_helpers import tiny_llama

from treeplay.train.checkpoints import check_run_dir, list_checkpoints, load_checkpoint
from treeplay.train.config import TrainConfig


class _RecordingAccelerator:
    def __init__(self) -> None:
        self.loads: list[tuple[str, dict[str, Any]]] = []

    def load_state(self, path: str, **kwargs: Any) -> None:
        self.loads.append((path, kwargs))


def _checkpoint(root: Path, step: int, keys: list[str] | None) -> Path:
    ckpt = root / "checkpoints" / f"step-{step:07d}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"step": step, "tokens_seen": 40 * step}))
    if keys is not None:
        (ckpt / "trainable_keys.json").write_text(json.dumps(keys))
    return ckpt


def test_trainable_only_checkpoint_must_hold_exactly_the_models_trainable_parameters(tmp_path: Path) -> None:
    model = tiny_llama()
    for name, p in model.named_parameters():
        p.requires_grad = name == "lm_head.weight"  # one trainable tensor, like a (tiny) adapter
    ckpt = _checkpoint(tmp_path, 2, ["lm_head.weight"])
    acc = _RecordingAccelerator()
    assert load_checkpoint(acc, model, ckpt) == (2, 80)
    assert acc.loads == [(str(ckpt), {"strict": False})]  # frozen base comes from the base model

    (ckpt / "trainable_keys.json").write_text(json.dumps(["lm_head.weight", "model.norm.weight"]))
    with pytest.raises(ValueError, match=r"step-0000002: checkpoint's trainable parameters differ.*model\.norm\.weight"):
        load_checkpoint(acc, model, ckpt)
    assert len(acc.loads) == 1  # nothing loaded on a mismatch


def test_full_checkpoint_loads_strictly(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, 4, None)
    acc = _RecordingAccelerator()
    assert load_checkpoint(acc, tiny_llama(), ckpt) == (4, 160)
    assert acc.loads == [(str(ckpt), {})]


def test_run_dir_rules(tmp_path: Path) -> None:
    config = TrainConfig(method="tsp", max_steps=4)
    assert check_run_dir(tmp_path, config, resume=False) == tmp_path / "train_config.json"
    (tmp_path / "checkpoints" / "step-0000003.partial").mkdir(parents=True)  # incomplete: not a checkpoint
    assert list_checkpoints(tmp_path) == []
    check_run_dir(tmp_path, config, resume=False)
    _checkpoint(tmp_path, 2, None)
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        check_run_dir(tmp_path, config, resume=False)
    (tmp_path / "train_config.json").write_text(json.dumps(config.to_dict()))
    check_run_dir(tmp_path, config, resume=True)
    with pytest.raises(ValueError, match=r"cannot resume with changed option.*beta"):
        check_run_dir(tmp_path, TrainConfig(method="tsp", max_steps=4, beta=0.5), resume=True)
