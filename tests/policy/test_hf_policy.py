"""The HF policy on the real embedded SmolLM2 (one session-wide model load via `embedded_policy`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from treeplay.policy.hf import HFPolicy
from treeplay.policy.models import SMOLLM2_SHA256, cache_root
from treeplay.policy.prompting import decode_tokens, encode_continuation, encode_prompt, render_prompt
from treeplay.policy.records import SampleRequest, SamplingParams, ScoreRequest
from treeplay.tasks.records import Task

pytestmark = pytest.mark.slow

PY_TASK = Task(
    id="py-sum",
    language="py",
    cwe=(),
    instruction="Write a function that returns the sum of a list of numbers.",
    prefix="def total(xs):\n",
)
C_TASK = Task(
    id="c-copy",
    language="c",
    cwe=("CWE-787",),
    instruction="Copy a string into a buffer of size n.",
    prefix="#include <string.h>\n\nvoid copy(char *dst, const char *src, size_t n) {\n",
)


def request(task: Task, *, n: int = 2, seed: int = 0, temperature: float = 1.3, max_new: int = 8) -> SampleRequest:
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=max_new, seed=seed)
    return SampleRequest(task=task, prefix=task.prefix, n=n, params=params, request_id=f"{task.id}-{seed}")


@pytest.fixture(scope="module")
def samples(embedded_policy: Any) -> list[Any]:
    return embedded_policy.sample([request(PY_TASK, seed=1), request(C_TASK, seed=1)])


def test_embedded_loader_converted_once_with_verified_sha(embedded_policy: Any) -> None:
    marker = cache_root() / "smollm2-135m-instruct" / "treeplay-source.json"
    info = json.loads(marker.read_text())
    assert info["sha256"] == SMOLLM2_SHA256
    assert (marker.parent / "model.safetensors").is_file()
    n_params = sum(p.numel() for p in embedded_policy.model.parameters())
    assert 120e6 < n_params < 150e6
    assert embedded_policy.prompt_format.kind == "chat"


def test_chat_prompt_uses_model_template_and_ends_with_prefix(embedded_policy: Any) -> None:
    tok, fmt = embedded_policy.tokenizer, embedded_policy.prompt_format
    text = render_prompt(tok, fmt, PY_TASK.instruction, "py", PY_TASK.prefix)
    assert text.startswith("<|im_start|>")  # SmolLM2's own ChatML template, not a hard-coded [INST]
    assert "[INST]" not in text
    assert text.endswith("<|im_start|>assistant\n```python\n" + PY_TASK.prefix)
    ids = encode_prompt(tok, fmt, PY_TASK.instruction, "py", PY_TASK.prefix)
    assert decode_tokens(tok, ids) == text
    assert encode_continuation(tok, "    return 1\n") == tok.encode("    return 1\n", add_special_tokens=False)


def test_completion_shapes_text_and_finish_reasons(embedded_policy: Any, samples: list[Any]) -> None:
    assert [(c.request_id, c.index) for c in samples] == [("py-sum-1", 0), ("py-sum-1", 1), ("c-copy-1", 0), ("c-copy-1", 1)]
    for c in samples:
        assert len(c.token_ids) == len(c.logprobs) <= 8
        assert all(lp <= 0.0 for lp in c.logprobs)
        assert c.text == decode_tokens(embedded_policy.tokenizer, c.token_ids)
        assert c.finish_reason in ("stop", "length")
        assert c.finish_reason == "stop" or len(c.token_ids) == 8
        assert c.prompt_token_count > 20


def test_logprobs_are_raw_model_logprobs(embedded_policy: Any, samples: list[Any]) -> None:
    """Sampled at temperature 1.3 / top-p 0.95, but recorded log-probs are the unprocessed ones."""
    c = next(c for c in samples if c.token_ids)
    task = PY_TASK if c.request_id.startswith("py") else C_TASK
    prompt = embedded_policy.prompt_ids(task.instruction, task.language, task.prefix)
    ids = torch.tensor([prompt + list(c.token_ids)])
    with torch.inference_mode():
        logits = embedded_policy.model(input_ids=ids).logits[0].float()
    raw = torch.log_softmax(logits, dim=-1)
    expected = [float(raw[len(prompt) - 1 + i, t]) for i, t in enumerate(c.token_ids)]
    assert c.logprobs == pytest.approx(expected, abs=2e-3)


def test_deterministic_under_seed_and_independent_of_batching(embedded_policy: Any, samples: list[Any]) -> None:
    again = embedded_policy.sample([request(C_TASK, seed=1)])  # alone, not batched with the py request
    assert [c.token_ids for c in again] == [c.token_ids for c in samples[2:]]
    other = embedded_policy.sample([request(C_TASK, seed=2)])
    assert [c.token_ids for c in other] != [c.token_ids for c in samples[2:]]


def test_prefix_reuse_matches_separate_prefills(embedded_policy: Any) -> None:
    greedy = [request(PY_TASK, n=2, temperature=0.0, max_new=6), request(C_TASK, n=1, temperature=0.0, max_new=6)]
    shared = embedded_policy.sample(greedy)
    separate = HFPolicy(
        embedded_policy.model, embedded_policy.tokenizer, embedded_policy.prompt_format, "embedded", reuse_prefix=False
    ).sample(greedy)
    assert [c.token_ids for c in shared] == [c.token_ids for c in separate]
    assert shared[0].token_ids == shared[1].token_ids  # greedy branches of one prefix agree
    for a, b in zip(shared, separate, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)


def test_score_returns_logprobs_entropies_and_offsets(embedded_policy: Any) -> None:
    continuation = "    return sum(xs)\n"
    scored, empty = embedded_policy.score(
        [ScoreRequest(PY_TASK, PY_TASK.prefix, continuation, "s1"), ScoreRequest(C_TASK, C_TASK.prefix, "", "s2")]
    )
    ids = encode_continuation(embedded_policy.tokenizer, continuation)
    assert list(scored.token_ids) == ids
    assert len(scored.logprobs) == len(scored.entropies) == len(scored.char_offsets) == len(ids)
    assert all(lp <= 0 for lp in scored.logprobs) and all(h >= 0 for h in scored.entropies)
    assert scored.char_offsets[0] == 0 and list(scored.char_offsets) == sorted(scored.char_offsets)
    # same numbers as a plain forward over prompt + continuation
    prompt = embedded_policy.prompt_ids(PY_TASK.instruction, "py", PY_TASK.prefix)
    with torch.inference_mode():
        logits = embedded_policy.model(input_ids=torch.tensor([prompt + ids])).logits[0].float()
    raw = torch.log_softmax(logits, dim=-1)
    assert scored.logprobs == pytest.approx([float(raw[len(prompt) - 1 + i, t]) for i, t in enumerate(ids)], abs=2e-3)
    assert empty.token_ids == () and empty.logprobs == ()
