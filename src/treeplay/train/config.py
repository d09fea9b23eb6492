"""Training configuration (what to train) — kept apart from the trainer (how), as in TRL."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from treeplay.config_fields import option

Method = Literal["sft", "selfplay", "tsp"]
METHODS: tuple[str, ...] = ("sft", "selfplay", "tsp")

# Fields that may differ between a run and its resumption (they do not change the maths).
# Options added after finished runs existed, with the default that means "as before": a train stage's
# hash leaves them out at that default (`TrainConfig.hashed_dict`), so adding one supersedes nothing.
HASHED_ONLY_WHEN_SET: dict[str, Any] = {"end_marker": False}
RESUME_MUTABLE_FIELDS = frozenset({"save_every", "keep_checkpoints", "log_every", "progress", "merge_lora"})


@dataclass
class TrainConfig:
    """What to train: the `train:` section of a run config and the options of `treeplay train`."""

    method: Method = option(
        "tsp", "sft (golden paths), selfplay (whole-sequence DPO baseline) or tsp (node-level DPO).")

    # Budget. max_steps = optimiser steps; when None it is derived from `epochs`.
    max_steps: int | None = option(None, "Optimiser steps (default: from epochs).", ge=1)
    epochs: float = option(3.0, "Passes over the pairs when max_steps is not set.", gt=0)
    batch_size: int = option(4, "Pairs per micro-batch per process.", ge=1)
    grad_accum: int = option(1, "Micro-batches per optimiser step.", ge=1)

    # Optimiser and schedule
    learning_rate: float = option(2e-5, "AdamW learning rate.", gt=0, aliases=("--lr",))
    weight_decay: float = option(0.0, "AdamW weight decay.")
    warmup_ratio: float = option(0.1, "Share of the steps with a linear learning-rate warm-up.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm.")
    seed: int = option(0, "Seed of the pair order, dropout and LoRA init.")

    # Preference loss (selfplay, tsp)
    beta: float = option(0.1, "DPO beta (strength of the reference anchor).", gt=0)
    loss_type: Literal["sigmoid", "ipo"] = option("sigmoid", "Preference loss: sigmoid (DPO) or ipo.")
    label_smoothing: float = option(0.0, "DPO label smoothing (conservative DPO).")
    # Where DPO reference log-probs come from. "recompute": a no-grad forward of the frozen start
    # model (the weights the trainer starts from, so the policy/reference log-ratio is 0 at step 0);
    # "recorded": the log-probs the sampling engine recorded, where present (only exact when the
    # engine runs the same weights in the same precision: the torch backend, not llama.cpp's Q4).
    reference: Literal["recompute", "recorded"] = option(
        "recompute", "DPO reference log-probs: recompute (frozen start model) or recorded (by the sampling "
        "engine; exact only for the torch backend).")
    # TSP options; None = method default (tsp: alpha 0.1, first_w 4, first_w_weight 1.0; others: off)
    sft_alpha: float | None = option(None, "Weight of the SFT term on the chosen completion (default: 0.1 for tsp, "
                                         "else 0).")
    first_w: int | None = option(None, "Tokens after the first divergence that get extra weight (default: 4 for "
                                     "tsp, else 0).")
    first_w_weight: float | None = option(None, "Extra weight of those first-w tokens (default: 1.0 for tsp, else 0).")

    # Model / engine
    lora: bool = option(False, "Train a LoRA adapter instead of all weights.")
    lora_r: int = option(16, "LoRA rank.", ge=1)
    lora_alpha: int = option(32, "LoRA alpha (scale = alpha / r).")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target_modules: tuple[str, ...] = option(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "Module names LoRA adapts (repeat the option for several).")
    merge_lora: bool = option(False, "Final save: the merged full model instead of the adapter.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass (not with prefix_sharing "
                                               "kv-cache).")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = option("auto", "auto: bf16 on CUDA, else no.")
    prefix_sharing: Literal["packed", "kv-cache", "off"] = option(
        "packed", "How pairs share their prompt's forward pass (see treeplay.train.logprobs).")
    max_prompt_tokens: int = option(1536, "Pairs whose prompt has more tokens are skipped.", ge=1)
    max_completion_tokens: int = option(512, "Completions are cut to this many tokens.", ge=1)
    end_marker: bool = option(
        False, "Append the end of an answer (the closing ``` of a fenced chat prompt, else EOS) to each side that "
        "ended by itself (the task's golden code, a branch that stopped), never to one cut at the token budget; "
        "without it no training sequence shows the model where to stop (TRL's DPO appends EOS to both sides).")

    # I/O
    save_every: int = option(50, "Checkpoint every N optimiser steps (and always at the end).", ge=1)
    keep_checkpoints: int = option(2, "Checkpoints kept on disk.", ge=1)
    log_every: int = option(1, "Log metrics every N optimiser steps.", ge=1)
    progress: bool = option(True, "Show a progress bar.")

    extra: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "Free-form notes copied into the run record (YAML mapping)."})

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

    def hashed_dict(self) -> dict[str, Any]:
        """What a train stage's hash covers: `to_dict()` without the options added after runs were
        made (`HASHED_ONLY_WHEN_SET`) while they are at their default, so a new option leaves the
        finished stages of earlier runs done (docs/design.md)."""
        out = self.to_dict()
        for name, default in HASHED_ONLY_WHEN_SET.items():
            if out.get(name) == default:
                out.pop(name)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training option(s) {', '.join(unknown)}")
        return cls(**data)

    def resume_mismatches(self, other: TrainConfig) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUME_MUTABLE_FIELDS and mine[k] != theirs.get(k))
