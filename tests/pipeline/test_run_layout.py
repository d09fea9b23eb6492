"""issue 15: one run-dir layout for the pipeline (placing stages) and the report (finding them)."""

from __future__ import annotations

from pathlib import Path

from treeplay.run_layout import RunLayout


def test_stage_directories_keep_their_names(tmp_path: Path) -> None:
    # the names existing run dirs use (written out by hand): a renamed directory would redo the run
    layout = RunLayout(tmp_path)
    assert layout.eval_dir(0, "base", "securityeval") == tmp_path / "seed-0/base/eval/securityeval"
    assert layout.eval_dir(1, "tsp", "sec-eval:not-trained") == tmp_path / "seed-1/tsp/eval/sec-eval-not-trained"
    assert layout.eval_dir(0, "sft", "sec-eval@c,go,java,js,rb") == tmp_path / "seed-0/sft/eval/sec-eval-c-go-java-js-rb"
    assert layout.round_dir(0, "tsp-dpo", 2, "data") == tmp_path / "seed-0/tsp-dpo/round-2/data"
    assert layout.round_dir(3, "selfplay", 1, "train") == tmp_path / "seed-3/selfplay/round-1/train"
    assert layout.budget(0, "sft") == tmp_path / "seed-0/sft/budget.json"
    assert layout.config_file == tmp_path / "config.yaml"
    assert not any(tmp_path.iterdir())  # nothing is created


def test_discovery_lists_what_is_on_disk_in_numeric_order(tmp_path: Path) -> None:
    for part in ("seed-10/tsp/round-10/data", "seed-10/tsp/round-2/train", "seed-2/base/eval/humaneval",
                 "seed-2/base/eval/securityeval", "seed-2/sft/round-1/data", "seed-x/tsp/round-1/data",
                 "seed-2/sft/round-one/data"):  # fmt: skip
        (tmp_path / part).mkdir(parents=True)
    (tmp_path / "seed-3").write_text("a file, not a seed dir")
    (tmp_path / "seed-2" / "sft" / "round-3").write_text("a file, not a round dir")
    layout = RunLayout(tmp_path)
    assert layout.seeds() == [2, 10]
    assert layout.arms(2) == ["base", "sft"]
    assert layout.rounds(10, "tsp") == [2, 10]
    assert layout.rounds(2, "base") == [] and layout.rounds(7, "tsp") == []
    assert [(s, a, d.name) for s, a, d in layout.found_evals()] == [(2, "base", "humaneval"), (2, "base", "securityeval")]
    assert list(layout.found_rounds()) == [(2, "sft", 1), (10, "tsp", 2), (10, "tsp", 10)]
    assert RunLayout(tmp_path / "missing").seeds() == []
