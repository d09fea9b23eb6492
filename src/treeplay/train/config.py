"""Training configuration (what to train) — kept apart from the trainer (how), as in TRL."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Method = Literal["sft", "selfplay", "tsp"]
METHODS: tuple[str, ...] = ("sft", "selfplay", "tsp")

# Fields that may differ between a run and its resumption (they do not change the maths).
RESUME_MUTABLE_FIELDS = frozenset({"save_every", "keep_checkpoints", "log_every", "progress", "merge_lora"})


@dataclass
class TrainConfig:
    method: Method = "tsp"

    # Budget. max_steps = optimiser steps; when None it is derived from `epochs`.
    max_steps: int | None = None
    epochs: float = 3.0
    batch_size: int = 4  # pairs per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimiser step

    # Optimiser and schedule
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0

    # Preference loss (selfplay, tsp)
    beta: float = 0.1
    loss_type: Literal["sigmoid", "ipo"] = "sigmoid"
    label_smoothing: float = 0.0
    # Where DPO reference log-probs come from. "recompute": a no-grad forward of the frozen start
    # model (the weights the trainer starts from, so the policy/reference log-ratio is 0 at step 0);
    # "recorded": the log-probs the sampling engine recorded, where present (only exact when the
    # engine runs the same weights in the same precision: the torch backend, not llama.cpp's Q4).
    reference: Literal["recompute", "recorded"] = "recompute"
    # TSP options; None = method default (tsp: alpha 0.1, first_w 4, first_w_weight 1.0; others: off)
    sft_alpha: float | None = None
    first_w: int | None = None
    first_w_weight: float | None = None

    # Model / engine
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = (
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    )
    merge_lora: bool = False  # final save: merged full model instead of the adapter
    gradient_checkpointing: bool = False  # not with prefix_sharing kv-cache
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, else no
    prefix_sharing: Literal["packed", "kv-cache", "off"] = "packed"  # see treeplay.train.logprobs
    max_prompt_tokens: int = 1536
    max_completion_tokens: int = 512

    # I/O
    save_every: int = 50  # checkpoint every N optimiser steps (and always at the end)
    keep_checkpoints: int = 2
    log_every: int = 1
    progress: bool = True

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes copied into the run record

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"TrainConfig.method: {self.method!r} is not one of {', '.join(METHODS)}")
        tsp = self.method == "tsp"
        if self.sft_alpha is None:
            self.sft_alpha = 0.1 if tsp else 0.0
        if self.first_w is None:
            self.first_w = 4 if tsp else 0
        if self.first_w_weight is None:
            self.first_w_weight = 1.0 if tsp else 0.0
        self.lora_target_modules = tuple(self.lora_target_modules)
        for name in ("batch_size", "grad_accum", "save_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"TrainConfig.max_steps must be >= 1, got {self.max_steps}")
        if self.learning_rate <= 0 or self.beta <= 0:
            raise ValueError("TrainConfig.learning_rate and beta must be > 0")
        if self.reference not in ("recompute", "recorded"):
            raise ValueError(f"TrainConfig.reference must be recompute or recorded, got {self.reference!r}")
        if self.prefix_sharing not in ("packed", "kv-cache", "off"):
            raise ValueError(f"TrainConfig.prefix_sharing must be packed, kv-cache or off, got {self.prefix_sharing!r}")
        if self.prefix_sharing == "kv-cache" and self.gradient_checkpointing:
            raise ValueError(
                "TrainConfig: prefix_sharing kv-cache needs the KV cache, which gradient_checkpointing disables; "
                "use prefix_sharing: packed with gradient checkpointing"
            )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lora_target_modules"] = list(self.lora_target_modules)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a YAML or JSON config (`read_options`), then apply keyword overrides."""
        return cls.from_dict({**read_options(path), **overrides}, source=str(path))

    def resume_mismatches(self, other: TrainConfig) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUME_MUTABLE_FIELDS and mine[k] != theirs.get(k))


def read_options(path: str | Path) -> dict[str, Any]:
    """Training options of a YAML/JSON file; a top-level `train:` section is used when present.

    Keys `model` and `accelerate_config` (launch details documented in the same file) are dropped.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of training options")
    if isinstance(data.get("train"), dict):
        data = data["train"]
    return {k: v for k, v in data.items() if k not in {"model", "accelerate_config"}}
