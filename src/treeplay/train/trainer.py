"""One accelerate-based training loop for SFT, unstructured self-play (DPO) and TSP.

The same code runs on this CPU and under `accelerate launch` (DDP, FSDP, DeepSpeed ZeRO-2/3);
see docs/train.md. Public entry point: `train(config, pairs, model_in, out_dir) -> TrainResult`.
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

from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail, to_jsonable, write_jsonl
from treeplay.train.config import TrainConfig
from treeplay.train.data import (
    BatchPlan,
    EncodedPair,
    PairEncoder,
    PolicyPromptEncoder,
    compute_reference_logprobs,
    encode_pairs,
    steps_for_epochs,
)
from treeplay.train.logprobs import CompletionScorer, completion_token_logps
from treeplay.train.losses import divergence_index, first_divergent_weights, sft_loss, tsp_loss
from treeplay.tree.records import Pair

CHECKPOINT_PREFIX = "step-"
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


# ---------------------------------------------------------------- batch maths


def _pad_float(rows: Sequence[Sequence[float]], width: int, device: torch.device) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out.to(device)


def batch_loss(
    scorer: nn.Module, batch: Sequence[EncodedPair], config: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one micro-batch and its metrics (sequence log-probs, rewards, accuracy)."""
    if config.method == "sft":
        scored = scorer([(p.prompt_ids, p.chosen_ids) for p in batch])
        loss = sft_loss(scored.token_logps, scored.mask)
        chosen = (scored.token_logps * scored.mask).sum(-1)
        return loss, {"loss": loss.item(), "logps/chosen": chosen.mean().item()}

    items: list[tuple[Sequence[int], Sequence[int]]] = []
    for p in batch:
        if p.ref_chosen is None or p.ref_rejected is None:
            raise ValueError(f"pair {p.index} has no reference log-probs (compute_reference_logprobs first)")
        items += [(p.prompt_ids, p.chosen_ids), (p.prompt_ids, p.rejected_ids)]
    scored = scorer(items)
    pol_c, pol_r = scored.token_logps[0::2], scored.token_logps[1::2]
    mask_c, mask_r = scored.mask[0::2], scored.mask[1::2]
    width = scored.token_logps.shape[1]
    device = scored.token_logps.device
    ref_c = _pad_float([p.ref_chosen or () for p in batch], width, device)
    ref_r = _pad_float([p.ref_rejected or () for p in batch], width, device)
    weights_c = weights_r = None
    assert config.first_w is not None and config.first_w_weight is not None and config.sft_alpha is not None
    if config.first_w > 0 and config.first_w_weight > 0:
        wc, wr = [], []
        for p in batch:
            start = divergence_index(p.chosen_ids, p.rejected_ids)
            wc.append(first_divergent_weights(len(p.chosen_ids), start, config.first_w, config.first_w_weight))
            wr.append(first_divergent_weights(len(p.rejected_ids), start, config.first_w, config.first_w_weight))
        weights_c, weights_r = _pad_float(wc, width, device), _pad_float(wr, width, device)
    out = tsp_loss(
        pol_c, pol_r, ref_c, ref_r, mask_c, mask_r,
        chosen_weights=weights_c, rejected_weights=weights_r,
        beta=config.beta, alpha=config.sft_alpha, loss_type=config.loss_type, label_smoothing=config.label_smoothing,
    )
    pref = out.preference
    metrics = {
        "loss": out.loss.item(),
        "loss/preference": pref.loss.item(),
        "loss/sft": out.sft.item(),
        "logps/chosen": (pol_c * mask_c).sum(-1).mean().item(),
        "logps/rejected": (pol_r * mask_r).sum(-1).mean().item(),
        "rewards/chosen": pref.chosen_rewards.mean().item(),
        "rewards/rejected": pref.rejected_rewards.mean().item(),
        "rewards/margin": pref.reward_margin.mean().item(),
        "rewards/accuracy": pref.accuracy.item(),
    }
    return out.loss, metrics


def preference_margins(
    model: nn.Module, pairs: Sequence[EncodedPair], *, batch_size: int = 8, prefix_sharing: str = "packed"
) -> dict[str, float]:
    """Chosen-over-rejected margins of a model on pairs (no grad).

    margin = mean(log p(chosen) - log p(rejected)); per-token margin uses length-normalised
    log-probs; accuracy = fraction of pairs with log p(chosen) > log p(rejected) per token.
    """
    if not pairs:
        raise ValueError("preference_margins: no pairs")
    margins, token_margins, wins = [], [], 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start : start + batch_size]
                items: list[tuple[Sequence[int], Sequence[int]]] = []
                for p in chunk:
                    items += [(p.prompt_ids, p.chosen_ids), (p.prompt_ids, p.rejected_ids)]
                scored = completion_token_logps(model, items, prefix_sharing=prefix_sharing)
                for j, p in enumerate(chunk):
                    c, r = scored.row(2 * j).sum().item(), scored.row(2 * j + 1).sum().item()
                    margins.append(c - r)
                    tm = c / len(p.chosen_ids) - r / len(p.rejected_ids)
                    token_margins.append(tm)
                    wins += tm > 0
    finally:
        model.train(was_training)
    n = len(margins)
    return {
        "pairs": float(n),
        "margin": sum(margins) / n,
        "margin_per_token": sum(token_margins) / n,
        "accuracy_per_token": wins / n,
    }


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


# ---------------------------------------------------------------- checkpoints


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with trainer_state.json), oldest first."""
    root = out_dir / "checkpoints"
    found = []
    if root.is_dir():
        for d in root.iterdir():
            number = d.name[len(CHECKPOINT_PREFIX) :]
            if d.name.startswith(CHECKPOINT_PREFIX) and number.isdigit() and (d / "trainer_state.json").exists():
                found.append((int(number), d))
    return sorted(found)


TRAINABLE_KEYS_FILE = "trainable_keys.json"


def _trainable_keys(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _keep_trainable_only(models: list[nn.Module], weights: list[dict[str, Any]], _out: str) -> None:
    """accelerate save-state pre-hook: with frozen parameters (LoRA), a checkpoint holds only the
    trainable ones. The frozen base is reloaded from the base model on resume; saving it too made
    every LoRA checkpoint of the 0.5B model 2.5 GB instead of ~0.1 GB. FSDP/DeepSpeed save
    their own shards (no `weights` here) and are left alone."""
    if len(weights) != len(models):
        return
    for model, state in zip(models, weights, strict=True):
        keep = _trainable_keys(model)
        if len(keep) < sum(1 for _ in model.parameters()):
            for key in [k for k in state if k not in keep]:
                del state[key]
            Path(_out, TRAINABLE_KEYS_FILE).write_text(json.dumps(sorted(keep)), encoding="utf-8")


def _load_checkpoint(accelerator: Any, scorer: nn.Module, ckpt: Path) -> None:
    """Load a checkpoint; a trainable-only one must hold exactly the model's trainable parameters
    (load with strict=False would otherwise skip a mismatch silently)."""
    keys_file = ckpt / TRAINABLE_KEYS_FILE
    if not keys_file.exists():
        accelerator.load_state(str(ckpt))
        return
    saved = set(json.loads(keys_file.read_text(encoding="utf-8")))
    expected = _trainable_keys(scorer)
    if saved != expected:
        diff = sorted(saved ^ expected)[:3]
        raise ValueError(f"{ckpt}: checkpoint's trainable parameters differ from the model's (e.g. {diff}); wrong base or LoRA config")
    accelerator.load_state(str(ckpt), strict=False)


def _save_checkpoint(accelerator: Any, out_dir: Path, step: int, state: dict[str, Any], keep: int) -> None:
    root = out_dir / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step:07d}"
    partial = root / f"{CHECKPOINT_PREFIX}{step:07d}.partial"
    if accelerator.is_main_process and partial.exists():
        shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # a checkpoint is visible only once complete
        for _, old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------- the loop


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
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, set_seed
    from transformers import get_cosine_schedule_with_warmup

    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = list_checkpoints(out)
    if checkpoints and not resume:
        raise FileExistsError(f"{out} already holds checkpoints; pass resume=True (--resume) or use a new --out")
    config_path = out / "train_config.json"
    if resume and config_path.exists():
        previous = TrainConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")), source=str(config_path))
        diff = config.resume_mismatches(previous)
        if diff:
            raise ValueError(f"{config_path}: cannot resume with changed option(s) {', '.join(diff)}")

    accelerator = Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        mixed_precision=_mixed_precision(config),
        step_scheduler_with_optimizer=False,
    )
    set_seed(config.seed)
    if accelerator.is_main_process:
        config_path.write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    log = _Console(accelerator.is_main_process)

    # full fine-tuning keeps fp32 master weights (autocast gives bf16 compute); LoRA loads the frozen base in
    # the policy's default dtype (bf16 on CUDA)
    load_dtype = None if config.lora else "float32"
    bundle = (
        model_in if isinstance(model_in, ModelBundle)
        else load_bundle(model_in, device=str(accelerator.device), dtype=load_dtype)
    )
    model = bundle.model.to(accelerator.device)
    report = encode_pairs(
        pairs, bundle.encoder, method=config.method,
        max_prompt_tokens=config.max_prompt_tokens, max_completion_tokens=config.max_completion_tokens,
        use_recorded_reference=config.reference == "recorded",
    )
    data = report.pairs
    if not data:
        raise ValueError(f"no usable training pairs out of {len(pairs)} (skipped: {report.skipped})")
    log.info(f"{len(data)} training pairs ({report.recorded_reference} with recorded reference log-probs); skipped {report.skipped}")
    if config.method != "sft":
        missing = sum(not p.has_reference for p in data)
        if missing:
            log.info(f"computing reference log-probs of {missing} pairs with the frozen start model")
        # the main process computes and caches; the others then read the cache (no concurrent appends)
        cache = out / "reference_logprobs.jsonl"
        if accelerator.is_main_process:
            data = compute_reference_logprobs(model, data, cache_path=cache, prefix_sharing=config.prefix_sharing)
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            data = compute_reference_logprobs(model, data, cache_path=cache, prefix_sharing=config.prefix_sharing)

    eval_data: list[EncodedPair] = []
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if eval_pairs:
        eval_data = encode_pairs(
            eval_pairs, bundle.encoder, method="selfplay",
            max_prompt_tokens=config.max_prompt_tokens, max_completion_tokens=config.max_completion_tokens,
        ).pairs
    eval_before = preference_margins(model, eval_data, prefix_sharing=config.prefix_sharing) if eval_data and not sharded else None

    if config.lora:
        model = _apply_lora(model, config)
    if config.gradient_checkpointing:
        _enable_checkpointing(model)
    model.train()

    world = accelerator.num_processes
    if config.max_steps is not None:
        max_steps = config.max_steps
    else:
        max_steps = steps_for_epochs(len(data), config.epochs, config.batch_size, config.grad_accum, world)
    plan = BatchPlan(len(data), config.batch_size, config.grad_accum, world, config.seed)
    scorer = CompletionScorer(model, prefix_sharing=config.prefix_sharing)
    params = [p for p in scorer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * max_steps), max_steps)
    scorer, optimizer, scheduler = accelerator.prepare(scorer, optimizer, scheduler)
    accelerator.register_save_state_pre_hook(_keep_trainable_only)

    start_step, tokens_seen = 0, 0
    checkpoints = list_checkpoints(out)
    if resume and checkpoints:
        _step_found, ckpt = checkpoints[-1]
        _load_checkpoint(accelerator, scorer, ckpt)
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        start_step, tokens_seen = int(state["step"]), int(state["tokens_seen"])
        log.info(f"resumed from {ckpt} (step {start_step})")

    metrics_path = out / "metrics.jsonl"
    writer = None
    if accelerator.is_main_process:
        _truncate_metrics(metrics_path, start_step)
        writer = _tensorboard(out / "tensorboard", purge_step=start_step + 1 if start_step else None)

    last: dict[str, float] = {}
    with log.progress(total=max_steps, completed=start_step, enabled=config.progress) as advance:
        for step in range(start_step + 1, max_steps + 1):
            step_metrics: list[dict[str, float]] = []
            step_tokens = 0
            for micro in range(config.grad_accum):
                batch = [data[i] for i in plan.micro_batch(step, micro, accelerator.process_index)]
                step_tokens += sum(p.tokens for p in batch)
                with accelerator.accumulate(scorer):
                    loss, m = batch_loss(scorer, batch, config)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(scorer.parameters(), config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad()
                step_metrics.append(m)
            lr = scheduler.get_last_lr()[0]
            scheduler.step()
            step_tokens = int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), "sum").item())
            tokens_seen += step_tokens
            last = _mean_metrics(step_metrics, accelerator)
            last.update({"lr": lr, "tokens": float(step_tokens), "epoch": plan.epoch_of_step(step)})
            if writer is not None and step % config.log_every == 0:
                for k, v in last.items():
                    writer.add_scalar(f"train/{k}", v, step)
                writer.flush()
                append_jsonl(metrics_path, [{"step": step, **last}])
            if step % config.save_every == 0 or step == max_steps:
                _save_checkpoint(
                    accelerator, out, step,
                    {"step": step, "tokens_seen": tokens_seen, "max_steps": max_steps, "metrics": last},
                    config.keep_checkpoints,
                )
            advance(step, last)
            for cb in callbacks:
                cb(step, last)

    final_dir = out / "final"
    unwrapped = accelerator.unwrap_model(scorer).lm
    _save_final(accelerator, scorer, unwrapped, final_dir, bundle, config, sharded)
    eval_after = preference_margins(unwrapped, eval_data, prefix_sharing=config.prefix_sharing) if eval_data and not sharded else None
    if writer is not None:
        writer.close()

    pairs_per_step = config.batch_size * config.grad_accum * world
    done = max_steps
    result = TrainResult(
        out_dir=str(out),
        final_model_dir=str(final_dir),
        method=config.method,
        adapter=config.lora and not (config.merge_lora and not sharded),
        steps=done,
        resumed_from_step=start_step,
        pairs_used=len(data),
        pairs_per_step=pairs_per_step,
        tokens_seen=tokens_seen,
        tokens_per_step=tokens_seen / done if done else 0.0,
        final_metrics=last,
        skipped=report.skipped,
        recorded_reference=report.recorded_reference,
        eval_before=eval_before,
        eval_after=eval_after,
        elapsed_s=time.monotonic() - t0,
        extra={"model_in": bundle.model_id, "config": config.to_dict()},
    )
    if accelerator.is_main_process:
        (out / "result.json").write_text(json.dumps(to_jsonable(result), indent=2), encoding="utf-8")
    accelerator.end_training()
    return result


def _save_final(
    accelerator: Any, scorer: nn.Module, lm: nn.Module, final_dir: Path, bundle: ModelBundle,
    config: TrainConfig, sharded: bool,
) -> None:
    """HF-native final model: LoRA adapter (or merged model) or full model, plus tokenizer."""
    accelerator.wait_for_everyone()
    full_state = accelerator.get_state_dict(scorer)  # gathers FSDP / ZeRO-3 shards
    state = {k[len("lm.") :]: v for k, v in full_state.items() if k.startswith("lm.")} if full_state else None
    if accelerator.is_main_process:
        if final_dir.exists():
            shutil.rmtree(final_dir)
        final_dir.mkdir(parents=True)
    accelerator.wait_for_everyone()
    is_peft = hasattr(lm, "peft_config")
    if is_peft and config.merge_lora and not sharded:
        if accelerator.is_main_process:
            merged: Any = lm.merge_and_unload()  # type: ignore[operator]
            merged.save_pretrained(str(final_dir))
    elif is_peft:
        lm.save_pretrained(str(final_dir), state_dict=state, is_main_process=accelerator.is_main_process)  # type: ignore[operator]
    else:
        lm.save_pretrained(  # type: ignore[operator]
            str(final_dir), state_dict=state, is_main_process=accelerator.is_main_process, save_function=accelerator.save
        )
    if accelerator.is_main_process:
        if bundle.tokenizer is not None and hasattr(bundle.tokenizer, "save_pretrained"):
            bundle.tokenizer.save_pretrained(str(final_dir))
        meta = {"base_model": bundle.model_id, "method": config.method, "adapter": is_peft and not config.merge_lora}
        if bundle.prompt_format is not None:
            meta["prompt_format"] = to_jsonable(bundle.prompt_format)
        (final_dir / "treeplay_train.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    accelerator.wait_for_everyone()


def _mean_metrics(ms: list[dict[str, float]], accelerator: Any) -> dict[str, float]:
    keys = ms[0].keys()
    local = torch.tensor([sum(m[k] for m in ms) / len(ms) for k in keys], device=accelerator.device)
    mean = accelerator.reduce(local, "mean")
    return {k: float(v) for k, v in zip(keys, mean.tolist(), strict=True)}


def _truncate_metrics(path: Path, last_step: int) -> None:
    """On resume, drop metric lines of steps after the checkpoint (they will be redone)."""
    if not path.exists():
        return
    repair_truncated_tail(path)
    kept = [r for r in read_jsonl(path, tolerate_truncated_tail=True) if int(r.get("step", 0)) <= last_step]
    write_jsonl(path, kept)


def _tensorboard(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class _Console:
    """Main-process messages and a rich progress bar with ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def info(self, message: str) -> None:
        if self.enabled:
            from rich.console import Console

            Console(stderr=True).print(f"[bold]train[/bold] {message}", highlight=False)

    def progress(self, *, total: int, completed: int, enabled: bool) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def bar() -> Any:
            if not (self.enabled and enabled):
                yield lambda step, metrics: None
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(), transient=False,
            ) as progress:
                task = progress.add_task("train", total=total, completed=completed, info="")

                def advance(step: int, metrics: dict[str, float]) -> None:
                    info = f"loss {metrics.get('loss', float('nan')):.4f}"
                    if "rewards/margin" in metrics:
                        info += f" margin {metrics['rewards/margin']:.3f} acc {metrics['rewards/accuracy']:.2f}"
                    progress.update(task, completed=step, info=info)

                yield advance

        return bar()
