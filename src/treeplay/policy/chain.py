"""Trained model directories: a base model plus a chain of LoRA adapters (one per round)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TRAIN_META = "treeplay_train.json"


@dataclass(frozen=True)
class ModelChain:
    """A model as a base (embedded name, dir or hub id) plus LoRA adapter dirs, oldest first."""

    base: str
    adapters: tuple[Path, ...] = ()


def model_chain(model: str, *, _depth: int = 0) -> ModelChain:
    """Resolve a trained model dir into its base and adapters (round t's adapter was trained on
    top of round t-1's model, so round t = base + adapter_1 + ... + adapter_t)."""
    if _depth > 32:
        raise _load_error(f"{model}: more than 32 nested trained models in {TRAIN_META} (a cycle?)")
    path = Path(model)
    meta_path = path / TRAIN_META
    if not (path.is_dir() and meta_path.is_file()):
        return ModelChain(model)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        base = str(meta["base_model"])
    except (OSError, ValueError, KeyError) as exc:
        raise _load_error(f"{meta_path}: field 'base_model': cannot read ({exc})") from None
    if not meta.get("adapter"):
        return ModelChain(model)  # a full (or merged) model: loaded as a plain HF dir
    parent = model_chain(base, _depth=_depth + 1)
    return ModelChain(parent.base, (*parent.adapters, path))


def _load_error(message: str) -> Exception:
    from treeplay.policy.models import ModelLoadError  # models imports this module

    return ModelLoadError(message)
