"""Early stop for the llama.cpp engine: stream a request's tokens and stop the engine as soon as
the stop rule (`StopRule`) has settled where every branch's code ends.

Without it the engine decodes up to `max_new_tokens` (or EOS, or the fence) and the stop rule cuts
the text afterwards: a trained model that goes on past its function (a second function, a test, an
explanation) costs every one of those tokens. `StreamCollector` is the stream's callback: it keeps
each branch's tokens exactly as the non-streamed response would list them, and returns True (stop)
once every branch has finished or has a *settled* cut.

A cut is settled when the line after it is complete (a newline follows the cut): from then on no
more text can move it. Python and Ruby decide a line by its first characters and the state of the
lines before it; a stop string or fence cannot appear earlier in text that only grows at the end;
a brace cut depends only on the text before it. So the completion cut from the streamed prefix is
the completion cut from the whole response (tests/policy/test_streaming.py checks this per rule,
tests/policy/test_llamacpp.py on the engine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treeplay.policy.stoprules import StopRule


class StreamCollector:
    """Callback of one streamed llama.cpp completion request with `n` branches.

    `decode(ids)` is the tokenizer's text of a token list. `stop_word` is the stop string sent to the
    engine (the fence "```", or None) and `stop_word_tokens` how many tokens it tokenises to: when it
    ended a branch, a non-streamed response leaves that many tokens out of its list (llama.cpp's
    server trims them), a streamed one has sent them, and `response()` trims them the same way.
    """

    def __init__(
        self, n: int, rule: StopRule, decode: Callable[[list[int]], str], *, stop_word: str | None,
        stop_word_tokens: int,
    ) -> None:  # fmt: skip
        self.n = n
        self.rule = rule
        self.decode = decode
        self.stop_word = stop_word
        self.stop_word_tokens = stop_word_tokens
        self.content: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.finish: dict[int, str] = {}
        self.settled: set[int] = set()
        self.usage: dict[str, Any] = {}
        self.error: Any = None
        self._newline: dict[int, bool] = {}

    def __call__(self, chunk: Any) -> bool:
        """Take one streamed chunk; True tells the engine to stop this request. An exception here
        would be swallowed by the binding (which then stops the stream), leaving a truncated
        response that looks whole: it is kept as the request's error instead."""
        try:
            return self._take_chunk(chunk)
        except Exception as exc:
            self.error = f"stream callback failed: {exc!r}"
            return True

    def _take_chunk(self, chunk: Any) -> bool:
        if not isinstance(chunk, dict) or "choices" not in chunk:
            self.error = chunk.get("error", chunk) if isinstance(chunk, dict) else chunk
            return True
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        elif chunk.get("timings"):
            timings = chunk["timings"]
            cached = int(timings.get("cache_n", 0))
            self.usage = {"prompt_tokens": cached + int(timings.get("prompt_n", 0)),
                          "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip
        for choice in chunk["choices"]:
            self._take(choice)
        return len(self.finish) + len(self.settled) >= self.n

    def _take(self, choice: dict[str, Any]) -> None:
        index = int(choice.get("index", 0))
        if not 0 <= index < self.n:
            self.error = f"streamed choice index {index} outside 0..{self.n - 1}"
            return
        tokens = (choice.get("logprobs") or {}).get("content") or []
        self.content[index].extend(tokens)
        reason = choice.get("finish_reason")
        if reason:
            self.finish[index] = reason
            self.settled.discard(index)
        elif index not in self.settled and self._any_newline(tokens) and self._cut_is_settled(index):
            self.settled.add(index)

    def _any_newline(self, tokens: list[dict[str, Any]]) -> bool:
        """A settled cut needs a newline after it, so the rule is only asked when one arrives."""
        for token in tokens:
            token_id = int(token["id"])
            if token_id not in self._newline:
                self._newline[token_id] = "\n" in self.decode([token_id])
            if self._newline[token_id]:
                return True
        return False

    def _cut_is_settled(self, index: int) -> bool:
        text = self.decode([int(t["id"]) for t in self.content[index]])
        cut = self.rule.find(text)
        return cut is not None and "\n" in text[cut:]

    def response(self) -> dict[str, Any]:
        """The response in the shape of a non-streamed one (choices with token log-probs, usage)."""
        choices = []
        for index, tokens in enumerate(self.content):
            reason = self.finish.get(index)
            if reason is None:  # stopped here: the stop rule cuts the text after decoding
                reason = "stop"
            elif reason == "stop" and self._ended_by_stop_word(tokens):
                tokens = tokens[: max(0, len(tokens) - self.stop_word_tokens)]
            choices.append({"index": index, "logprobs": {"content": tokens}, "finish_reason": reason})
        return {"choices": choices, "usage": self.usage}

    def _ended_by_stop_word(self, tokens: list[dict[str, Any]]) -> bool:
        """The engine stops at the token that completes the stop string's first occurrence, so the
        string is in the text only when it (not EOS) ended the branch."""
        return self.stop_word is not None and self.stop_word in self.decode([int(t["id"]) for t in tokens])
