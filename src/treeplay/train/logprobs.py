"""Per-token log-probs of completions after prompts: naive and two shared-prefix computations.

All three return the same numbers (and the same gradients, tested); the shared-prefix ones
compute each distinct prompt once per batch. Identical completions of one prompt (e.g. the
golden continuation that is "chosen" in several pairs of a node) are computed once.

- naive: every (prompt + completion) sequence is its own row of one right-padded batch.
- packed (default): one row per distinct prompt: `prompt + c1[:-1] + c2[:-1] + ...` with a
  tree-shaped 4D attention mask (each completion sees the prompt and its own earlier tokens) and
  position ids restarting after the prompt for every completion. One forward for the whole
  batch, so every weight gradient is computed once; logits only at positions that predict
  completion tokens. Works with gradient checkpointing and DDP/FSDP/DeepSpeed (plain forward).
  Needs an attention implementation that accepts a custom 4D mask (sdpa, eager, flex).
- kv-cache: per distinct prompt, forward the prompt once (batch 1, with gradient,
  `logits_to_keep=1`), repeat its DynamicCache across its completions and forward them on it.
  Two forwards per prompt, so each weight gradient is accumulated twice (measurable overhead on
  small batches); gradient checkpointing drops the KV cache inside checkpointed layers
  (transformers sets `past_key_values=None` there), so this path refuses to run with it enabled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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
            "use prefix_sharing packed (or off) with gradient checkpointing"
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


def _tree_rows(items: Sequence[Item]) -> tuple[list[list[int]], list[list[int]], list[list[tuple[int, int]]], list[tuple[int, list[int]]]]:
    """Pack items by prompt: per row its token ids, position ids, completion segments [start, end),
    and per item (row, positions whose logits predict its tokens)."""
    groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
    for n, (p, c) in enumerate(items):
        groups.setdefault(tuple(p), {}).setdefault(tuple(c), []).append(n)
    rows, positions, segments = [], [], []
    where: list[tuple[int, list[int]]] = [(0, [])] * len(items)
    for r, (prompt, completions) in enumerate(groups.items()):
        ids, pos, segs = list(prompt), list(range(len(prompt))), []
        for completion, members in completions.items():
            start = len(ids)
            ids += completion[:-1]
            pos += range(len(prompt), len(prompt) + len(completion) - 1)
            segs.append((start, len(ids)))
            predicting = [len(prompt) - 1, *range(start, len(ids))]
            for n in members:
                where[n] = (r, predicting)
        rows.append(ids)
        positions.append(pos)
        segments.append(segs)
    return rows, positions, segments, where


def tree_attention_mask(lengths: Sequence[int], prompt_lengths: Sequence[int], segments: Sequence[Sequence[tuple[int, int]]], width: int) -> torch.Tensor:
    """Boolean [rows, 1, width, width] mask, True = may attend: causal inside the prompt; each
    completion segment sees the prompt and itself causally; padding positions see only themselves."""
    mask = torch.zeros((len(lengths), 1, width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for r, (length, plen, segs) in enumerate(zip(lengths, prompt_lengths, segments, strict=True)):
        mask[r, 0, :plen, :plen] = causal[:plen, :plen]
        for start, end in segs:
            mask[r, 0, start:end, :plen] = True
            mask[r, 0, start:end, start:end] = causal[: end - start, : end - start]
        pad = torch.arange(length, width)
        mask[r, 0, pad, pad] = True
    return mask


def packed_prefix_token_logps(model: nn.Module, items: Sequence[Item], *, pad_token_id: int = 0) -> ScoredTokens:
    """One forward over rows `prompt + completions` with a tree attention mask (see module doc)."""
    _validate(items)
    device = _device_of(model)
    rows, positions, segments, where = _tree_rows(items)
    width = max(len(r) for r in rows)
    prompt_lengths = [len(next(p for p, _ in items if tuple(p) == key)) for key in _row_prompts(items)]
    mask = tree_attention_mask([len(r) for r in rows], prompt_lengths, segments, width).to(device)
    attn_impl = getattr(getattr(model, "config", None), "_attn_implementation", "sdpa")
    attention: torch.Tensor = mask
    if attn_impl == "eager":
        attention = torch.zeros(mask.shape, dtype=torch.float32, device=device).masked_fill(
            ~mask, torch.finfo(torch.float32).min
        )
    elif attn_impl not in ("sdpa", "flex_attention"):
        raise ValueError(f"packed prefix sharing needs sdpa/eager/flex attention, not {attn_impl!r}; use kv-cache")
    keep = sorted({p for _, predicting in where for p in predicting})
    column = {p: i for i, p in enumerate(keep)}
    logits = model(
        input_ids=_pad(rows, pad_token_id, device),
        position_ids=_pad(positions, 0, device),
        attention_mask=attention,
        use_cache=False,
        logits_to_keep=torch.tensor(keep, dtype=torch.long, device=device),
    ).logits  # [rows, len(keep), vocab]
    t_max = max(len(c) for _, c in items)
    row_idx = torch.zeros((len(items), t_max), dtype=torch.long)
    col_idx = torch.zeros((len(items), t_max), dtype=torch.long)
    targets = torch.zeros((len(items), t_max), dtype=torch.long)
    for n, (_, completion) in enumerate(items):
        r, predicting = where[n]
        row_idx[n, :] = r
        col_idx[n, : len(completion)] = torch.tensor([column[p] for p in predicting])
        targets[n, : len(completion)] = torch.tensor(list(completion))
    logp = torch.log_softmax(logits.float(), dim=-1)
    token_logps = logp[row_idx.to(device), col_idx.to(device), targets.to(device)]
    completion_mask = _completion_mask(items, device)
    return ScoredTokens(token_logps * completion_mask, completion_mask)


def _row_prompts(items: Sequence[Item]) -> list[tuple[int, ...]]:
    seen: dict[tuple[int, ...], None] = {}
    for p, _ in items:
        seen.setdefault(tuple(p), None)
    return list(seen)


PREFIX_SHARING_MODES = ("packed", "kv-cache", "off")


def completion_token_logps(
    model: nn.Module, items: Sequence[Item], *, prefix_sharing: str = "packed", pad_token_id: int = 0
) -> ScoredTokens:
    """Per-token completion log-probs with the chosen prefix-sharing mode (packed, kv-cache, off)."""
    if prefix_sharing == "packed":
        return packed_prefix_token_logps(model, items, pad_token_id=pad_token_id)
    if prefix_sharing == "kv-cache":
        return shared_prefix_token_logps(model, items, pad_token_id=pad_token_id)
    if prefix_sharing == "off":
        return naive_token_logps(model, items, pad_token_id=pad_token_id)
    raise ValueError(f"prefix_sharing must be one of {PREFIX_SHARING_MODES}, got {prefix_sharing!r}")


class CompletionScorer(nn.Module):
    """Wraps a causal LM so one `forward` call scores a whole batch (one DDP/FSDP/DeepSpeed forward).

    `accelerate.prepare` wraps this module, so the two inner LM calls of the shared-prefix path happen
    inside a single wrapped forward, which keeps DDP gradient sync correct.
    """

    def __init__(self, lm: nn.Module, *, prefix_sharing: str = "packed", pad_token_id: int = 0) -> None:
        super().__init__()
        self.lm = lm
        # FSDP's transformer auto-wrap policy reads this from the prepared (outer) module
        self._no_split_modules = getattr(lm, "_no_split_modules", None)
        self.prefix_sharing = prefix_sharing
        self.pad_token_id = pad_token_id

    def forward(self, items: Sequence[Item]) -> ScoredTokens:  # type: ignore[override]
        return completion_token_logps(
            self.lm, items, prefix_sharing=self.prefix_sharing, pad_token_id=self.pad_token_id
        )


@contextlib.contextmanager
def scoring_mode(model: nn.Module) -> Iterator[None]:
    """No-grad eval mode for scoring (dropout off), restoring the model's train/eval mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)
