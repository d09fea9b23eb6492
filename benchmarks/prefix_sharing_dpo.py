"""DPO training-step time: naive pairwise scoring vs shared-prefix scoring, in one run.

A step = score one node's pairs (policy log-probs of chosen and rejected continuations), DPO loss
against fixed reference log-probs, backward, AdamW step. Naive ("off") forwards prompt +
continuation for every sequence of every pair; "packed" forwards the node prefix once with every
distinct continuation packed after it under a tree attention mask; "kv-cache" forwards the prefix
once and the continuations on its KV cache (treeplay.train.logprobs).

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/prefix_sharing_dpo.py \
        --model embedded --suffix-tokens 32 --ratios 1,3,8 --pairs-per-node 1,4

--model embedded uses the real SmolLM2-135M weights; --model random builds a randomly initialised
model of the same shape (no weights needed). Token ids are random (the cost does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch

from treeplay.train.logprobs import completion_token_logps
from treeplay.train.losses import dpo_loss, sequence_logps

SMOLLM2_SHAPE: dict[str, Any] = dict(
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, tie_word_embeddings=True,
)


def build_model(name: str) -> torch.nn.Module:
    if name == "random":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE))
    from treeplay.policy.models import load_model_and_tokenizer

    model, _, _ = load_model_and_tokenizer(name)
    return model  # type: ignore[no-any-return]


def node_items(prefix_len: int, suffix_len: int, pairs: int, vocab: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """One node: the golden continuation is chosen in every pair; each pair has its own rejected branch."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, vocab, (prefix_len,), generator=g).tolist()
    chosen = torch.randint(3, vocab, (suffix_len,), generator=g).tolist()
    items = []
    for _ in range(pairs):
        rejected = torch.randint(3, vocab, (suffix_len,), generator=g).tolist()
        items += [(prompt, chosen), (prompt, rejected)]
    return items


def one_step(model: torch.nn.Module, opt: torch.optim.Optimizer, items: list, mode: str) -> tuple[float, float]:
    """(forward+backward seconds, full step seconds incl. AdamW)."""
    t0 = time.perf_counter()
    scored = completion_token_logps(model, items, prefix_sharing=mode)
    seq = sequence_logps(scored.token_logps, scored.mask)
    chosen, rejected = seq[0::2], seq[1::2]
    ref_c, ref_r = chosen.detach() - 0.1, rejected.detach() + 0.1
    dpo_loss(chosen, rejected, ref_c, ref_r, beta=0.1).loss.backward()
    t1 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", help="embedded (real SmolLM2 weights) or random (same shape)")
    parser.add_argument("--suffix-tokens", type=int, default=32)
    parser.add_argument("--ratios", default="1,3,8", help="prefix:suffix ratios")
    parser.add_argument("--pairs-per-node", default="1,4", help="pairs per node (golden vs k branches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model = build_model(args.model)
    model.train()
    vocab = int(model.config.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    ratios = [int(r) for r in args.ratios.split(",")]
    pair_counts = [int(k) for k in args.pairs_per_node.split(",")]

    modes = ["off", "packed", "kv-cache"]
    rows = []
    print(f"model={args.model} suffix={args.suffix_tokens} tokens threads={args.threads} repeats={args.repeats} (median)")
    print(f"{'pairs/node':>10} {'prefix:suffix':>13} {'naive s':>8} {'packed s':>9} {'kv-cache s':>10} "
          f"{'packed x':>9} {'kv-cache x':>10} {'packed fwd+bwd x':>16}")
    for k in pair_counts:
        for ratio in ratios:
            items = node_items(ratio * args.suffix_tokens, args.suffix_tokens, k, vocab, seed=ratio * 100 + k)
            one_step(model, opt, items, "packed")  # warm-up (allocations, optimiser state)
            times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for _ in range(args.repeats):
                for mode in modes:  # interleaved, so load changes hit all modes alike
                    times[mode].append(one_step(model, opt, items, mode))
            step = {m: statistics.median(t[1] for t in times[m]) for m in modes}
            fwd_bwd = {m: statistics.median(t[0] for t in times[m]) for m in modes}
            row = {"pairs_per_node": k, "ratio": f"{ratio}:1", "prefix_tokens": ratio * args.suffix_tokens,
                   "suffix_tokens": args.suffix_tokens, "naive_s": round(step["off"], 3),
                   "packed_s": round(step["packed"], 3), "kv_cache_s": round(step["kv-cache"], 3),
                   "speedup_packed": round(step["off"] / step["packed"], 2),
                   "speedup_kv_cache": round(step["off"] / step["kv-cache"], 2),
                   "speedup_packed_fwd_bwd": round(fwd_bwd["off"] / fwd_bwd["packed"], 2)}
            rows.append(row)
            print(f"{k:>10} {row['ratio']:>13} {step['off']:>8.2f} {step['packed']:>9.2f} {step['kv-cache']:>10.2f} "
                  f"{row['speedup_packed']:>8.2f}x {row['speedup_kv_cache']:>9.2f}x {row['speedup_packed_fwd_bwd']:>15.2f}x",
                  flush=True)
    print(json.dumps({"benchmark": "prefix_sharing_dpo", "model": args.model, "rows": rows}))


if __name__ == "__main__":
    main()
