"""vLLM adapter request/response mapping, tested without vLLM installed."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from treeplay.policy.records import SampleRequest, SamplingParams, ScoreRequest
from treeplay.policy.stoprules import StopRule
from treeplay.policy.vllm_backend import (
    completion_from_vllm,
    scored_from_prompt_logprobs,
    vllm_engine_kwargs,
    vllm_sampling_kwargs,
)
from treeplay.tasks.records import Task

TASK = Task(id="t", language="c", cwe=(), instruction="x", prefix="int f(int a) {\n")
# a toy character-level vocabulary so decode is exact and readable
VOCAB = {1: "  ", 2: "return a;", 3: "\n", 4: "}", 5: "\nint", 6: " g() {}"}


def decode(ids: list[int] | tuple[int, ...]) -> str:
    return "".join(VOCAB[i] for i in ids)


def lp(value: float) -> SimpleNamespace:
    return SimpleNamespace(logprob=value, rank=1)


def test_sampling_kwargs_map_params_and_fence_stop() -> None:
    params = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=33, stop=("# end",), seed=5)
    kw = vllm_sampling_kwargs(params, 4, fence_stop=True)
    assert kw["n"] == 4 and kw["max_tokens"] == 33 and kw["seed"] == 5 and kw["top_p"] == 0.9
    assert kw["stop"] == ["# end", "\n```"]
    assert kw["logprobs"] == 0
    greedy = vllm_sampling_kwargs(SamplingParams(temperature=0.0), 1, fence_stop=False)
    assert greedy["temperature"] == 0.0 and greedy["top_p"] == 1.0 and greedy["stop"] == []


def test_engine_kwargs_enable_prefix_caching_raw_logprobs_and_lora() -> None:
    kw = vllm_engine_kwargs("/m", tensor_parallel_size=4, enable_lora=True, max_lora_rank=16)
    assert kw["enable_prefix_caching"] is True
    assert kw["logprobs_mode"] == "raw_logprobs"
    assert kw["tensor_parallel_size"] == 4 and kw["enable_lora"] and kw["max_lora_rank"] == 16
    assert "enable_lora" not in vllm_engine_kwargs("/m")


def test_completion_mapping_applies_brace_stop_rule_and_cuts_logprobs() -> None:
    request = SampleRequest(TASK, TASK.prefix, n=1, params=SamplingParams(max_new_tokens=6), request_id="r")
    ids = [1, 2, 3, 4, 5, 6]
    output = SimpleNamespace(
        index=0, token_ids=ids, finish_reason="length",
        logprobs=[{t: lp(-0.1 * (i + 1)), 99: lp(-9.0)} for i, t in enumerate(ids)],
    )
    c = completion_from_vllm(request, 0, output, prompt_token_count=10, decode=decode, stop_rule=StopRule("c", TASK.prefix))
    assert c.text == "  return a;\n}"
    assert c.token_ids == (1, 2, 3, 4)
    assert c.logprobs == pytest.approx((-0.1, -0.2, -0.3, -0.4))
    assert c.finish_reason == "stop" and c.prompt_token_count == 10 and c.request_id == "r"


def test_completion_mapping_rejects_missing_sampled_logprob() -> None:
    request = SampleRequest(TASK, TASK.prefix, request_id="r")
    output = SimpleNamespace(index=0, token_ids=[1], finish_reason="stop", logprobs=[{2: lp(-1.0)}])
    with pytest.raises(ValueError, match="sampled token 1"):
        completion_from_vllm(request, 0, output, prompt_token_count=1, decode=decode, stop_rule=StopRule("c", ""))


def test_score_mapping_takes_continuation_slice_of_prompt_logprobs() -> None:
    request = ScoreRequest(TASK, TASK.prefix, "  return a;", "s")
    prompt_logprobs = [None, {7: lp(-1.0)}, {1: lp(-0.5)}, {2: lp(-0.25)}]
    scored = scored_from_prompt_logprobs(request, 2, [1, 2], [0, 2], prompt_logprobs)
    assert scored.token_ids == (1, 2) and scored.logprobs == (-0.5, -0.25) and scored.char_offsets == (0, 2)
    with pytest.raises(ValueError, match="wrong length"):
        scored_from_prompt_logprobs(request, 3, [1, 2], [0, 2], prompt_logprobs)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_backend_without_vllm_gives_install_hint() -> None:
    from treeplay.policy import load_policy

    with pytest.raises(RuntimeError, match=r"\[gpu\] extra"):
        load_policy("embedded", backend="vllm")
