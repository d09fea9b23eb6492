"""`eval.n_per_bench`: more samples per task on a small bench without touching the other benches'
stages (their inputs hash, hence their finished results, stay what they were)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_run import OLD, TINY_CONFIG

from treeplay.pipeline import ConfigError, Pipeline, load_config

BENCHES = ["securityeval", "sec-eval:not-trained"]


def _pipeline(tmp_path: Path, name: str, **eval_fields: Any) -> Pipeline:
    config = copy.deepcopy(TINY_CONFIG)
    config["eval"] = {**config["eval"], "benches": BENCHES, **eval_fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return Pipeline(load_config(path), tmp_path / name, fingerprint=OLD)


def _eval_hashes(pipeline: Pipeline) -> dict[str, str]:
    stages = pipeline.stages.eval_stages(0, "base", "embedded", "m")
    return {str(s.bench): s.inputs_hash for s in stages}


def test_a_bench_not_named_keeps_its_hash_and_the_named_one_samples_n(tmp_path: Path) -> None:
    before = _eval_hashes(_pipeline(tmp_path, "before"))
    five = _pipeline(tmp_path, "five", n_per_bench={"sec-eval:not-trained": 5})
    after = _eval_hashes(five)
    assert after["securityeval"] == before["securityeval"]
    assert after["sec-eval:not-trained"] != before["sec-eval:not-trained"]
    # the same generations as a run with n = 5 everywhere: the same inputs
    assert after["sec-eval:not-trained"] == _eval_hashes(_pipeline(tmp_path, "all5", n=5))["sec-eval:not-trained"]
    section = five.config.eval
    assert (section.stage_config("sec-eval:not-trained").n, section.stage_config("securityeval").n) == (5, 1)


@pytest.mark.parametrize(("field", "message"), [
    ({"humaneval": 5}, "n_per_bench names 'humaneval', not in benches"),
    ({"securityeval": 0}, "samples per task must be >= 1, got securityeval: 0"),
])  # fmt: skip
def test_a_bad_n_per_bench_names_the_field(tmp_path: Path, field: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _pipeline(tmp_path, "bad", n_per_bench=field)
    assert "field eval.n_per_bench" in str(error.value) and message in str(error.value)
