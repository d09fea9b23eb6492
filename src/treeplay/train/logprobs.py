"""Per-token log-probs of completions after prompts: naive and shared-prefix computation.

Both return the same numbers (and the same gradients); the shared-prefix path forwards each
distinct prompt once and runs all of its completions as one batch on the prompt's KV cache.

- naive: every (prompt + completion) sequence is its own row of one right-padded batch.
- shared: per distinct prompt, forward the prompt once (batch 1, with gradient, `logits_to_keep=1`),
  repeat its DynamicCache across the k distinct completions, then forward the completions
  (minus their last token) on that cache. Identical completions of a prompt (e.g. the golden
  continuation that is "chosen" in several pairs of one node) are computed once.

Gradient checkpointing drops the KV cache inside checkpointed layers (transformers sets
`past_key_values=None` there), so the shared path refuses to run with it enabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from treeplay.train.losses import token_logps_from_logits

Item = tuple[Sequence[int], Sequence[int]]  # (prompt_ids, completion_ids)


@dataclass(frozen=True)
class ScoredTokens:
    token_logps: torch.Tensor  # [N, T] log-prob of completion token t of item n (0 where padded)
    mask: torch.Tensor  # [N, T] 1.0 on real completion tokens

    def row(self, n: int) -> torch.Tensor:
        return self.token_logps[n, : int(self.mask[n].sum().item())]


def _validate(items: Sequence[Item]) -> None:
    if not items:
        raise ValueError("no items to score")
    for n, (prompt, completion) in enumerate(items):
        if len(prompt) == 0:
            raise ValueError(f"item {n}: empty prompt (a prompt needs at least one token)")
        if len(completion) == 0:
            raise ValueError(f"item {n}: empty completion")


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _pad(rows: Sequence[Sequence[int]], value: int, device: torch.device) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
    return out.to(device)


def _completion_mask(items: Sequence[Item], device: torch.device) -> torch.Tensor:
    width = max(len(c) for _, c in items)
    mask = torch.zeros((len(items), width), dtype=torch.float32)
    for i, (_, c) in enumerate(items):
        mask[i, : len(c)] = 1.0
    return mask.to(device)


def naive_token_logps(model: nn.Module, items: Sequence[Item], *, pad_token_id: int = 0) -> ScoredTokens:
    """One right-padded batch of full (prompt + completion) sequences; the textbook computation."""
    _validate(items)
    device = _device_of(model)
    sequences = [list(p) + list(c) for p, c in items]
    input_ids = _pad(sequences, pad_token_id, device)
    attention = _pad([[1] * len(s) for s in sequences], 0, device)
    logits = model(input_ids=input_ids, attention_mask=attention, use_cache=False).logits
    all_logps = token_logps_from_logits(logits[:, :-1], input_ids[:, 1:])  # [N, L-1], t predicts t+1
    width = max(len(c) for _, c in items)
    rows = []
    for i, (p, c) in enumerate(items):
        start = len(p) - 1  # logit at the last prompt token predicts completion[0]
        row = all_logps[i, start : start + len(c)]
        rows.append(torch.nn.functional.pad(row, (0, width - len(c))))
    return ScoredTokens(torch.stack(rows), _completion_mask(items, device))


def _uses_gradient_checkpointing(model: nn.Module) -> bool:
    return any(
        getattr(m, "gradient_checkpointing", False) and m.training for m in model.modules()
    )


def shared_prefix_token_logps(model: nn.Module, items: Sequence[Item], *, pad_token_id: int = 0) -> ScoredTokens:
    """Forward each distinct prompt once and all of its completions on its KV cache."""
    from transformers import DynamicCache

    _validate(items)
    if torch.is_grad_enabled() and _uses_gradient_checkpointing(model):
        raise ValueError(
            "shared-prefix scoring needs the KV cache, which gradient checkpointing disables; "
            "turn off gradient checkpointing or shared_prefix"
        )
    device = _device_of(model)
    config = getattr(model, "config", None)
    width = max(len(c) for _, c in items)
    out_rows: list[torch.Tensor | None] = [None] * len(items)

    groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
    for n, (p, c) in enumerate(items):
        groups.setdefault(tuple(p), {}).setdefault(tuple(c), []).append(n)

    for prompt, completions_map in groups.items():
        completions = list(completions_map)
        k = len(completions)
        cache = DynamicCache(config=config) if config is not None else DynamicCache()
        prompt_ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
        first = model(input_ids=prompt_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        first_targets = torch.tensor([c[0] for c in completions], dtype=torch.long, device=device)
        first_logps = token_logps_from_logits(first[:, -1].expand(k, -1), first_targets)  # [k]
        longest = max(len(c) for c in completions)
        if longest > 1:
            cache.batch_repeat_interleave(k)
            suffix_inputs = _pad([c[:-1] for c in completions], pad_token_id, device)
            suffix_targets = _pad([c[1:] for c in completions], pad_token_id, device)
            suffix_valid = _pad([[1] * (len(c) - 1) for c in completions], 0, device)
            attention = torch.cat([torch.ones((k, len(prompt)), dtype=torch.long, device=device), suffix_valid], 1)
            logits = model(
                input_ids=suffix_inputs, attention_mask=attention, past_key_values=cache, use_cache=True
            ).logits
            rest = token_logps_from_logits(logits, suffix_targets)  # [k, longest-1]
            group_logps = torch.cat([first_logps.unsqueeze(1), rest], dim=1)
        else:
            group_logps = first_logps.unsqueeze(1)
        for j, c in enumerate(completions):
            row = torch.nn.functional.pad(group_logps[j, : len(c)], (0, width - len(c)))
            for n in completions_map[c]:
                out_rows[n] = row
    rows = [r for r in out_rows if r is not None]
    return ScoredTokens(torch.stack(rows), _completion_mask(items, device))


def completion_token_logps(
    model: nn.Module, items: Sequence[Item], *, shared_prefix: bool = True, pad_token_id: int = 0
) -> ScoredTokens:
    fn = shared_prefix_token_logps if shared_prefix else naive_token_logps
    return fn(model, items, pad_token_id=pad_token_id)


class CompletionScorer(nn.Module):
    """Wraps a causal LM so one `forward` call scores a whole batch (one DDP/FSDP/DeepSpeed forward).

    `accelerate.prepare` wraps this module, so the two inner LM calls of the shared-prefix path happen
    inside a single wrapped forward, which keeps DDP gradient sync correct.
    """

    def __init__(self, lm: nn.Module, *, shared_prefix: bool = True, pad_token_id: int = 0) -> None:
        super().__init__()
        self.lm = lm
        self.shared_prefix = shared_prefix
        self.pad_token_id = pad_token_id

    def forward(self, items: Sequence[Item]) -> ScoredTokens:  # type: ignore[override]
        return completion_token_logps(
            self.lm, items, shared_prefix=self.shared_prefix, pad_token_id=self.pad_token_id
        )
