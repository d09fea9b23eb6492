"""`train.end_marker`: the end of an answer is trained on the sides that ended by themselves, never
on a side cut at the token budget, and the option leaves the stage hashes of earlier runs alone."""

from __future__ import annotations

import dataclasses

import pytest
from train_helpers import END, CharEncoder

from treeplay.train.config import TrainConfig
from treeplay.train.data import encode_pairs, side_ended
from treeplay.tree.records import Pair, pair_from_dict


def _pair(mode: str = "golden-vs-branch", chosen_finish: str | None = "stop", rejected_finish: str | None = "length",
          **changes: object) -> Pair:  # fmt: skip
    pair = Pair(task_id="t", node_id="n1", mode=mode, language="py", cwe="CWE-89", instruction="q", prefix="x = ",  # type: ignore[arg-type]
                chosen="ab\n", rejected="cd", chosen_finish_reason=chosen_finish,
                rejected_finish_reason=rejected_finish)  # fmt: skip
    return dataclasses.replace(pair, **changes)  # type: ignore[arg-type]


def _encode(pairs: list[Pair], budget: int = 64, end: bool = True, method: str = "tsp"):  # type: ignore[no-untyped-def]
    encoder = CharEncoder()
    return encode_pairs(pairs, encoder, method=method, max_prompt_tokens=64, max_completion_tokens=budget,
                        end_ids=encoder.end_ids if end else None)  # fmt: skip


A, B, NL, C, D = ord("a"), ord("b"), ord("\n"), ord("c"), ord("d")


def test_the_side_that_stopped_ends_with_the_marker_the_cut_one_does_not() -> None:
    report = _encode([_pair()])
    (encoded,) = report.pairs
    assert encoded.chosen_ids == (A, B, NL, END)
    assert encoded.rejected_ids == (C, D)  # cut at the branch budget: it did not end
    assert report.ended == {"chosen": 1, "rejected": 0}


def test_both_sides_of_a_sibling_pair_that_stopped_end() -> None:
    report = _encode([_pair("sibling", "stop", "stop")])
    assert (report.pairs[0].chosen_ids, report.pairs[0].rejected_ids) == ((A, B, NL, END), (C, D, END))
    assert report.ended == {"chosen": 1, "rejected": 1}


def test_without_the_option_nothing_changes() -> None:
    report = _encode([_pair("sibling", "stop", "stop")], end=False)
    assert (report.pairs[0].chosen_ids, report.pairs[0].rejected_ids) == ((A, B, NL), (C, D))
    assert report.ended == {}


def test_a_side_that_does_not_fit_the_budget_with_its_end_gets_none() -> None:
    """3 tokens of chosen + the marker do not fit in 3: the chosen side is cut, so it did not end
    there (no half marker either); its recorded reference is kept."""
    pair = _pair("sibling", "stop", "stop", chosen_token_ids=(A, B, NL), chosen_ref_logprobs=(-1.0, -2.0, -3.0),
                 rejected_token_ids=(C, D), rejected_ref_logprobs=(-1.0, -1.5))  # fmt: skip
    report = encode_pairs([pair], CharEncoder(), method="tsp", max_prompt_tokens=64, max_completion_tokens=3,
                          end_ids=CharEncoder().end_ids)  # fmt: skip
    (encoded,) = report.pairs
    assert encoded.chosen_ids == (A, B, NL) and encoded.rejected_ids == (C, D, END)
    assert report.ended == {"chosen": 0, "rejected": 1}
    # the rejected side got the marker, which no engine scored: the pair's reference is recomputed whole
    assert encoded.ref_chosen is None and encoded.ref_rejected is None and report.recorded_reference == 0


def test_recorded_pairs_keep_their_reference_without_the_option() -> None:
    pair = _pair("sibling", "stop", "stop", chosen_token_ids=(A, B, NL), chosen_ref_logprobs=(-1.0, -2.0, -3.0),
                 rejected_token_ids=(C, D), rejected_ref_logprobs=(-1.0, -1.5))  # fmt: skip
    report = _encode([pair], end=False)
    assert report.pairs[0].ref_chosen == (-1.0, -2.0, -3.0) and report.recorded_reference == 1


def test_pairs_written_before_finish_reasons_were_recorded() -> None:
    """Old pairs files: the dataset-written chosen side ended (the golden function), a model-written
    side is not known to have ended, so it gets no marker."""
    assert side_ended(None, "golden-vs-branch", "chosen") and side_ended(None, "sft", "chosen")
    assert not side_ended(None, "golden-vs-branch", "rejected")
    assert not side_ended(None, "sibling", "chosen") and not side_ended(None, "whole-sequence", "chosen")
    assert not side_ended("length", "golden-vs-branch", "chosen")
    old = pair_from_dict({"task_id": "t", "node_id": "n1", "mode": "sibling", "language": "py", "cwe": None,
                          "instruction": "q", "prefix": "", "chosen": "ab\n", "rejected": "cd"})  # fmt: skip
    assert old.chosen_finish_reason is None and old.rejected_finish_reason is None
    report = _encode([old])
    assert (report.pairs[0].chosen_ids, report.pairs[0].rejected_ids) == ((A, B, NL), (C, D))


def test_sft_examples_end_too() -> None:
    report = _encode([_pair("sft", "stop", None, rejected="")], method="sft")
    assert report.pairs[0].chosen_ids == (A, B, NL, END) and report.pairs[0].rejected_ids == ()
    assert report.ended == {"chosen": 1, "rejected": 0}


def test_the_option_enters_the_stage_hash_only_when_set() -> None:
    """Finished train stages of runs made before the option existed keep their hash: at its default
    the option is not in what the hash covers; set, it is."""
    default = TrainConfig(method="tsp")
    assert "end_marker" in default.to_dict() and "end_marker" not in default.hashed_dict()
    assert {k: v for k, v in default.to_dict().items() if k != "end_marker"} == default.hashed_dict()
    assert TrainConfig(method="tsp", end_marker=True).hashed_dict()["end_marker"] is True


@pytest.mark.parametrize(("text", "expected"), [("x = 1\n", "```"), ("x = 1", "\n```")])
def test_a_fenced_chat_answer_ends_with_the_closing_fence(text: str, expected: str) -> None:
    """What sampling stops at (the closing fence, on a line of its own); a completion prompt: EOS."""
    from transformers import AutoTokenizer

    from treeplay.policy.models import embedded_tokenizer_dir
    from treeplay.policy.prompting import PromptFormat
    from treeplay.train.data import PolicyPromptEncoder

    tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir("qwen-coder-0.5b"))
    ids = PolicyPromptEncoder(tokenizer, PromptFormat(kind="chat", fence=True)).end_ids(text)
    assert tokenizer.decode(ids) == expected
    completion = PolicyPromptEncoder(tokenizer, PromptFormat(kind="completion"))
    assert completion.end_ids(text) == [tokenizer.eos_token_id]
