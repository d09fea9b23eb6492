"""llama.cpp backend (`xllamacpp`): the default sampling engine for embedded GGUF models on CPU.

One long-lived in-process llama.cpp server per process (`xllamacpp.Server`) with `n_parallel`
slots and continuous batching; requests are sent from a thread pool so the slots fill up.
- Prompts are rendered and tokenised in Python with the model's HF tokenizer (`encode_prompt`), the
  same ids the trainer scores, and sent as token ids; the completion continues the code prefix.
- Sampling is plain temperature + top-p (llama.cpp's default top-k 40 and min-p 0.05 are switched
  off), seeded per branch with the same `row_seed` as the torch backend.
- `logprob` per generated token comes from llama.cpp's `n_probs` output, which (with
  `post_sampling_probs` off) is the log-softmax of the raw logits: the contract of `Completion`.
- Stop rules: only the closing fence ``` is sent as a stop string (the engine stops early); the
  request's stop strings and the language stop rule (`StopRule`) cut the decoded text afterwards
  and `cut_tokens` maps the cut onto a token boundary, exactly as in the torch backend (llama.cpp
  drops held-back tokens that partially match a stop string; see `_payload`).
- Early stop (`EngineConfig.early_stop`, on by default): tokens are streamed and the engine is told
  to stop a request once the stop rule has settled where every branch ends (`treeplay.policy.
  streaming`); the completions are those of the whole response, without the tokens after the cut.
- Slots keep their KV cache (`cache_prompt`), so branches from one node reuse the node's prefix.
- LoRA: trained adapters (a chain, see `treeplay.policy.models.model_chain`) are exported once to
  GGUF (`treeplay.policy.lora_gguf`) and loaded at start-up with scale 1.
- `score` (log-probs of a given continuation) needs every position's logits, which the server API
  does not return: it is delegated to the torch backend over the same weights, loaded on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treeplay.policy.config import PolicyConfig
from treeplay.policy.hf import EXTRA_EOS_TOKENS, row_seed
from treeplay.policy.prompting import PromptFormat, decode_tokens, encode_prompt
from treeplay.policy.records import Completion, SampleRequest, Scored, ScoreRequest
from treeplay.policy.stoprules import StopRule, cut_tokens, token_ends
from treeplay.policy.streaming import StreamCollector

ENGINE_STOP = "```"  # the one stop string the engine itself sees (see `_payload`)


class EngineError(RuntimeError):
    """The engine failed on a request; the message names the request (task id)."""


@dataclass(frozen=True)
class EngineConfig:
    """Start-up options of the llama.cpp engine."""

    threads: int = 2  # CPU threads for decode and prompt processing
    n_parallel: int = PolicyConfig.n_parallel  # slots decoded together (continuous batching); help in PolicyConfig
    ctx_per_slot: int = 2048  # tokens of context per slot (prompt + completion)
    branch_mode: str = "requests"  # "requests": one request per branch; "n": one request with n children
    early_stop: bool = PolicyConfig.early_stop  # stream and stop once the stop rule has settled; help in PolicyConfig

    def __post_init__(self) -> None:
        if self.threads < 1 or self.n_parallel < 1 or self.ctx_per_slot < 64:
            raise ValueError(f"EngineConfig: threads and n_parallel must be >= 1 and ctx_per_slot >= 64, got {self}")
        if self.branch_mode not in ("requests", "n"):
            raise ValueError(f"EngineConfig.branch_mode must be 'requests' or 'n', got {self.branch_mode!r}")


def start_server(gguf: Path, adapters: Sequence[Path], config: EngineConfig) -> Any:
    """A started `xllamacpp.Server` for `gguf` with `adapters` applied at scale 1."""
    try:
        import xllamacpp as xlc
    except ImportError:
        raise EngineError(
            "the llama.cpp backend needs the `xllamacpp` package (installed by scripts/install.sh); "
            "or pass --backend hf"
        ) from None
    params = xlc.CommonParams()
    params.model.path = str(gguf)
    params.cpuparams.n_threads = config.threads
    params.cpuparams_batch.n_threads = config.threads
    params.n_parallel = config.n_parallel
    params.n_ctx = config.ctx_per_slot * config.n_parallel
    params.warmup = False
    params.verbosity = -1
    loras = []
    for path in adapters:
        info = xlc.CommonAdapterLoraInfo()
        info.path = str(path)
        info.scale = 1.0
        loras.append(info)
    params.lora_adapters = loras
    return xlc.Server(params)


@dataclass
class _Job:
    """One engine request: a request's branches `indices` (all of them in "n" mode)."""

    request_index: int
    indices: tuple[int, ...]
    prompt: list[int]
    seed: int


class LlamaCppPolicy:
    """`Policy` over a GGUF model (plus LoRA adapters) served by an in-process llama.cpp."""

    def __init__(
        self,
        gguf: Path,
        tokenizer: Any,
        prompt_format: PromptFormat,
        model_id: str,
        *,
        adapters: Sequence[Path] = (),
        config: EngineConfig | None = None,
        scorer: Callable[[], Any] | None = None,
        stop_rules: bool = True,
    ) -> None:
        self.config = config or EngineConfig()
        self.gguf = gguf
        self.tokenizer = tokenizer
        self.prompt_format = prompt_format
        self.model_id = model_id
        self.adapters = tuple(adapters)
        self.stop_rules = stop_rules
        self._make_scorer = scorer
        self._scorer: Any = None
        self._lock = threading.Lock()
        self.eos_ids = frozenset(
            int(i) for i in [tokenizer.eos_token_id, *(tokenizer.get_vocab().get(t) for t in EXTRA_EOS_TOKENS)]
            if i is not None
        )
        self._stop_word_tokens = len(tokenizer.encode(ENGINE_STOP, add_special_tokens=False))
        self.server = start_server(gguf, self.adapters, self.config)
        self.counts: dict[str, int] = {"requests": 0, "generated_tokens": 0, "prompt_tokens": 0, "cached_tokens": 0}

    # ------------------------------------------------------------------ sampling

    def prompt_ids(self, instruction: str, language: str, prefix: str) -> list[int]:
        return encode_prompt(self.tokenizer, self.prompt_format, instruction, language, prefix)

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        """Sample `n` continuations per request; results ordered by request then index."""
        jobs = [job for r_index, request in enumerate(requests) for job in self._jobs(r_index, request)]
        results: dict[tuple[int, int], Completion] = {}
        workers = max(1, min(len(jobs), self.config.n_parallel))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for job, choices in zip(jobs, pool.map(lambda j: self._run(j, requests), jobs), strict=True):
                request = requests[job.request_index]
                for index, choice in zip(job.indices, choices, strict=True):
                    results[(job.request_index, index)] = self._to_completion(request, index, job.prompt, choice)
        return [results[(r, i)] for r, request in enumerate(requests) for i in range(request.n)]

    def _jobs(self, r_index: int, request: SampleRequest) -> list[_Job]:
        rid = request.request_id or f"{request.task.id}#{r_index}"
        if request.n < 1:
            raise ValueError(f"request {rid}: n must be >= 1, got {request.n}")
        if request.params.max_new_tokens < 1:
            raise ValueError(f"request {rid}: max_new_tokens must be >= 1, got {request.params.max_new_tokens}")
        ids = self.prompt_ids(request.task.instruction, request.task.language, request.prefix)
        total = len(ids) + request.params.max_new_tokens
        if total > self.config.ctx_per_slot:
            raise EngineError(
                f"request {rid} (task {request.task.id}): prompt {len(ids)} + max_new_tokens "
                f"{request.params.max_new_tokens} = {total} tokens exceeds the engine's {self.config.ctx_per_slot} "
                "tokens per slot (raise ctx_per_slot)"
            )
        if self.config.branch_mode == "n":
            return [_Job(r_index, tuple(range(request.n)), ids, row_seed(request.params.seed, 0))]
        return [_Job(r_index, (i,), ids, row_seed(request.params.seed, i)) for i in range(request.n)]

    def _payload(self, job: _Job, request: SampleRequest) -> dict[str, Any]:
        params = request.params
        # The request's own stop strings are NOT sent to the engine: llama.cpp holds back a token
        # whose text ends in a prefix of a stop string ("])\n" for HumanEval's "\ndef ") and drops
        # it when another stop ends the generation, which cut the last line of 39 of 164 HumanEval
        # programs (measured 2026-11-26, docs/policy.md). StopRule applies them after decoding.
        # Only the fence goes to the engine, alone: a stop of "\n```" would drop ")\n" likewise.
        stops = [ENGINE_STOP] if self.engine_stops_at_fence else []
        return {
            "prompt": job.prompt,
            "n": len(job.indices),
            "n_predict": params.max_new_tokens,
            "temperature": max(0.0, params.temperature),
            "top_p": min(params.top_p, 1.0),
            "top_k": 0,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
            "seed": job.seed % (2**32 - 1),
            "n_probs": 1,
            "cache_prompt": True,
            "stop": stops,
        }

    @property
    def engine_stops_at_fence(self) -> bool:
        return self.stop_rules and self.prompt_format.closes_with_fence

    def _rule(self, request: SampleRequest) -> StopRule:
        return StopRule(
            request.task.language if self.stop_rules else "", request.prefix,
            stop_strings=request.params.stop, fences=self.stop_rules,
        )

    def _complete(self, job: _Job, request: SampleRequest) -> Any:
        """The engine's response to `job`: streamed and stopped early when a stop rule applies."""
        payload = self._payload(job, request)
        rule = self._rule(request)
        if not self.config.early_stop or rule.is_noop:
            return self.server.handle_completions(payload)
        collector = StreamCollector(
            len(job.indices), rule, lambda ids: decode_tokens(self.tokenizer, ids),
            stop_word=ENGINE_STOP if self.engine_stops_at_fence else None, stop_word_tokens=self._stop_word_tokens,
        )
        self.server.handle_completions({**payload, "stream": True, "timings_per_token": True}, collector)
        return {"error": collector.error} if collector.error is not None else collector.response()

    def _run(self, job: _Job, requests: Sequence[SampleRequest]) -> list[dict[str, Any]]:
        request = requests[job.request_index]
        try:
            response = self._complete(job, request)
        except Exception as exc:  # the binding raises on engine faults
            raise EngineError(f"llama.cpp failed on task {request.task.id} ({request.request_id}): {exc}") from exc
        if not isinstance(response, dict) or "error" in response:
            message = response.get("error") if isinstance(response, dict) else response
            raise EngineError(f"llama.cpp failed on task {request.task.id} ({request.request_id}): {message}")
        choices = sorted(response.get("choices", []), key=lambda c: int(c.get("index", 0)))
        if len(choices) != len(job.indices):
            raise EngineError(f"llama.cpp returned {len(choices)} of {len(job.indices)} choices for task {request.task.id}")
        usage = response.get("usage", {})
        with self._lock:
            self.counts["requests"] += 1
            self.counts["prompt_tokens"] += int(usage.get("prompt_tokens", 0))
            self.counts["cached_tokens"] += int(usage.get("prompt_tokens_details", {}).get("cached_tokens", 0) or 0)
        return choices

    def _to_completion(self, request: SampleRequest, index: int, prompt: list[int], choice: dict[str, Any]) -> Completion:
        content = (choice.get("logprobs") or {}).get("content") or []
        ids = [int(t["id"]) for t in content]
        logprobs = [float(t["logprob"]) for t in content]
        finish = "stop" if choice.get("finish_reason") == "stop" else "length"
        if ids and ids[-1] in self.eos_ids:
            ids, logprobs, finish = ids[:-1], logprobs[:-1], "stop"
        rule = self._rule(request)
        cut = None if rule.is_noop else rule.find(decode_tokens(self.tokenizer, ids))
        if cut is not None:
            keep = cut_tokens([decode_tokens(self.tokenizer, ids[:k]) for k in range(len(ids) + 1)], cut)
            ids, logprobs, finish = ids[:keep], logprobs[:keep], "stop"
        with self._lock:
            self.counts["generated_tokens"] += len(content)
        return Completion(
            request_id=request.request_id,
            index=index,
            text=decode_tokens(self.tokenizer, ids),
            token_ids=tuple(ids),
            logprobs=tuple(logprobs),
            finish_reason=finish,
            prompt_token_count=len(prompt),
            token_ends=token_ends(lambda part: decode_tokens(self.tokenizer, part), ids),
        )

    # ------------------------------------------------------------------ scoring

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        """Raw log-probs of given continuations, from the torch backend over the same weights."""
        if self._scorer is None:
            if self._make_scorer is None:
                raise EngineError("this llama.cpp policy has no scorer (score needs the torch model)")
            self._scorer = self._make_scorer()
        return list(self._scorer.score(requests))


def default_threads() -> int:
    """Engine threads when none are configured: `$TREEPLAY_THREADS`, else all cores."""
    env = os.environ.get("TREEPLAY_THREADS")
    return int(env) if env else max(1, os.cpu_count() or 1)
