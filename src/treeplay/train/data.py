"""Turning `Pair` records into token ids, reference log-probs and deterministic batches."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail
from treeplay.train.logprobs import completion_token_logps, scoring_mode
from treeplay.tree.records import Pair, read_pairs  # noqa: F401  (read_pairs: re-exported for train callers)


class PairEncoder(Protocol):
    """Turns a pair's prompt (instruction + code prefix) and continuations into token ids."""

    def encode_prompt(self, pair: Pair) -> list[int]: ...

    def encode_continuation(self, text: str) -> list[int]: ...

    def end_ids(self, text: str) -> list[int]: ...


class PolicyPromptEncoder:
    """The policy stage's prompt rendering, so training sees exactly the tokens sampling saw."""

    def __init__(self, tokenizer: Any, prompt_format: Any) -> None:
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format

    def encode_prompt(self, pair: Pair) -> list[int]:
        from treeplay.policy.prompting import encode_prompt

        return list(encode_prompt(self.tokenizer, self.prompt_format, pair.instruction, pair.language, pair.prefix))

    def encode_continuation(self, text: str) -> list[int]:
        from treeplay.policy.prompting import encode_continuation

        return list(encode_continuation(self.tokenizer, text))

    def end_ids(self, text: str) -> list[int]:
        """The tokens that end an answer whose code is `text`: what sampling stops at. A fenced chat
        prompt's answer ends with the closing fence (on a line of its own), any other with EOS."""
        from treeplay.policy.prompting import encode_continuation

        if self.prompt_format.closes_with_fence:
            return list(encode_continuation(self.tokenizer, "```" if text.endswith("\n") else "\n```"))
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("train.end_marker: the tokenizer has no EOS token and the prompt format has no fence")
        return [int(eos)]


@dataclass(frozen=True)
class EncodedPair:
    index: int  # position in the input list
    key: str  # content hash (prompt + continuations), keys the reference cache
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]  # () for SFT-only records
    ref_chosen: tuple[float, ...] | None = None  # reference per-token log-probs of chosen_ids
    ref_rejected: tuple[float, ...] | None = None

    @property
    def tokens(self) -> int:
        """Tokens this pair costs in a naive step (prompt once per continuation)."""
        n = len(self.prompt_ids) + len(self.chosen_ids)
        if self.rejected_ids:
            n += len(self.prompt_ids) + len(self.rejected_ids)
        return n

    @property
    def has_reference(self) -> bool:
        return self.ref_chosen is not None and (not self.rejected_ids or self.ref_rejected is not None)


@dataclass(frozen=True)
class EncodeReport:
    pairs: list[EncodedPair]
    skipped: dict[str, int]  # reason -> count
    recorded_reference: int  # pairs whose reference came from the recorded opponent log-probs
    # `end_ids` given: sides that end with the end marker after the cut to max_completion_tokens
    ended: dict[str, int] = field(default_factory=dict)  # "chosen"/"rejected" -> count


def side_ended(finish_reason: str | None, mode: str, side: str) -> bool:
    """Did this side of a pair end by itself? Recorded: its finish reason is "stop". Not recorded
    (pairs written before 2026-11-28): only a chosen side of a dataset-written mode (the task's golden
    code, which ends where the function does) counts as ended; a model-written side does not."""
    if finish_reason is not None:
        return finish_reason == "stop"
    return side == "chosen" and mode in ("golden-vs-branch", "golden-vs-unparseable", "sft")


def _content_key(prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int]) -> str:
    h = hashlib.sha256(json.dumps([list(prompt), list(chosen), list(rejected)]).encode())
    return h.hexdigest()[:32]


def _continuation(
    text: str,
    recorded_ids: tuple[int, ...] | None,
    recorded_logps: tuple[float, ...] | None,
    encoder: PairEncoder,
    where: str,
) -> tuple[tuple[int, ...], tuple[float, ...] | None]:
    if recorded_ids is not None:
        if recorded_logps is not None and len(recorded_logps) != len(recorded_ids):
            raise ValueError(
                f"{where}: {len(recorded_logps)} recorded log-probs for {len(recorded_ids)} token ids"
            )
        return tuple(recorded_ids), (tuple(recorded_logps) if recorded_logps is not None else None)
    return tuple(encoder.encode_continuation(text)), None


def encode_pairs(
    pairs: Sequence[Pair],
    encoder: PairEncoder,
    *,
    method: str,
    max_prompt_tokens: int,
    max_completion_tokens: int,
    use_recorded_reference: bool = True,
    end_ids: Callable[[str], list[int]] | None = None,
) -> EncodeReport:
    """Encode pairs; recorded token ids (with their opponent log-probs) are used as-is.

    `end_ids` (`train.end_marker`): the tokens that end an answer, appended to each side that ended
    by itself (`side_ended`) when the side with them fits in `max_completion_tokens` (a side cut
    there did not end); a pair that gets them has its reference recomputed whole (nothing recorded them).

    With `use_recorded_reference=False` the recorded log-probs are dropped (token ids are kept), so
    every reference value is recomputed by the frozen start model.

    Continuations longer than `max_completion_tokens` are cut (with their reference log-probs,
    which stay aligned); pairs whose prompt is too long or whose continuation is empty are skipped.
    """
    out: list[EncodedPair] = []
    skipped: dict[str, int] = {}
    recorded = 0
    ended = {"chosen": 0, "rejected": 0}
    needs_rejected = method != "sft"
    for i, pair in enumerate(pairs):
        where = f"pair {i} (task {pair.task_id}, node {pair.node_id})"
        if needs_rejected and pair.mode == "sft":
            skipped["sft record in a preference run"] = skipped.get("sft record in a preference run", 0) + 1
            continue
        prompt = tuple(encoder.encode_prompt(pair))
        if len(prompt) > max_prompt_tokens:
            skipped["prompt longer than max_prompt_tokens"] = skipped.get("prompt longer than max_prompt_tokens", 0) + 1
            continue
        chosen, ref_c = _continuation(pair.chosen, pair.chosen_token_ids, pair.chosen_ref_logprobs, encoder, where)
        rejected: tuple[int, ...] = ()
        ref_r: tuple[float, ...] | None = None
        if needs_rejected:
            rejected, ref_r = _continuation(
                pair.rejected, pair.rejected_token_ids, pair.rejected_ref_logprobs, encoder, where
            )
        if end_ids is not None and side_ended(pair.chosen_finish_reason, pair.mode, "chosen"):
            chosen, ref_c = _with_end(chosen, ref_c, end_ids(pair.chosen), max_completion_tokens, ended, "chosen")
        if end_ids is not None and rejected and side_ended(pair.rejected_finish_reason, pair.mode, "rejected"):
            rejected, ref_r = _with_end(rejected, ref_r, end_ids(pair.rejected), max_completion_tokens, ended,
                                        "rejected")
        chosen, rejected = chosen[:max_completion_tokens], rejected[:max_completion_tokens]
        ref_c = ref_c[:max_completion_tokens] if ref_c is not None else None
        ref_r = ref_r[:max_completion_tokens] if ref_r is not None else None
        if not chosen or (needs_rejected and not rejected):
            skipped["empty continuation"] = skipped.get("empty continuation", 0) + 1
            continue
        if needs_rejected and chosen == rejected:
            skipped["chosen equals rejected (after truncation)"] = skipped.get("chosen equals rejected (after truncation)", 0) + 1
            continue
        if use_recorded_reference and ref_c is not None and (ref_r is not None or not needs_rejected):
            recorded += 1
        else:
            ref_c = ref_r = None  # a half-recorded pair is recomputed whole, from one reference model
        out.append(EncodedPair(i, _content_key(prompt, chosen, rejected), prompt, chosen, rejected, ref_c, ref_r))
    return EncodeReport(out, skipped, recorded, ended if end_ids is not None else {})


def _with_end(ids: tuple[int, ...], refs: tuple[float, ...] | None, end: Sequence[int], budget: int,
              ended: dict[str, int], side: str) -> tuple[tuple[int, ...], tuple[float, ...] | None]:  # fmt: skip
    """`ids` + `end` when both fit in `budget` (counted in `ended`; the reference is dropped: no engine
    recorded log-probs of the marker); else `ids` and `refs` unchanged: a side cut at the budget
    did not end there."""
    if len(ids) + len(end) > budget:
        return ids, refs
    ended[side] += 1
    return ids + tuple(end), None


def compute_reference_logprobs(
    model: nn.Module,
    pairs: Sequence[EncodedPair],
    *,
    cache_path: Path | None = None,
    batch_size: int = 8,
    prefix_sharing: str = "packed",
    on_batch: Callable[[int], None] | None = None,
) -> list[EncodedPair]:
    """Fill missing reference log-probs with the frozen start model (no grad), cached in JSONL.

    The cache (one line per pair key) makes a killed run resume without recomputing; pairs that
    already carry recorded opponent log-probs are returned unchanged.
    """
    cached: dict[str, dict[str, Any]] = {}
    if cache_path is not None and cache_path.exists():
        repair_truncated_tail(cache_path)
        cached = {r["key"]: r for r in read_jsonl(cache_path, tolerate_truncated_tail=True)}
    result = list(pairs)
    todo = []
    for n, p in enumerate(result):
        if p.has_reference:
            continue
        if p.key in cached:
            r = cached[p.key]
            result[n] = replace(p, ref_chosen=tuple(r["chosen"]), ref_rejected=tuple(r["rejected"]) if p.rejected_ids else None)
        else:
            todo.append(n)
    with scoring_mode(model):
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            items: list[tuple[Sequence[int], Sequence[int]]] = []
            for n in chunk:
                p = result[n]
                items.append((p.prompt_ids, p.chosen_ids))
                if p.rejected_ids:
                    items.append((p.prompt_ids, p.rejected_ids))
            scored = completion_token_logps(model, items, prefix_sharing=prefix_sharing)
            rows = iter(range(len(items)))
            lines = []
            for n in chunk:
                p = result[n]
                ref_c = tuple(scored.row(next(rows)).tolist())
                ref_r = tuple(scored.row(next(rows)).tolist()) if p.rejected_ids else None
                result[n] = replace(p, ref_chosen=ref_c, ref_rejected=ref_r)
                lines.append({"key": p.key, "chosen": list(ref_c), "rejected": list(ref_r or ())})
            if cache_path is not None:
                append_jsonl(cache_path, lines)
            if on_batch is not None:
                on_batch(len(chunk))
    return result


@dataclass(frozen=True)
class BatchPlan:
    """Deterministic data order: an endless stream of per-epoch seeded permutations.

    The micro-batch for (step, micro, rank) depends only on those numbers, so resuming at a
    step restores the data position exactly without storing a sampler state.
    """

    n_items: int
    batch_size: int
    grad_accum: int
    world_size: int
    seed: int

    def stream_index_to_item(self, i: int) -> int:
        epoch, pos = divmod(i, self.n_items)
        order = list(range(self.n_items))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order[pos]

    def micro_batch(self, step: int, micro: int, rank: int) -> list[int]:
        """Item indices of micro-batch `micro` of optimiser step `step` (1-based) on process `rank`."""
        global_micro = (step - 1) * self.grad_accum + micro
        start = (global_micro * self.world_size + rank) * self.batch_size
        return [self.stream_index_to_item(i) for i in range(start, start + self.batch_size)]

    def epoch_of_step(self, step: int) -> float:
        return step * self.grad_accum * self.world_size * self.batch_size / self.n_items


def steps_for_epochs(n_items: int, epochs: float, batch_size: int, grad_accum: int, world_size: int) -> int:
    per_step = batch_size * grad_accum * world_size
    return max(1, -(-round(epochs * n_items) // per_step))
