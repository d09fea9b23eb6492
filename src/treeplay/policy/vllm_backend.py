"""vLLM backend (GPU, extra `[gpu]`): a thin adapter behind the same `Policy` interface.

- Prefix caching (``enable_prefix_caching=True``) gives the shared-prefix reuse on GPU: the n
  branches of a request are one vLLM request with ``n`` samples, and requests sharing a prompt
  prefix hit the automatic prefix cache.
- Log-probs: ``SamplingParams(logprobs=0)`` returns the sampled token's log-prob; the engine is
  created with ``logprobs_mode="raw_logprobs"`` (log-softmax of the unprocessed logits, before
  temperature/top-p), the same quantity as the HF backend records.
- Language-aware stop rules cannot run inside vLLM; it stops on EOS / fence / user stop strings,
  and the same `StopRule` is applied to the returned text afterwards (token ids and log-probs are
  cut consistently with `cut_tokens`).
- LoRA adapters are applied per request with ``LoRARequest``.

Launch (not runnable on this CPU-only machine):

    pip install -e '.[gpu]'
    treeplay sample --backend vllm --model Qwen/Qwen2.5-Coder-7B-Instruct --tasks tasks.jsonl --n 8 --out s.jsonl
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from treeplay.policy.models import resolve_model_dir, resolve_prompt_format
from treeplay.policy.prompting import PromptFormat, decode_tokens, encode_prompt
from treeplay.policy.records import Completion, SampleRequest, SamplingParams, Scored, ScoreRequest
from treeplay.policy.stoprules import StopRule, cut_tokens, token_ends

INSTALL_HINT = "the vllm backend needs the [gpu] extra: pip install -e '.[gpu]' (CUDA machine)"


def import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None
    return vllm


def vllm_sampling_kwargs(params: SamplingParams, n: int, *, fence_stop: bool) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` equivalent to one of our requests."""
    stops = list(params.stop)
    if fence_stop:
        stops.append("\n```")
    return {
        "n": n,
        "temperature": max(params.temperature, 0.0),
        "top_p": params.top_p if params.temperature > 0 else 1.0,
        "max_tokens": params.max_new_tokens,
        "seed": params.seed,
        "stop": stops,
        "include_stop_str_in_output": False,
        "logprobs": 0,  # the sampled token's log-prob (raw, see module doc)
        "skip_special_tokens": True,
    }


def vllm_engine_kwargs(
    model_path: str,
    *,
    tensor_parallel_size: int = 1,
    dtype: str = "bfloat16",
    enable_lora: bool = False,
    max_lora_rank: int = 64,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``."""
    kw: dict[str, Any] = {
        "model": model_path,
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype,
        "enable_prefix_caching": True,
        "logprobs_mode": "raw_logprobs",
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
    }
    if enable_lora:
        kw.update(enable_lora=True, max_lora_rank=max_lora_rank)
    if max_model_len is not None:
        kw["max_model_len"] = max_model_len
    return kw


def sampled_logprobs(token_ids: Sequence[int], entries: Sequence[dict[int, Any]] | None) -> list[float]:
    """The sampled token's log-prob at each step from vLLM's per-step ``{token_id: Logprob}`` dicts."""
    if entries is None:
        raise ValueError("vLLM output has no logprobs; request SamplingParams(logprobs=0)")
    if len(entries) != len(token_ids):
        raise ValueError(f"vLLM returned {len(entries)} logprob entries for {len(token_ids)} tokens")
    out = []
    for step, (token, entry) in enumerate(zip(token_ids, entries, strict=True)):
        if token not in entry:
            raise ValueError(f"vLLM logprobs at step {step} do not include the sampled token {token}")
        value = entry[token]
        out.append(float(getattr(value, "logprob", value)))
    return out


def completion_from_vllm(
    request: SampleRequest,
    index: int,
    output: Any,
    *,
    prompt_token_count: int,
    decode: Callable[[Sequence[int]], str],
    stop_rule: StopRule,
) -> Completion:
    """Map one vLLM ``CompletionOutput`` to a `Completion`, applying our stop rule afterwards."""
    ids = list(output.token_ids)
    logprobs = sampled_logprobs(ids, output.logprobs)
    finish = "length" if output.finish_reason == "length" else "stop"
    cut = stop_rule.find(decode(ids))
    if cut is not None:
        keep = cut_tokens([decode(ids[:k]) for k in range(len(ids) + 1)], cut)
        ids, logprobs = ids[:keep], logprobs[:keep]
        finish = "stop"
    return Completion(
        request_id=request.request_id,
        index=index,
        text=decode(ids),
        token_ids=tuple(ids),
        logprobs=tuple(logprobs),
        finish_reason=finish,
        prompt_token_count=prompt_token_count,
        token_ends=token_ends(decode, ids),
    )


def scored_from_prompt_logprobs(
    request: ScoreRequest, prompt_len: int, continuation_ids: Sequence[int], offsets: Sequence[int], prompt_logprobs: Any
) -> Scored:
    """Map vLLM ``prompt_logprobs`` (one dict per prompt token, None first) for prompt+continuation."""
    if prompt_logprobs is None or len(prompt_logprobs) != prompt_len + len(continuation_ids):
        raise ValueError("vLLM prompt_logprobs missing or of the wrong length; request prompt_logprobs=0")
    entries = prompt_logprobs[prompt_len:]
    return Scored(
        request_id=request.request_id,
        token_ids=tuple(continuation_ids),
        logprobs=tuple(sampled_logprobs(continuation_ids, entries)),
        entropies=(),  # vLLM returns top-k only, not the full distribution
        char_offsets=tuple(offsets),
    )


class VLLMPolicy:
    """`Policy` on a vLLM engine."""

    def __init__(self, llm: Any, tokenizer: Any, prompt_format: PromptFormat, model_id: str, lora: Any = None) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.model_id = model_id
        self.lora = lora

    @classmethod
    def from_model(
        cls,
        model: str,
        *,
        adapter: str | None = None,
        tensor_parallel_size: int = 1,
        dtype: str = "bfloat16",
        **engine_kw: Any,
    ) -> VLLMPolicy:
        vllm = import_vllm()
        path, default_fmt = resolve_model_dir(model)
        kw = vllm_engine_kwargs(
            path, tensor_parallel_size=tensor_parallel_size, dtype=dtype, enable_lora=adapter is not None, **engine_kw
        )
        llm = vllm.LLM(**kw)
        tokenizer = llm.get_tokenizer()
        lora = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("treeplay-adapter", 1, adapter)
        return cls(llm, tokenizer, resolve_prompt_format(model, tokenizer, default_fmt), model, lora)

    def _prompt(self, task: Any, prefix: str) -> list[int]:
        return encode_prompt(self.tokenizer, self.prompt_format, task.instruction, task.language, prefix)

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        vllm = import_vllm()
        prompts = [self._prompt(r.task, r.prefix) for r in requests]
        params = [
            vllm.SamplingParams(**vllm_sampling_kwargs(r.params, r.n, fence_stop=self.prompt_format.closes_with_fence))
            for r in requests
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": p} for p in prompts], sampling_params=params, lora_request=self.lora, use_tqdm=False
        )
        completions = []
        for request, prompt, result in zip(requests, prompts, outputs, strict=True):
            rule = StopRule(request.task.language, request.prefix, stop_strings=request.params.stop)
            for index, output in enumerate(sorted(result.outputs, key=lambda o: o.index)):
                completions.append(
                    completion_from_vllm(
                        request, index, output, prompt_token_count=len(prompt),
                        decode=lambda ids: decode_tokens(self.tokenizer, ids), stop_rule=rule,
                    )
                )
        return completions

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        vllm = import_vllm()
        items = []
        for r in requests:
            prompt = self._prompt(r.task, r.prefix)
            enc = self.tokenizer(r.continuation, add_special_tokens=False, return_offsets_mapping=True)
            items.append((prompt, list(enc["input_ids"]), [int(s) for s, _ in enc["offset_mapping"]]))
        params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate(
            [{"prompt_token_ids": p + c} for p, c, _ in items], sampling_params=params, lora_request=self.lora,
            use_tqdm=False,
        )
        return [
            scored_from_prompt_logprobs(r, len(p), c, o, out.prompt_logprobs)
            for r, (p, c, o), out in zip(requests, items, outputs, strict=True)
        ]
