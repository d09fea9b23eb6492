"""Per-token log-probs of completions after prompts: naive and two shared-prefix computations.

All three return the same numbers (and the same gradients, tested); the shared-prefix ones
compute each distinct prompt once per batch. Identical completions of one prompt (e.g. the
golden continuation that is "chosen" in several pairs of a node) are computed once.

- naive: every (prompt + completion) sequence is its own row of one right-padded batch.
- packed (default): one block per distinct prompt: `prompt + c1[:-1] + c2[:-1] + ...` with a
  tree-shaped 4D attention mask (each completion sees the prompt and its own earlier tokens) and
  position ids restarting after the prompt for every completion; blocks are packed first-fit
  into rows (a row never longer than the longest block), so little is padding. One forward for
  the whole batch, so every weight gradient is computed once; the LM head runs only on the
  hidden states that predict completion tokens (`predicting_logits`). Works with gradient
  checkpointing and DDP/FSDP/DeepSpeed (plain forward).
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


Block = tuple[int, int, list[tuple[int, int]]]  # in a row: (start, prompt length, completion segments [start, end))


@dataclass(frozen=True)
class TreeRows:
    """A batch packed for one forward: rows of prompt blocks, each followed by its completions."""

    ids: list[list[int]]  # token ids per row
    positions: list[list[int]]  # position ids per row (restarting in every block and after every prompt)
    blocks: list[list[Block]]  # per row
    where: list[tuple[int, list[int]]]  # per item: its row, and the positions whose logits predict its tokens


def _pack_first_fit(lengths: Sequence[int]) -> list[list[int]]:
    """First-fit decreasing: indices of the blocks in each row, no row longer than the longest block."""
    capacity = max(lengths)
    rows: list[list[int]] = []
    room: list[int] = []
    for g in sorted(range(len(lengths)), key=lambda g: -lengths[g]):  # stable: ties keep input order
        r = next((r for r, free in enumerate(room) if lengths[g] <= free), None)
        if r is None:
            rows.append([])
            room.append(capacity)
            r = len(rows) - 1
        rows[r].append(g)
        room[r] -= lengths[g]
    return rows


def tree_rows(items: Sequence[Item]) -> TreeRows:
    """One block per distinct prompt: `prompt + c1[:-1] + c2[:-1] + ...` (identical completions once);
    blocks are packed first-fit into rows no longer than the longest block, so short sequences share
    a row instead of being padded to the longest one."""
    groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = {}
    for n, (p, c) in enumerate(items):
        groups.setdefault(tuple(p), {}).setdefault(tuple(c), []).append(n)
    prompts = list(groups)
    lengths = [len(p) + sum(len(c) - 1 for c in groups[p]) for p in prompts]
    out = TreeRows([], [], [], [(0, [])] * len(items))
    for r, members in enumerate(_pack_first_fit(lengths)):
        ids: list[int] = []
        pos: list[int] = []
        blocks: list[Block] = []
        for g in members:
            prompt, base = prompts[g], len(ids)
            ids += prompt
            pos += range(len(prompt))
            segs = []
            for completion, items_of_completion in groups[prompt].items():
                start = len(ids)
                ids += completion[:-1]
                pos += range(len(prompt), len(prompt) + len(completion) - 1)
                segs.append((start, len(ids)))
                predicting = [base + len(prompt) - 1, *range(start, len(ids))]
                for n in items_of_completion:
                    out.where[n] = (r, predicting)
            blocks.append((base, len(prompt), segs))
        out.ids.append(ids)
        out.positions.append(pos)
        out.blocks.append(blocks)
    return out


def tree_attention_mask(lengths: Sequence[int], blocks: Sequence[Sequence[Block]], width: int) -> torch.Tensor:
    """Boolean [rows, 1, width, width] mask, True = may attend: causal inside each prompt; each
    completion segment sees its block's prompt and itself causally; padding positions see only themselves."""
    mask = torch.zeros((len(lengths), 1, width, width), dtype=torch.bool)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    for r, (length, row_blocks) in enumerate(zip(lengths, blocks, strict=True)):
        for base, plen, segs in row_blocks:
            prompt = slice(base, base + plen)
            mask[r, 0, prompt, prompt] = causal[:plen, :plen]
            for start, end in segs:
                mask[r, 0, start:end, prompt] = True
                mask[r, 0, start:end, start:end] = causal[: end - start, : end - start]
        pad = torch.arange(length, width)
        mask[r, 0, pad, pad] = True
    return mask


# Architectures whose causal-LM forward is exactly `lm_head(decoder(...).last_hidden_state)` (no logit
# scaling or soft-capping; checked in transformers' modeling_llama.py / modeling_qwen2.py): for them the
# LM head runs only on the hidden states that predict completion tokens.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "qwen2"})


def _decoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    if getattr(getattr(model, "config", None), "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    decoder = get_decoder() if callable(get_decoder) else None
    head = get_head() if callable(get_head) else None
    return (decoder, head) if isinstance(decoder, nn.Module) and isinstance(head, nn.Module) else None


def predicting_logits(model: nn.Module, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Logits [K, vocab] at positions (rows[k], cols[k]) of one forward over `inputs`.

    With a plain-head architecture the LM head (hidden x vocab, the largest matmul per position) runs on
    those K hidden states only; otherwise the model's own forward keeps the union of `cols` in every row.
    """
    split = _decoder_and_head(model)
    if split is not None:
        decoder, head = split
        hidden = decoder(**inputs, use_cache=False).last_hidden_state  # [rows, width, hidden]
        return head(hidden[rows, cols])  # type: ignore[no-any-return]
    keep, col_in_keep = torch.unique(cols, return_inverse=True)
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits  # [rows, len(keep), vocab]
    return logits[rows, col_in_keep]  # type: ignore[no-any-return]


def _attention_input(model: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    attn_impl = getattr(getattr(model, "config", None), "_attn_implementation", "sdpa")
    if attn_impl == "eager":
        return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill(
            ~mask, torch.finfo(torch.float32).min
        )
    if attn_impl not in ("sdpa", "flex_attention"):
        raise ValueError(f"packed prefix sharing needs sdpa/eager/flex attention, not {attn_impl!r}; use kv-cache")
    return mask


def packed_prefix_token_logps(model: nn.Module, items: Sequence[Item], *, pad_token_id: int = 0) -> ScoredTokens:
    """One forward over packed rows with a tree attention mask (see module doc); logits only at the
    distinct positions that predict completion tokens."""
    _validate(items)
    device = _device_of(model)
    packed = tree_rows(items)
    width = max(len(r) for r in packed.ids)
    mask = tree_attention_mask([len(r) for r in packed.ids], packed.blocks, width).to(device)
    inputs = {
        "input_ids": _pad(packed.ids, pad_token_id, device),
        "position_ids": _pad(packed.positions, 0, device),
        "attention_mask": _attention_input(model, mask),
    }
    keep: dict[tuple[int, int], int] = {}  # (row, position) -> index into the computed logits
    t_max = max(len(c) for _, c in items)
    logit_idx = torch.zeros((len(items), t_max), dtype=torch.long)
    targets = torch.zeros((len(items), t_max), dtype=torch.long)
    for n, (_, completion) in enumerate(items):
        r, predicting = packed.where[n]
        logit_idx[n, : len(completion)] = torch.tensor([keep.setdefault((r, p), len(keep)) for p in predicting])
        targets[n, : len(completion)] = torch.tensor(list(completion))
    at = torch.tensor(list(keep), dtype=torch.long, device=device)  # [K, 2]
    logp = torch.log_softmax(predicting_logits(model, inputs, at[:, 0], at[:, 1]).float(), dim=-1)  # [K, vocab]
    token_logps = logp[logit_idx.to(device), targets.to(device)]
    completion_mask = _completion_mask(items, device)
    return ScoredTokens(token_logps * completion_mask, completion_mask)


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
