"""Hugging Face backend: a `Policy` over any causal LM, with shared-prefix branch sampling.

Sampling loop (our own, not `generate`, because we need raw log-probs and per-row stop rules):
1. Every request's prompt is rendered (`encode_prompt`); identical prompts share one row.
2. One left-padded prefill per batch of *unique* prompts with ``logits_to_keep=1``.
3. The KV cache, attention mask and last logits are expanded to one row per branch
   (``cache.batch_select_indices``), so n branches cost one prefill, not n.
4. Decode step by step for all branches of all requests in the batch; each row samples with its
   own seeded generator (deterministic under `SamplingParams.seed`), records the raw log-prob
   (log-softmax of the unprocessed logits) of its token, and stops on EOS, its stop rule or its
   token budget. Finished rows are dropped from the cache.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from treeplay.policy.prompting import PromptFormat, decode_tokens, encode_prompt
from treeplay.policy.records import Completion, SampleRequest, SamplingParams, Scored, ScoreRequest
from treeplay.policy.stoprules import StopRule, cut_tokens, token_ends

EXTRA_EOS_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<|end_of_text|>")


def row_seed(seed: int, index: int) -> int:
    """Seed of branch `index` of a request with seed `seed` (stable, independent of batching)."""
    return (seed * 1_000_003 + index * 7_919 + 12_345) % (2**63 - 1)


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero out the tail of `probs` (1-D) beyond cumulative mass `top_p`, renormalised."""
    if top_p >= 1.0:
        return probs
    sorted_probs, order = torch.sort(probs, descending=True)
    cumulative = torch.cumsum(sorted_probs, dim=-1)
    keep = cumulative - sorted_probs < top_p  # always keeps the first token
    filtered = torch.zeros_like(probs)
    filtered[order[keep]] = sorted_probs[keep]
    return filtered / filtered.sum()


def nucleus_candidates(probs: torch.Tensor, top_p: torch.Tensor, k: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row (B, V): (candidate probs, candidate ids), sorted, with the tail beyond `top_p` zeroed.

    Exact top-p: a top-k shortlist is used when its mass already reaches top_p in every row
    (almost always), otherwise the full vocabulary is sorted.
    """
    k = min(k, probs.shape[-1])
    values, ids = torch.topk(probs, k, dim=-1)
    if not bool((values.sum(-1) >= top_p).all()):
        values, ids = torch.sort(probs, dim=-1, descending=True)
    cumulative = torch.cumsum(values, dim=-1)
    keep = (cumulative - values) < top_p.unsqueeze(-1)  # always keeps the first token
    return values * keep, ids


def select_tokens(logits: torch.Tensor, params: Sequence[SamplingParams], generators: Sequence[torch.Generator]) -> list[int]:
    """One token per row of raw `logits` (B, V): argmax for temperature <= 0, else temperature +
    exact top-p sampling with the row's own generator (so a row's draw does not depend on the batch)."""
    chosen = torch.argmax(logits, dim=-1).tolist()
    sampled = [i for i, p in enumerate(params) if p.temperature > 0]
    if not sampled:
        return [int(t) for t in chosen]
    index = torch.tensor(sampled, device=logits.device)
    temps = torch.tensor([params[i].temperature for i in sampled], device=logits.device).unsqueeze(-1)
    top_p = torch.tensor([min(params[i].top_p, 1.0) for i in sampled], device=logits.device)
    probs = torch.softmax(logits[index].float() / temps, dim=-1)
    cand_probs, cand_ids = nucleus_candidates(probs, top_p)
    cand_probs, cand_ids = cand_probs.cpu(), cand_ids.cpu()
    for row, i in enumerate(sampled):
        pick = torch.multinomial(cand_probs[row], 1, generator=generators[i])
        chosen[i] = int(cand_ids[row, pick])
    return [int(t) for t in chosen]


@dataclass
class _Row:
    """One branch being generated."""

    request_index: int
    index: int
    prompt_index: int
    params: SamplingParams
    stop_rule: StopRule
    generator: torch.Generator
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = ""
    cut: int | None = None  # character cut found by the stop rule


class HFPolicy:
    """`Policy` backed by a transformers causal LM (CPU or CUDA)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompt_format: PromptFormat,
        model_id: str,
        *,
        max_batch_rows: int = 64,
        reuse_prefix: bool = True,
        stop_rules: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.model_id = model_id
        self.max_batch_rows = max_batch_rows
        self.reuse_prefix = reuse_prefix
        self.stop_rules = stop_rules
        # Wall-clock seconds per phase, accumulated over calls (see benchmarks/branch_sampling.py).
        self.timings: dict[str, float] = {"prefill": 0.0, "expand": 0.0, "decode_forward": 0.0, "select_and_stop": 0.0}
        self.counts: dict[str, int] = {"prefill_tokens": 0, "decode_steps": 0, "generated_tokens": 0}
        self.eos_ids = self._eos_ids()
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)

    # ------------------------------------------------------------------ helpers

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, list | tuple):
            ids.update(int(i) for i in gen_eos)
        vocab = self.tokenizer.get_vocab()
        for token in EXTRA_EOS_TOKENS:
            if token in vocab:
                ids.add(int(vocab[token]))
        return frozenset(ids)

    def prompt_ids(self, instruction: str, language: str, prefix: str) -> list[int]:
        return encode_prompt(self.tokenizer, self.prompt_format, instruction, language, prefix)

    def _decode(self, ids: Sequence[int]) -> str:
        return decode_tokens(self.tokenizer, list(ids))

    # ------------------------------------------------------------------ sampling

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        """Sample `n` continuations per request; results ordered by request then index."""
        prompts: list[list[int]] = []
        prompt_of: dict[tuple[int, ...], int] = {}
        rows: list[_Row] = []
        for r_index, request in enumerate(requests):
            if request.n < 1:
                raise ValueError(f"request {request.request_id or r_index}: n must be >= 1, got {request.n}")
            if request.params.max_new_tokens < 1:
                raise ValueError(
                    f"request {request.request_id or r_index}: max_new_tokens must be >= 1, "
                    f"got {request.params.max_new_tokens}"
                )
            ids = self.prompt_ids(request.task.instruction, request.task.language, request.prefix)
            self._check_length(len(ids) + request.params.max_new_tokens, request.request_id or str(r_index))
            key = tuple(ids)
            if key not in prompt_of or not self.reuse_prefix:
                prompt_of[key] = len(prompts)
                prompts.append(ids)
            for index in range(request.n):
                if not self.reuse_prefix and index > 0:
                    prompts.append(ids)
                    p_index = len(prompts) - 1
                else:
                    p_index = prompt_of[key]
                rows.append(
                    _Row(
                        request_index=r_index,
                        index=index,
                        prompt_index=p_index,
                        params=request.params,
                        stop_rule=StopRule(
                            request.task.language if self.stop_rules else "",
                            request.prefix,
                            stop_strings=request.params.stop,
                            fences=self.stop_rules,
                        ),
                        generator=torch.Generator().manual_seed(row_seed(request.params.seed, index)),
                    )
                )
        for start in range(0, len(rows), self.max_batch_rows):
            self._generate_chunk(rows[start : start + self.max_batch_rows], prompts)
        return [self._to_completion(row, requests, prompts) for row in rows]

    def _check_length(self, total: int, request_id: str) -> None:
        if self.max_positions and total > self.max_positions:
            raise ValueError(
                f"request {request_id}: prompt + max_new_tokens = {total} tokens exceeds the model's "
                f"context of {self.max_positions}"
            )

    @torch.inference_mode()
    def _prefill(self, prompt_list: list[list[int]]) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Left-padded prefill; returns (cache, attention mask, last-position logits)."""
        from transformers import DynamicCache

        device = self.device
        width = max(len(p) for p in prompt_list)
        pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        input_ids = torch.full((len(prompt_list), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_list), width), dtype=torch.long)
        for i, ids in enumerate(prompt_list):
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[i, width - len(ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.past_key_values, mask.to(device), out.logits[:, -1, :]

    @torch.inference_mode()
    def _generate_chunk(self, rows: list[_Row], prompts: list[list[int]]) -> None:
        unique = sorted({row.prompt_index for row in rows})
        local = {p: i for i, p in enumerate(unique)}
        tick = time.perf_counter()
        cache, mask, logits = self._prefill([prompts[p] for p in unique])
        self.counts["prefill_tokens"] += sum(len(prompts[p]) for p in unique)
        tock = time.perf_counter()
        self.timings["prefill"] += tock - tick
        select = torch.tensor([local[row.prompt_index] for row in rows], device=mask.device)
        if len(unique) != len(rows) or not torch.equal(select, torch.arange(len(rows), device=mask.device)):
            cache.batch_select_indices(select)
            mask = mask[select]
            logits = logits[select]
        positions = mask.sum(-1, keepdim=True)  # next position of each row
        active = list(range(len(rows)))
        self.timings["expand"] += time.perf_counter() - tock
        while active:
            tick = time.perf_counter()
            raw = torch.log_softmax(logits.float(), dim=-1)
            next_tokens: list[int] = []
            still: list[int] = []
            tokens = select_tokens(
                logits, [rows[i].params for i in active], [rows[i].generator for i in active]
            )
            for slot, row_index in enumerate(active):
                row = rows[row_index]
                token = tokens[slot]
                if token in self.eos_ids:
                    row.finish_reason = "stop"
                    continue
                row.token_ids.append(token)
                row.logprobs.append(float(raw[slot, token]))
                cut = None if row.stop_rule.is_noop else row.stop_rule.find(self._decode(row.token_ids))
                if cut is not None:
                    row.cut = cut
                    row.finish_reason = "stop"
                    continue
                if len(row.token_ids) >= row.params.max_new_tokens:
                    row.finish_reason = "length"
                    continue
                still.append(slot)
                next_tokens.append(token)
            self.counts["generated_tokens"] += len(active)
            self.timings["select_and_stop"] += time.perf_counter() - tick
            if not still:
                break
            tick = time.perf_counter()
            if len(still) != len(active):
                keep = torch.tensor(still, device=mask.device)
                cache.batch_select_indices(keep)
                mask = mask[keep]
                positions = positions[keep]
            active = [active[slot] for slot in still]
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=mask.device)], dim=-1)
            out = self.model(
                input_ids=torch.tensor(next_tokens, dtype=torch.long, device=mask.device).unsqueeze(-1),
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
            positions = positions + 1
            self.counts["decode_steps"] += 1
            self.timings["decode_forward"] += time.perf_counter() - tick

    def _to_completion(self, row: _Row, requests: list[SampleRequest], prompts: list[list[int]]) -> Completion:
        ids, logprobs = row.token_ids, row.logprobs
        if row.cut is not None:
            decoded = [self._decode(ids[:k]) for k in range(len(ids) + 1)]
            keep = cut_tokens(decoded, row.cut)
            ids, logprobs = ids[:keep], logprobs[:keep]
        request = requests[row.request_index]
        return Completion(
            request_id=request.request_id,
            index=row.index,
            text=self._decode(ids),
            token_ids=tuple(ids),
            logprobs=tuple(logprobs),
            finish_reason=row.finish_reason or "length",
            prompt_token_count=len(prompts[row.prompt_index]),
            token_ends=token_ends(self._decode, ids),
        )

    # ------------------------------------------------------------------ scoring

    @torch.inference_mode()
    def score(self, requests: list[ScoreRequest], batch_size: int = 8) -> list[Scored]:
        """Raw log-probs, entropies and char offsets of each continuation after its prompt."""
        results: list[Scored] = []
        for start in range(0, len(requests), batch_size):
            results.extend(self._score_batch(requests[start : start + batch_size]))
        return results

    def _score_batch(self, requests: Sequence[ScoreRequest]) -> list[Scored]:
        encoded = []
        for request in requests:
            prompt = self.prompt_ids(request.task.instruction, request.task.language, request.prefix)
            enc = self.tokenizer(request.continuation, add_special_tokens=False, return_offsets_mapping=True)
            cont = list(enc["input_ids"])
            offsets = tuple(int(start) for start, _ in enc["offset_mapping"])
            self._check_length(len(prompt) + len(cont), request.request_id)
            encoded.append((prompt, cont, offsets))
        widest = max(len(p) + len(c) for p, c, _ in encoded)
        keep = max(len(c) for _, c, _ in encoded) + 1
        pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)
        input_ids = torch.full((len(encoded), widest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), widest), dtype=torch.long)
        for i, (prompt, cont, _) in enumerate(encoded):
            ids = prompt + cont
            input_ids[i, widest - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[i, widest - len(ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.device
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=False,
            logits_to_keep=keep,
        )
        raw = torch.log_softmax(out.logits.float(), dim=-1)  # (B, keep, V): positions widest-keep..widest-1
        results = []
        for i, (request, (_, cont, offsets)) in enumerate(zip(requests, encoded, strict=True)):
            if not cont:
                results.append(Scored(request.request_id, (), (), (), ()))
                continue
            # logits at position t predict token t+1; the continuation occupies the last len(cont) slots
            rows = raw[i, keep - len(cont) - 1 : keep - 1]
            target = torch.tensor(cont, device=rows.device)
            token_lp = rows.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            entropy = -(rows.exp() * rows).sum(-1)
            results.append(
                Scored(
                    request_id=request.request_id,
                    token_ids=tuple(cont),
                    logprobs=tuple(float(x) for x in token_lp),
                    entropies=tuple(float(x) for x in entropy),
                    char_offsets=offsets,
                )
            )
        return results


def tokens_per_second(completions: Sequence[Completion], seconds: float) -> float:
    total = sum(len(c.token_ids) for c in completions)
    return total / seconds if seconds > 0 else math.inf
