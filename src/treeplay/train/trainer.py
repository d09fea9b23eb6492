"""One accelerate-based training loop for SFT, unstructured self-play (DPO) and TSP.

The same code runs on this CPU and under `accelerate launch` (DDP, FSDP, DeepSpeed ZeRO-2/3);
see docs/train.md. Public entry point: `train(config, pairs, model_in, out_dir) -> TrainResult`.

`train` runs a `Trainer` through its named phases, in this order:
setup (run dir, accelerator, seed, model) -> data (encode pairs, reference log-probs) ->
evaluate (margins before) -> setup_optimisation (LoRA, optimiser, scheduler) -> resume
(checkpoint) -> step x N (checkpoint every `save_every`) -> save (final model) -> evaluate
(margins after) -> result. Batch maths: `treeplay.train.batch`; checkpoints:
`treeplay.train.checkpoints`; encoding and data order: `treeplay.train.data`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from treeplay.jsonl import append_jsonl, to_jsonable
from treeplay.train.batch import batch_loss, preference_margins
from treeplay.train.checkpoints import (
    check_run_dir,
    keep_trainable_only,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    truncate_metrics,
)
from treeplay.train.config import TrainConfig
from treeplay.train.console import Console, tensorboard_writer
from treeplay.train.data import (
    BatchPlan,
    EncodedPair,
    EncodeReport,
    PairEncoder,
    PolicyPromptEncoder,
    compute_reference_logprobs,
    encode_pairs,
    steps_for_epochs,
)
from treeplay.train.logprobs import CompletionScorer
from treeplay.tree.records import Pair

__all__ = ["ModelBundle", "StepCallback", "TrainResult", "Trainer", "list_checkpoints", "load_bundle", "train"]

StepCallback = Callable[[int, dict[str, float]], None]


@dataclass
class ModelBundle:
    """A model to train plus how to tokenise pairs for it (what `load_model_and_tokenizer` gives)."""

    model: nn.Module
    encoder: PairEncoder
    tokenizer: Any | None = None
    model_id: str = "custom"
    prompt_format: Any | None = None


@dataclass(frozen=True)
class TrainResult:
    out_dir: str
    final_model_dir: str
    method: str
    adapter: bool  # final_model_dir holds a LoRA adapter (else a full model)
    steps: int  # optimiser steps done in total
    resumed_from_step: int  # 0 for a fresh run
    pairs_used: int  # encoded pairs in the training set
    pairs_per_step: int  # batch_size * grad_accum * processes
    tokens_seen: int  # prompt + continuation tokens of all sequences processed (naive count)
    tokens_per_step: float
    final_metrics: dict[str, float]
    skipped: dict[str, int]
    recorded_reference: int  # pairs whose reference log-probs came recorded from the opponent
    eval_before: dict[str, float] | None = None
    eval_after: dict[str, float] | None = None
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def train(
    config: TrainConfig,
    pairs: Sequence[Pair],
    model_in: str | ModelBundle,
    out_dir: str | Path,
    *,
    resume: bool = False,
    eval_pairs: Sequence[Pair] | None = None,
    callbacks: Sequence[StepCallback] = (),
) -> TrainResult:
    """Train `model_in` on `pairs` with `config.method`; write checkpoints, logs and the final model.

    `resume=True` continues from the newest complete checkpoint in `out_dir` (model, optimiser,
    scheduler, RNG and data position), or starts fresh when there is none.
    """
    t0 = time.monotonic()
    trainer = Trainer(config, Path(out_dir), resume=resume)
    trainer.load_model(model_in)
    trainer.prepare_data(pairs, eval_pairs)
    eval_before = trainer.evaluate(trainer.model)
    trainer.setup_optimisation()
    trainer.resume_from_checkpoint()
    trainer.run(callbacks)
    final_lm = trainer.save_final()
    eval_after = trainer.evaluate(final_lm)
    return trainer.finish(eval_before, eval_after, t0)


# ---------------------------------------------------------------- model set-up


def load_bundle(model_in: str, *, device: str = "cpu", dtype: str | None = None) -> ModelBundle:
    """Load a model by name/path through the policy stage (embedded SmolLM2 by default)."""
    try:
        from treeplay.policy.models import load_model_and_tokenizer
    except ImportError as exc:  # the policy stage is missing or broken
        raise RuntimeError(f"cannot load model {model_in!r}: treeplay.policy.models is unavailable ({exc})") from exc
    model, tokenizer, fmt = load_model_and_tokenizer(model_in, device=device, dtype=dtype)
    return ModelBundle(model, PolicyPromptEncoder(tokenizer, fmt), tokenizer, model_in, fmt)


def _apply_lora(model: nn.Module, config: TrainConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in config.lora_target_modules if t in names]
    if not targets:
        raise ValueError(
            f"LoRA: none of lora_target_modules {list(config.lora_target_modules)} exist in the model"
        )
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)  # type: ignore[arg-type]


def _enable_checkpointing(model: nn.Module) -> None:
    """Non-reentrant activation checkpointing (transformers 5 name, falling back to the old one)."""
    kwargs = {"use_reentrant": False}
    enable: Any = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)  # type: ignore[operator]


def _mixed_precision(config: TrainConfig) -> str | None:
    if config.mixed_precision != "auto":
        return config.mixed_precision
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None  # `accelerate launch --config_file` decides
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


# ---------------------------------------------------------------- the trainer


class Trainer:
    """One training run; `train` calls the phases in order (each phase reads what earlier ones set)."""

    bundle: ModelBundle
    model: nn.Module  # the bare start model (before LoRA), then the model being trained
    data: list[EncodedPair]
    report: EncodeReport
    eval_data: list[EncodedPair]
    plan: BatchPlan
    max_steps: int
    scorer: Any  # CompletionScorer, wrapped by accelerate
    optimizer: Any
    scheduler: Any

    # ---- setup --------------------------------------------------------------------------
    def __init__(self, config: TrainConfig, out: Path, *, resume: bool) -> None:
        """Run directory checks, accelerator, seed, `train_config.json`."""
        from accelerate import Accelerator
        from accelerate.utils import DistributedType, set_seed

        self.config, self.out, self.resume = config, out, resume
        out.mkdir(parents=True, exist_ok=True)
        config_path = check_run_dir(out, config, resume=resume)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=config.grad_accum,
            mixed_precision=_mixed_precision(config),
            step_scheduler_with_optimizer=False,
        )
        set_seed(config.seed)
        if self.accelerator.is_main_process:
            config_path.write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
        self.log = Console(self.accelerator.is_main_process)
        self.sharded = self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        self.start_step, self.tokens_seen = 0, 0
        self.last: dict[str, float] = {}
        self.writer: Any = None

    def load_model(self, model_in: str | ModelBundle) -> None:
        # full fine-tuning keeps fp32 master weights (autocast gives bf16 compute); LoRA loads the frozen
        # base in the policy's default dtype (bf16 on CUDA)
        load_dtype = None if self.config.lora else "float32"
        self.bundle = (
            model_in if isinstance(model_in, ModelBundle)
            else load_bundle(model_in, device=str(self.accelerator.device), dtype=load_dtype)
        )
        self.model = self.bundle.model.to(self.accelerator.device)

    def setup_optimisation(self) -> None:
        """LoRA and activation checkpointing, the data plan, AdamW, cosine schedule, `prepare`."""
        from transformers import get_cosine_schedule_with_warmup

        config, accelerator = self.config, self.accelerator
        if config.lora:
            self.model = _apply_lora(self.model, config)
        if config.gradient_checkpointing:
            _enable_checkpointing(self.model)
        self.model.train()
        world = accelerator.num_processes
        if config.max_steps is not None:
            self.max_steps = config.max_steps
        else:
            self.max_steps = steps_for_epochs(len(self.data), config.epochs, config.batch_size, config.grad_accum, world)
        self.plan = BatchPlan(len(self.data), config.batch_size, config.grad_accum, world, config.seed)
        scorer = CompletionScorer(self.model, prefix_sharing=config.prefix_sharing)
        params = [p for p in scorer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        warmup = math.ceil(config.warmup_ratio * self.max_steps)
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, self.max_steps)
        self.scorer, self.optimizer, self.scheduler = accelerator.prepare(scorer, optimizer, scheduler)
        accelerator.register_save_state_pre_hook(keep_trainable_only)

    # ---- data ---------------------------------------------------------------------------
    def prepare_data(self, pairs: Sequence[Pair], eval_pairs: Sequence[Pair] | None) -> None:
        """Encode the training (and held-out) pairs; fill missing reference log-probs."""
        config = self.config
        self.report = self._encode(pairs, config.method, use_recorded_reference=config.reference == "recorded")
        self.data = self.report.pairs
        if not self.data:
            raise ValueError(f"no usable training pairs out of {len(pairs)} (skipped: {self.report.skipped})")
        self.log.info(
            f"{len(self.data)} training pairs ({self.report.recorded_reference} with recorded reference log-probs);"
            f" skipped {self.report.skipped}"
            + (f"; ending with the end marker: {self.report.ended}" if self.report.ended else "")
        )
        if config.method != "sft":
            self._reference_logprobs()
        self.eval_data = self._encode(eval_pairs, "selfplay").pairs if eval_pairs else []

    def _encode(self, pairs: Sequence[Pair], method: str, *, use_recorded_reference: bool = True) -> EncodeReport:
        return encode_pairs(
            pairs, self.bundle.encoder, method=method,
            max_prompt_tokens=self.config.max_prompt_tokens, max_completion_tokens=self.config.max_completion_tokens,
            use_recorded_reference=use_recorded_reference,
            end_ids=self.bundle.encoder.end_ids if self.config.end_marker else None,
        )

    def _reference_logprobs(self) -> None:
        """The frozen start model's log-probs of pairs without recorded ones, cached in the run dir.

        The main process computes and caches; the others then read the cache (no concurrent appends).
        """
        missing = sum(not p.has_reference for p in self.data)
        if missing:
            self.log.info(f"computing reference log-probs of {missing} pairs with the frozen start model")
        cache = self.out / "reference_logprobs.jsonl"
        prefix_sharing = self.config.prefix_sharing
        if self.accelerator.is_main_process:
            self.data = compute_reference_logprobs(self.model, self.data, cache_path=cache, prefix_sharing=prefix_sharing)
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            self.data = compute_reference_logprobs(self.model, self.data, cache_path=cache, prefix_sharing=prefix_sharing)

    # ---- checkpoint ---------------------------------------------------------------------
    def resume_from_checkpoint(self) -> None:
        """Load the newest complete checkpoint (with `resume`); open the metric logs at that step."""
        checkpoints = list_checkpoints(self.out)
        if self.resume and checkpoints:
            _step_found, ckpt = checkpoints[-1]
            self.start_step, self.tokens_seen = load_checkpoint(self.accelerator, self.scorer, ckpt)
            self.log.info(f"resumed from {ckpt} (step {self.start_step})")
        if self.accelerator.is_main_process:
            truncate_metrics(self.out / "metrics.jsonl", self.start_step)
            purge_step = self.start_step + 1 if self.start_step else None
            self.writer = tensorboard_writer(self.out / "tensorboard", purge_step=purge_step)

    def save_checkpoint(self, step: int) -> None:
        state = {"step": step, "tokens_seen": self.tokens_seen, "max_steps": self.max_steps, "metrics": self.last}
        save_checkpoint(self.accelerator, self.out, step, state, self.config.keep_checkpoints)

    # ---- step ---------------------------------------------------------------------------
    def run(self, callbacks: Sequence[StepCallback] = ()) -> None:
        """Optimiser steps from the resumed one to `max_steps`: log, checkpoint, call back."""
        config = self.config
        with self.log.progress(total=self.max_steps, completed=self.start_step, enabled=config.progress) as advance:
            for step in range(self.start_step + 1, self.max_steps + 1):
                self.last = self.step(step)
                if step % config.log_every == 0:
                    self._log_metrics(step)
                if step % config.save_every == 0 or step == self.max_steps:
                    self.save_checkpoint(step)
                advance(step, self.last)
                for cb in callbacks:
                    cb(step, self.last)

    def step(self, step: int) -> dict[str, float]:
        """One optimiser step over `grad_accum` micro-batches; metrics averaged over them and processes."""
        accelerator, config = self.accelerator, self.config
        step_metrics: list[dict[str, float]] = []
        step_tokens = 0
        for micro in range(config.grad_accum):
            batch = [self.data[i] for i in self.plan.micro_batch(step, micro, accelerator.process_index)]
            step_tokens += sum(p.tokens for p in batch)
            with accelerator.accumulate(self.scorer):
                loss, m = batch_loss(self.scorer, batch, config)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.scorer.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
            step_metrics.append(m)
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        step_tokens = int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), "sum").item())
        self.tokens_seen += step_tokens
        metrics = _mean_metrics(step_metrics, accelerator)
        metrics.update({"lr": lr, "tokens": float(step_tokens), "epoch": self.plan.epoch_of_step(step)})
        return metrics

    def _log_metrics(self, step: int) -> None:
        """Main process: one `metrics.jsonl` line and the TensorBoard scalars of this step."""
        if not self.accelerator.is_main_process:
            return
        if self.writer is not None:
            for k, v in self.last.items():
                self.writer.add_scalar(f"train/{k}", v, step)
            self.writer.flush()
        append_jsonl(self.out / "metrics.jsonl", [{"step": step, **self.last}])

    # ---- save ---------------------------------------------------------------------------
    def save_final(self) -> nn.Module:
        """HF-native final model in `final/`: LoRA adapter (or merged model) or full model, plus
        tokenizer and `treeplay_train.json`. Returns the trained LM (unwrapped)."""
        accelerator, final_dir = self.accelerator, self.out / "final"
        lm = accelerator.unwrap_model(self.scorer).lm
        accelerator.wait_for_everyone()
        full_state = accelerator.get_state_dict(self.scorer)  # gathers FSDP / ZeRO-3 shards
        state = {k[len("lm.") :]: v for k, v in full_state.items() if k.startswith("lm.")} if full_state else None
        if accelerator.is_main_process:
            if final_dir.exists():
                shutil.rmtree(final_dir)
            final_dir.mkdir(parents=True)
        accelerator.wait_for_everyone()
        is_peft = hasattr(lm, "peft_config")
        main = accelerator.is_main_process
        if is_peft and self.config.merge_lora and not self.sharded:
            if main:
                merged: Any = lm.merge_and_unload()
                merged.save_pretrained(str(final_dir))
        elif is_peft:
            lm.save_pretrained(str(final_dir), state_dict=state, is_main_process=main)
        else:
            lm.save_pretrained(str(final_dir), state_dict=state, is_main_process=main, save_function=accelerator.save)
        if main:
            self._save_final_meta(final_dir, adapter=is_peft and not self.config.merge_lora)
        accelerator.wait_for_everyone()
        return lm

    def _save_final_meta(self, final_dir: Path, *, adapter: bool) -> None:
        bundle = self.bundle
        if bundle.tokenizer is not None and hasattr(bundle.tokenizer, "save_pretrained"):
            bundle.tokenizer.save_pretrained(str(final_dir))
        meta = {"base_model": bundle.model_id, "method": self.config.method, "adapter": adapter}
        if bundle.prompt_format is not None:
            meta["prompt_format"] = to_jsonable(bundle.prompt_format)
        (final_dir / "treeplay_train.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

    # ---- evaluate -----------------------------------------------------------------------
    def evaluate(self, model: nn.Module) -> dict[str, float] | None:
        """Held-out preference margins (None without eval pairs, or when the model is sharded)."""
        if not self.eval_data or self.sharded:
            return None
        return preference_margins(model, self.eval_data, prefix_sharing=self.config.prefix_sharing)

    # ---- result -------------------------------------------------------------------------
    def finish(
        self, eval_before: dict[str, float] | None, eval_after: dict[str, float] | None, t0: float
    ) -> TrainResult:
        """Close the logs, write `result.json` (the run's budget and margins), end training."""
        config, done = self.config, self.max_steps
        if self.writer is not None:
            self.writer.close()
        result = TrainResult(
            out_dir=str(self.out),
            final_model_dir=str(self.out / "final"),
            method=config.method,
            adapter=config.lora and not (config.merge_lora and not self.sharded),
            steps=done,
            resumed_from_step=self.start_step,
            pairs_used=len(self.data),
            pairs_per_step=config.batch_size * config.grad_accum * self.accelerator.num_processes,
            tokens_seen=self.tokens_seen,
            tokens_per_step=self.tokens_seen / done if done else 0.0,
            final_metrics=self.last,
            skipped=self.report.skipped,
            recorded_reference=self.report.recorded_reference,
            eval_before=eval_before,
            eval_after=eval_after,
            elapsed_s=time.monotonic() - t0,
            extra={"model_in": self.bundle.model_id, "config": config.to_dict()},
        )
        if self.accelerator.is_main_process:
            (self.out / "result.json").write_text(json.dumps(to_jsonable(result), indent=2), encoding="utf-8")
        self.accelerator.end_training()
        return result


def _mean_metrics(ms: list[dict[str, float]], accelerator: Any) -> dict[str, float]:
    keys = ms[0].keys()
    local = torch.tensor([sum(m[k] for m in ms) / len(ms) for k in keys], device=accelerator.device)
    mean = accelerator.reduce(local, "mean")
    return {k: float(v) for k, v in zip(keys, mean.tolist(), strict=True)}
