"""SFT LoRA training-step time: the old packed scoring vs the current one, in one run.

Old = `treeplay/train/logprobs.py` as of `--old-rev` (one row per distinct prompt, every row padded
to the longest, the model's own forward with `logits_to_keep` = the union of predicting columns of
all rows). New = the working tree's (prompt blocks packed first-fit into rows, LM head only on
the hidden states that predict completion tokens). A step = SFT loss of one micro-batch of
golden paths (`treeplay.train.batch.batch_loss`), backward, AdamW on the LoRA weights, with the
trainer's LoRA set-up and batch order. Old and new run alternately on the same batches and the
same weights; the losses of the two are printed side by side (they must agree).

    flock /tmp/treeplay-cpu.lock nice -n 19 .venv/bin/python benchmarks/sft_step.py \
        --pairs runs/experiment-seeds/seed-2/sft/round-1/data/pairs.jsonl --steps 1,2 [--model embedded]

`--pairs` is an SFT data stage's pairs.jsonl (golden paths of SafeCoder train tasks). Prints per
batch: positions through the decoder (padded) and logit rows of each variant, wall and process-CPU
seconds (best of `--repeats`), and new/old of the CPU seconds (one thread: robust to load).
`--layout-only --method sft|selfplay|tsp --steps 1,2,...,8` prints only those counts, summed over the
steps (no timing; any method's pairs file), to compare what the methods cost per counted token.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from treeplay.train import logprobs as new_logprobs
from treeplay.train.batch import batch_loss
from treeplay.train.config import TrainConfig
from treeplay.train.data import BatchPlan, EncodedPair, encode_pairs, read_pairs
from treeplay.train.trainer import _apply_lora, load_bundle

REPO = Path(__file__).resolve().parents[1]


def old_logprobs(rev: str) -> types.ModuleType:
    """The scoring module as it was at git revision `rev` (loaded under its own name)."""
    source = subprocess.run(["git", "show", f"{rev}:src/treeplay/train/logprobs.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("old_logprobs")
    exec(compile(source, f"{rev}:logprobs.py", "exec"), module.__dict__)  # this repository's own file
    return module


def shape_counts(old: types.ModuleType, items: Sequence[tuple[Sequence[int], Sequence[int]]]) -> dict[str, Any]:
    """Decoder positions (rows x width, padding included) and logit rows of the old and new layouts."""
    old_rows, _, _, old_where = old._tree_rows(items)
    old_cols = {p for _, predicting in old_where for p in predicting}
    packed = new_logprobs.tree_rows(items)
    return {
        "real_positions": sum(len(r) for r in packed.ids),
        "old": {"decoder_positions": len(old_rows) * max(len(r) for r in old_rows),
                "logit_rows": len(old_rows) * len(old_cols)},
        "new": {"decoder_positions": len(packed.ids) * max(len(r) for r in packed.ids),
                "logit_rows": len({(r, p) for r, predicting in packed.where for p in predicting})},
    }


def batch_items(batch: Sequence[EncodedPair]) -> list[tuple[Sequence[int], Sequence[int]]]:
    """The sequences the trainer scores: the chosen one (SFT) or chosen and rejected (preference)."""
    return [(p.prompt_ids, c) for p in batch for c in (p.chosen_ids, p.rejected_ids) if c]


def layout_totals(old: types.ModuleType, batches: dict[int, list[EncodedPair]]) -> dict[str, Any]:
    totals: dict[str, Any] = {"counted_tokens": sum(p.tokens for b in batches.values() for p in b)}
    for b in batches.values():
        counts = shape_counts(old, batch_items(b))
        totals["real_positions"] = totals.get("real_positions", 0) + counts["real_positions"]
        for variant in ("old", "new"):
            for key, value in counts[variant].items():
                totals[f"{variant}_{key}"] = totals.get(f"{variant}_{key}", 0) + value
    return totals


def timed_step(scorer: Any, optimizer: torch.optim.Optimizer, batch: list[EncodedPair], config: TrainConfig) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, loss) of forward + backward + AdamW on one micro-batch.

    With one thread the CPU seconds are the work done: unlike wall time they do not grow when other
    jobs on the machine take the core away (the ratio is claimed on them)."""
    wall, cpu = time.perf_counter(), time.process_time()
    loss, _ = batch_loss(scorer, batch, config)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="an SFT data stage's pairs.jsonl")
    parser.add_argument("--model", default="embedded", help="embedded (Qwen2.5-Coder-0.5B) or embedded:smollm2-135m")
    parser.add_argument("--steps", default="1,2", help="optimiser steps (1-based) of the trainer's batch order to time")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--old-rev", default="e6664e2", help="git revision of the old logprobs.py")
    parser.add_argument("--layout-only", action="store_true", help="print the batches' layout counts, no timing")
    parser.add_argument("--method", default="sft", choices=("sft", "selfplay", "tsp"), help="with --layout-only")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    method = args.method if args.layout_only else "sft"
    config = TrainConfig(method=method, lora=True, seed=args.seed, batch_size=args.batch_size)  # type: ignore[arg-type]
    bundle = load_bundle(args.model)
    data = encode_pairs(read_pairs(args.pairs), bundle.encoder, method=method, max_prompt_tokens=config.max_prompt_tokens,
                        max_completion_tokens=config.max_completion_tokens).pairs
    plan = BatchPlan(len(data), config.batch_size, 1, 1, config.seed)
    old = old_logprobs(args.old_rev)
    batches = {s: [data[i] for i in plan.micro_batch(s, 0, 0)] for s in (int(x) for x in args.steps.split(","))}
    if args.layout_only:
        print(json.dumps({"method": method, "pairs": len(data), "steps": list(batches), **layout_totals(old, batches)}))
        return
    torch.manual_seed(args.seed)
    model = _apply_lora(bundle.model, config)
    model.train()
    scorers = {"old": old.CompletionScorer(model), "new": new_logprobs.CompletionScorer(model)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)  # lr 0: same weights
    counts = {s: shape_counts(old, batch_items(b)) for s, b in batches.items()}
    print(json.dumps({"layout": counts}), flush=True)
    timed_step(scorers["new"], optimizer, min(batches.values(), key=lambda b: sum(p.tokens for p in b)), config)  # warm-up
    print(f"model={args.model} threads={args.threads} batch={config.batch_size} repeats={args.repeats} "
          f"torch={torch.__version__}", flush=True)
    total = {"old_s": 0.0, "new_s": 0.0, "old_cpu_s": 0.0, "new_cpu_s": 0.0}
    for step, batch in batches.items():
        wall: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        losses: dict[str, float] = {}
        for repeat in range(args.repeats):
            for name in ("old", "new") if repeat % 2 == 0 else ("new", "old"):  # alternating: load hits both alike
                seconds, cpu_seconds, losses[name] = timed_step(scorers[name], optimizer, batch, config)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        best = {f"{k}_s": min(v) for k, v in wall.items()} | {f"{k}_cpu_s": min(v) for k, v in cpu.items()}
        total = {k: total[k] + best[k] for k in total}
        row = {"step": step, "tokens": sum(p.tokens for p in batch), **counts[step],
               **{k: round(v, 2) for k, v in best.items()}, "cpu_new_over_old": round(best["new_cpu_s"] / best["old_cpu_s"], 3),
               "loss_old": losses["old"], "loss_new": losses["new"]}
        print(json.dumps(row), flush=True)
    print(json.dumps({"benchmark": "sft_step", "model": args.model, "steps": list(batches), "repeats": args.repeats,
                      **{k: round(v, 2) for k, v in total.items()},
                      "wall_new_over_old": round(total["new_s"] / total["old_s"], 3),
                      "cpu_new_over_old": round(total["new_cpu_s"] / total["old_cpu_s"], 3)}))


if __name__ == "__main__":
    main()
