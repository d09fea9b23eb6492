from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from train_helpers import CharEncoder, make_pairs
from typer.testing import CliRunner

from treeplay.cli import app
from treeplay.jsonl import write_jsonl
from treeplay.train.data import BatchPlan, encode_pairs, read_pairs, steps_for_epochs


def test_read_pairs_round_trip_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, make_pairs(3))
    assert read_pairs(path) == make_pairs(3)
    record = json.loads(path.read_text().splitlines()[1])
    del record["chosen"]
    path.write_text(path.read_text().splitlines()[0] + "\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: .*'chosen'"):
        read_pairs(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mode", "dpo", r"pairs.jsonl:1: bad Pair record: field 'mode': 'dpo' is not one of golden-vs-branch"),
    ("chosen", 7, r"pairs.jsonl:1: bad Pair record: field 'chosen': expected str, got int"),
    ("round", "2", r"pairs.jsonl:1: bad Pair record: field 'round': expected int, got str"),
    ("rejected_token_ids", [1, "x"], r"pairs.jsonl:1: bad Pair record: field 'rejected_token_ids\[1\]': expected int"),
    ("chosen_ref_logprobs", [-0.5, True], r"field 'chosen_ref_logprobs\[1\]': expected float, got bool"),
])
def test_read_pairs_names_line_and_field_of_a_mistyped_value(tmp_path: Path, field: str, value: object,
                                                             message: str) -> None:  # fmt: skip
    """A wrong type is an error naming file, line and field, never converted silently (`"2"` is
    not round 2, `7` is not the text "7")."""
    record = json.loads(json.dumps(dataclasses.asdict(make_pairs(1)[0])))
    record[field] = value
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=message):
        read_pairs(path)


def test_read_pairs_keeps_absent_reference_logprobs_absent(tmp_path: Path) -> None:
    record = json.loads(json.dumps(dataclasses.asdict(make_pairs(1)[0])))
    record["chosen_token_ids"], record["chosen_ref_logprobs"] = [5, 6], [-1, -0.25]
    record.pop("rejected_token_ids", None)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(record) + "\n")
    pair = read_pairs(path)[0]
    assert pair.chosen_token_ids == (5, 6) and pair.chosen_ref_logprobs == (-1.0, -0.25)
    assert pair.rejected_token_ids is None and pair.rejected_ref_logprobs is None


def test_cli_rejects_bad_method_and_missing_data(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "--method", "ppo", "--data", "x.jsonl", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--method" in bad.output
    missing = runner.invoke(app, ["train", "--method", "tsp", "--data", str(tmp_path / "no.jsonl"), "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "no such pairs file" in missing.output


def test_encode_pairs_cuts_recorded_reference_consistently() -> None:
    enc = CharEncoder()
    pair = make_pairs(1)[0]
    ids = tuple(enc.encode_continuation(pair.chosen))
    rec = dataclasses.replace(pair, chosen_token_ids=ids, chosen_ref_logprobs=tuple(float(-i) for i in range(len(ids))),
                              rejected_token_ids=(5, 6, 7), rejected_ref_logprobs=(-1.0, -2.0, -3.0))
    report = encode_pairs([rec, pair, dataclasses.replace(pair, rejected=pair.chosen)], enc, method="tsp",
                          max_prompt_tokens=1000, max_completion_tokens=45)
    assert report.recorded_reference == 1 and report.skipped == {"chosen equals rejected (after truncation)": 1}
    first = report.pairs[0]
    assert first.chosen_ids == ids[:45] and first.ref_chosen == tuple(float(-i) for i in range(45))
    assert first.rejected_ids == (5, 6, 7)
    with pytest.raises(ValueError, match="recorded log-probs"):
        encode_pairs([dataclasses.replace(rec, chosen_ref_logprobs=(-1.0,))], enc, method="tsp",
                     max_prompt_tokens=1000, max_completion_tokens=45)


def test_batch_plan_covers_each_epoch_once_and_is_deterministic() -> None:
    plan = BatchPlan(n_items=10, batch_size=2, grad_accum=1, world_size=1, seed=7)
    epoch = [i for step in range(1, 6) for i in plan.micro_batch(step, 0, 0)]
    assert sorted(epoch) == list(range(10))
    next_epoch = [i for step in range(6, 11) for i in plan.micro_batch(step, 0, 0)]
    assert sorted(next_epoch) == list(range(10)) and next_epoch != epoch
    two_ranks = BatchPlan(10, 1, 1, 2, 7)
    assert two_ranks.micro_batch(1, 0, 0) + two_ranks.micro_batch(1, 0, 1) == plan.micro_batch(1, 0, 0)
    assert steps_for_epochs(10, 3, 2, 2, 1) == 8
