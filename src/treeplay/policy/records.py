"""Records of the policy stage: sampling requests and completions.

Contract every backend keeps:
- A request continues the *code* `prefix` (task.prefix + golden[:offset]) for `task`; the backend
  renders the model prompt around it (chat template or plain completion, per model config) and
  the completion's text continues exactly after `prefix`, so `prefix + completion.text` is the
  branch program.
- `token_ids` are the generated tokens (after any stop truncation) and `logprobs[i]` is the
  log-probability of `token_ids[i]` under the model's *raw* distribution (log-softmax of the
  unprocessed logits, before temperature/top-p), so they can serve as DPO reference values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from treeplay.tasks.records import Task


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the one home of the sampling options (a stage with its own default, e.g. eval
    at T = 0.2, declares it with `treeplay.config_fields.inherit(SamplingParams, ...)`)."""

    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (0: greedy).", "ge": 0})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling: keep the smallest token set "
                                                         "holding this probability mass.", "gt": 0, "le": 1})
    max_new_tokens: int = field(default=128, metadata={"help": "Tokens generated at most per completion.", "ge": 1})
    stop: tuple[str, ...] = field(default=(), metadata={"help": "Extra stop strings (the completion ends before "
                                                                "them), besides the backend's stop rules."})
    seed: int = field(default=0, metadata={"help": "Sampling seed (per-request seeds are derived from it)."})


@dataclass(frozen=True)
class SampleRequest:
    task: Task
    prefix: str
    n: int = 1
    params: SamplingParams = field(default_factory=SamplingParams)
    request_id: str = ""


@dataclass(frozen=True)
class Completion:
    request_id: str
    index: int  # 0..n-1 within its request
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finish_reason: str  # "stop" (stop rule / EOS) or "length"
    prompt_token_count: int = 0
    # where each token ends in `text` (len(decode(token_ids[:k+1]))), -1 where a token ends inside a
    # character; lets a caller cut the completion on a token boundary without scoring it again
    # (`treeplay.tree.builder` trims budget-cut branches so). Empty: the backend gave none.
    token_ends: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScoreRequest:
    """Score a given continuation (e.g. the golden suffix) after `prefix`: one reference forward."""

    task: Task
    prefix: str
    continuation: str
    request_id: str = ""


@dataclass(frozen=True)
class Scored:
    request_id: str
    token_ids: tuple[int, ...]  # tokens of the continuation, as the model sees them after the prompt
    logprobs: tuple[float, ...]  # raw log-prob of each token given everything before it
    entropies: tuple[float, ...] = ()  # entropy (nats) of the raw next-token distribution at each token
    char_offsets: tuple[int, ...] = ()  # start of each token in `continuation` (token boundaries)


@runtime_checkable
class Policy(Protocol):
    """A model that samples and scores continuations of code prefixes."""

    model_id: str

    def sample(self, requests: list[SampleRequest]) -> list[Completion]: ...

    def score(self, requests: list[ScoreRequest]) -> list[Scored]: ...
