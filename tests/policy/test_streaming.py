"""Early stop (`StreamCollector`): when a streamed request may stop, and what the streamed response
holds (pure, no model; the engine itself is checked in test_llamacpp.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from treeplay.policy.stoprules import StopRule
from treeplay.policy.streaming import StreamCollector

# A toy vocabulary: each token is a piece of text; ids are indices into this list.
VOCAB: list[str] = []


def token_id(piece: str) -> int:
    if piece not in VOCAB:
        VOCAB.append(piece)
    return VOCAB.index(piece)


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def chunk(piece: str, index: int = 0, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    content = [{"id": token_id(piece), "token": piece, "logprob": -0.5}] if piece else []
    return {"choices": [{"index": index, "text": piece, "logprobs": {"content": content} if content else None,
                         "finish_reason": finish}], **extra}  # fmt: skip


def collector(rule: StopRule, n: int = 1, stop_word: str | None = "```", stop_word_tokens: int = 1) -> StreamCollector:
    return StreamCollector(n, rule, decode, stop_word=stop_word, stop_word_tokens=stop_word_tokens)


def feed(c: StreamCollector, pieces: list[str], index: int = 0) -> list[bool]:
    return [c(chunk(p, index)) for p in pieces]


def test_python_stops_once_the_dedented_line_is_complete() -> None:
    c = collector(StopRule("py", "def f():\n"))
    answers = feed(c, ["    return", " 1", "\n", "\n", "print", "(f())", "\n", "x = 2", "\n"])
    # the cut (before "print") settles with the newline that completes the "print(f())" line
    assert answers == [False, False, False, False, False, False, True, True, True]


def test_a_partial_line_that_looks_like_a_cut_does_not_stop() -> None:
    # no enclosing def: after a body, a top-level line cuts unless it starts "def ", "class ", "@", "#"
    c = collector(StopRule("py", ""))
    # "\nde" looks like a top-level statement until it becomes "def g():"
    answers = feed(c, ["def f():\n", "    return 1", "\nde", "f g():\n", "    pass", "\n"])
    assert answers == [False] * 6
    assert feed(c, ["print(1)", "\n"]) == [False, True]


def test_stop_string_settles_at_the_first_newline_from_its_start() -> None:
    c = collector(StopRule("py", "def f():\n", stop_strings=("\ndef ",)))
    assert feed(c, ["    return 1", "\ndef "]) == [False, True]  # HumanEval's stops start with the newline
    c = collector(StopRule("py", "def f():\n", stop_strings=("print",)))
    assert feed(c, ["    x = 1\n", "    print", "(x)", "\n"]) == [False, False, False, True]


def test_brace_rule_stops_after_the_closing_brace_line() -> None:
    c = collector(StopRule("c", "int f(int x) {\n"))
    assert feed(c, ["  if (x) {", " return 1; }\n", "  return 0;\n", "}", "\n"]) == [False, False, False, False, True]


def test_no_stop_while_no_cut() -> None:
    c = collector(StopRule("py", "def f():\n"))
    assert feed(c, ["    x = 1\n", "    y = 2\n", "    return x + y\n"]) == [False, False, False]


def test_all_branches_must_be_done() -> None:
    c = collector(StopRule("py", "def f():\n"), n=2)
    assert feed(c, ["    return 1\n", "g()\n"], index=0) == [False, False]  # branch 0 settled, 1 running
    assert c(chunk("    return 2\n", 1)) is False
    assert c(chunk("", 1, finish="stop")) is True  # branch 1 finished by the engine


# ------------------------------------------------------------------ the cut is the whole response's


WHOLE_RESPONSES = [
    ("py", "def f(x):\n", (), "    if x:\n        return 1\n    return 2\n\n\nprint(f(1))\nassert f(0) == 2\n"),
    ("py", "def f(x):\n    '''doc\n", (), "    more doc'''\n    return x\ndef g():\n    pass\n"),
    ("py", "", (), "import os\n\ndef f():\n    return os.sep\n\n@decorator\ndef g():\n    pass\nmain()\nmore()\n"),
    ("py", "def f():\n", ("\nif __name__",), "    return 1\n\nif __name__ == '__main__':\n    f()\n"),
    ("rb", "def f(x)\n", (), "  x + 1\nend\n\nputs f(1)\nputs 2\n"),
    ("rb", "def f(x)\n", (), "  x + 1\nendpoint = 3\nend\nputs 1\n"),
    ("js", "function f(a) {\n", (), "  const s = '}';\n  return a; // }\n}\nconsole.log(f(1));\n"),
    ("go", "func F(a int) int {\n", (), "\tif a > 0 {\n\t\treturn a\n\t}\n\treturn 0\n}\n\nfunc main() {}\n"),
    ("py", "def f():\n", (), "    return 1\n```\nExplanation: it returns 1.\n"),
]


@pytest.mark.parametrize("language,prefix,stops,whole", WHOLE_RESPONSES)
@pytest.mark.parametrize("split", ["chars", "words", "lines"])
def test_stopping_early_never_moves_the_cut(language: str, prefix: str, stops: tuple[str, ...], whole: str,
                                            split: str) -> None:  # fmt: skip
    """Wherever the collector stops, the cut of the streamed text is the cut of the whole text."""
    pattern = {"chars": r".|\n", "words": r"\s*\S+|\s+", "lines": r"[^\n]*\n|[^\n]+"}[split]
    pieces = re.findall(pattern, whole)
    assert "".join(pieces) == whole
    rule = StopRule(language, prefix, stop_strings=stops)
    c = collector(rule)
    streamed = ""
    for piece in pieces:
        streamed += piece
        if c(chunk(piece)):
            break
    assert streamed != whole, "these responses all run on past their cut: the collector should stop early"
    assert rule.find(streamed) == rule.find(whole)


# ------------------------------------------------------------------ the response


def test_response_trims_the_stop_word_like_a_non_streamed_response() -> None:
    c = collector(StopRule("py", "def f():\n"))
    feed(c, ["    return", " 1", "\n", "```"])
    c(chunk("", finish="stop", usage={"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}))
    response = c.response()
    (choice,) = response["choices"]
    assert [t["token"] for t in choice["logprobs"]["content"]] == ["    return", " 1", "\n"]
    assert choice["finish_reason"] == "stop"
    assert response["usage"] == {"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}


def test_response_keeps_the_last_token_when_eos_or_length_ended_it() -> None:
    c = collector(StopRule("py", "def f():\n"))
    feed(c, ["    return", " 1", "<|im_end|>"])
    c(chunk("", finish="stop"))
    assert [t["token"] for t in c.response()["choices"][0]["logprobs"]["content"]] == ["    return", " 1", "<|im_end|>"]
    c = collector(StopRule("py", "def f():\n"))
    feed(c, ["    x", " = 1"])
    c(chunk("", finish="length"))
    assert c.response()["choices"][0]["finish_reason"] == "length"
    assert len(c.response()["choices"][0]["logprobs"]["content"]) == 2


def test_a_branch_stopped_here_is_reported_as_stop_with_usage_from_timings() -> None:
    c = collector(StopRule("py", "def f():\n"))
    c(chunk("    return 1\n", timings={"cache_n": 30, "prompt_n": 12}))
    assert c(chunk("main()\n", timings={"cache_n": 30, "prompt_n": 12})) is True
    response = c.response()
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"] == {"prompt_tokens": 42, "prompt_tokens_details": {"cached_tokens": 30}}


def test_an_error_chunk_stops_and_is_kept() -> None:
    c = collector(StopRule("py", "def f():\n"))
    assert c({"error": {"code": 500, "message": "boom"}}) is True
    assert c.error == {"code": 500, "message": "boom"}


def test_a_failing_callback_is_an_error_not_a_short_completion() -> None:
    """The binding swallows a callback's exception and stops the stream; the collector must turn it
    into the request's error, or the truncated text would be judged as the model's answer."""

    def broken_decode(ids: list[int]) -> str:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad byte")

    c = StreamCollector(1, StopRule("py", "def f():\n"), broken_decode, stop_word="```", stop_word_tokens=1)
    assert c(chunk("    return 1\n")) is True
    assert "stream callback failed" in str(c.error) and "UnicodeDecodeError" in str(c.error)
