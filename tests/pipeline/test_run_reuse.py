"""`treeplay run --reuse-from OTHER_RUN`: the finished stages of another run with the same inputs are
copied in (paths rewritten, `reused_from` recorded) instead of run; a trained model without weights
there is reused only when nothing still to run needs it; a bad source is a run-check blocker."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_run import OLD, TINY_CONFIG

from treeplay.pipeline import Pipeline, load_config
from treeplay.run_check import check_run
from treeplay.run_reuse import _moved
from treeplay.stages import Stage, run_stage

CONFIG = {**TINY_CONFIG, "train": {"learning_rate": 2.0e-4, "max_steps": 4}}
BASE_EVAL, DATA, TRAIN, TSP_EVAL = ("seed 0 / base / eval securityeval", "seed 0 / tsp / round 1 / data",
                                    "seed 0 / tsp / round 1 / train", "seed 0 / tsp / eval securityeval")  # fmt: skip


def _config(directory: Path, name: str, **changes: Any) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "name": name, **changes}), encoding="utf-8")
    return path


def _work(stage: Stage) -> dict[str, Any]:
    """A stage's model work replaced by files of the real layout, with the paths real records hold."""
    if stage.kind == "data":
        (stage.directory / "pairs.jsonl").write_text('{"pair": 1}\n', encoding="utf-8")
        return {"pairs": 1, "pairs_file": str(stage.directory / "pairs.jsonl")}
    if stage.kind == "train":
        final = stage.directory / "final"
        final.mkdir()
        (final / "adapter_model.safetensors").write_bytes(b"weights")
        (final / "treeplay_train.json").write_text(json.dumps({"base_model": "embedded"}), encoding="utf-8")
        return {"final_model_dir": str(final), "steps": 4}
    (stage.directory / "generations.jsonl").write_text('{"task_id": "t"}\n', encoding="utf-8")
    return {"tasks": 1, "metrics_file": str(stage.directory / "metrics.json")}


def _run(config: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch, reuse_from: list[Path] | None = None,
         models: list[str] | None = None) -> list[str]:  # fmt: skip
    """`Pipeline.run` (the real driver) with each stage's model work replaced by `_work`; returns the
    stages that worked. `models`: collects the model each trained arm's evaluation loads."""
    import treeplay.stages as stages
    from treeplay.pipeline_stages import StageBuilder

    worked: list[str] = []

    def fake_run_stage(stage: Stage, archive: Path | None = None) -> dict[str, Any]:
        worked.append(stage.name)
        return run_stage(dataclasses.replace(stage, run=lambda: _work(stage)), archive)

    real_eval_stages = StageBuilder.eval_stages

    def eval_stages(self: StageBuilder, seed: int, arm: str, model: str, *rest: Any) -> list[Stage]:
        if models is not None and arm != "base":
            models.append(model)
        return real_eval_stages(self, seed, arm, model, *rest)

    monkeypatch.setattr(stages, "run_stage", fake_run_stage)
    monkeypatch.setattr(StageBuilder, "eval_stages", eval_stages)
    Pipeline(load_config(config), run_dir, fingerprint=OLD, reuse_from=reuse_from or []).run()
    return worked


@pytest.fixture
def first(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run `a` finished: base eval, TSP data, training (lr 2e-4) and eval."""
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    run_dir = tmp_path / "runs" / "a"
    assert _run(_config(tmp_path, "a"), run_dir, monkeypatch) == [BASE_EVAL, DATA, TRAIN, TSP_EVAL]
    return run_dir


def _record(run_dir: Path, stage_dir: str) -> dict[str, Any]:
    return json.loads((run_dir / stage_dir / "stage.json").read_text(encoding="utf-8"))


def test_a_new_learning_rate_reuses_base_eval_and_data_and_trains_again(first: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = _config(tmp_path, "b", train={"learning_rate": 5.0e-5, "max_steps": 4})
    run_dir = tmp_path / "runs" / "b"
    assert _run(config, run_dir, monkeypatch, reuse_from=[first]) == [TRAIN, TSP_EVAL]
    data = _record(run_dir, "seed-0/tsp/round-1/data")
    assert data["reused_from"] == str(first / "seed-0/tsp/round-1/data")
    assert data["pairs_file"] == str(run_dir / "seed-0/tsp/round-1/data/pairs.jsonl")
    assert (run_dir / "seed-0/tsp/round-1/data/pairs.jsonl").read_text(encoding="utf-8") == '{"pair": 1}\n'
    base = _record(run_dir, "seed-0/base/eval/securityeval")
    assert base["metrics_file"] == str(run_dir / "seed-0/base/eval/securityeval/metrics.json")
    assert "reused_from" not in _record(run_dir, "seed-0/tsp/round-1/train")  # trained here
    assert not list(run_dir.rglob("*.reusing"))


def test_a_trained_model_is_reused_and_the_new_bench_loads_the_copy(first: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = _config(tmp_path, "b", eval={**CONFIG["eval"], "benches": ["securityeval", "humaneval"]})
    run_dir = tmp_path / "runs" / "b"
    models: list[str] = []
    worked = _run(config, run_dir, monkeypatch, reuse_from=[first], models=models)
    assert worked == ["seed 0 / base / eval humaneval", "seed 0 / tsp / eval humaneval"]
    final = run_dir / "seed-0/tsp/round-1/train/final"
    assert models[-1] == str(final)  # the run's walk (after the plans): not the other run's model
    assert _record(run_dir, "seed-0/tsp/round-1/train")["final_model_dir"] == str(final)
    assert (final / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_model_without_weights_is_trained_again_when_a_stage_needs_it(first: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The other run was restored from a bundle (no weights): its training is reused only when every
    later stage of the arm is reused too."""
    (first / "seed-0/tsp/round-1/train/final/adapter_model.safetensors").unlink()
    same = _config(tmp_path, "b")
    assert _run(same, tmp_path / "runs" / "b", monkeypatch, reuse_from=[first]) == []
    more = _config(tmp_path, "c", eval={**CONFIG["eval"], "benches": ["securityeval", "humaneval"]})
    worked = _run(more, tmp_path / "runs" / "c", monkeypatch, reuse_from=[first])
    # the securityeval result of the same training inputs is still reused: its hash names that training
    assert worked == ["seed 0 / base / eval humaneval", TRAIN, "seed 0 / tsp / eval humaneval"]


def test_a_copy_cut_short_is_redone(first: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill mid-copy left `<stage>.reusing` (never taken as done) and an unfinished stage dir."""
    run_dir = tmp_path / "runs" / "b"
    partial = run_dir / "seed-0/base/eval/securityeval.reusing"
    partial.mkdir(parents=True)
    (partial / "generations.jsonl").write_text('{"torn', encoding="utf-8")
    assert _run(_config(tmp_path, "b"), run_dir, monkeypatch, reuse_from=[first]) == []
    assert (run_dir / "seed-0/base/eval/securityeval/generations.jsonl").read_text(encoding="utf-8") == '{"task_id": "t"}\n'
    assert not partial.exists()


def test_check_lists_the_stages_it_would_copy_and_blocks_a_bad_source(first: Path, tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, "b", train={"learning_rate": 5.0e-5, "max_steps": 4}))
    run_dir = tmp_path / "runs" / "b"
    report = check_run(config, run_dir, source="b.yaml", fingerprint=OLD, reuse_from=[first])
    assert report.ok, report.problems
    assert report.to_run == [TRAIN, TSP_EVAL]
    assert f"reuse: 2 stage(s) copied from {first} (same inputs, finished there): {BASE_EVAL}; {DATA}" in report.plan
    report = check_run(config, run_dir, source="b.yaml", fingerprint=OLD, reuse_from=[tmp_path / "nope"])
    assert f"b.yaml: --reuse-from {tmp_path / 'nope'}: not a run dir (no config.yaml; unbundle its bundle first?)" \
        in report.problems  # fmt: skip


def test_cli_reuse_from_reaches_the_check(first: Path, tmp_path: Path) -> None:
    """(The CLI keys stages with the installed oracle, not the fake runs' OLD: nothing to copy here.)"""
    from typer.testing import CliRunner

    from treeplay.cli import app

    config = _config(tmp_path, "b")
    args = ["run", str(config), "--check", "--run-dir", str(tmp_path / "runs" / "b"), "--reuse-from"]
    result = CliRunner().invoke(app, [*args, str(first)])
    assert result.exit_code == 0 and f"reuse: 0 stage(s) copied from {first}" in result.output, result.output
    result = CliRunner().invoke(app, [*args, str(tmp_path)])
    assert result.exit_code == 1 and f"--reuse-from {tmp_path}: not a run dir" in result.output, result.output


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("runs/a/seed-0/tsp/round-1/train/final", "runs/b/seed-0/tsp/round-1/train/final"),
        ("{cwd}/runs/a/seed-0/base/eval/x/metrics.json", "runs/b/seed-0/base/eval/x/metrics.json"),
        ("runs/a", "runs/b"),
        ("runs/ab/seed-0", "runs/ab/seed-0"),  # another run whose name starts alike
        ("runs/other/seed-0/final", "runs/other/seed-0/final"),
        ("embedded", "embedded"),
        ("golden-vs-branch", "golden-vs-branch"),
    ],
)
def test_paths_under_the_other_run_move_and_nothing_else(value: str, expected: str) -> None:
    assert _moved(value.format(cwd=os.getcwd()), Path("runs/a"), Path("runs/b")) == expected


def test_copies_are_files_not_links(first: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting the other run afterwards loses nothing here."""
    run_dir = tmp_path / "runs" / "b"
    _run(_config(tmp_path, "b", train={"learning_rate": 5.0e-5, "max_steps": 4}), run_dir, monkeypatch,
         reuse_from=[first])  # fmt: skip
    shutil.rmtree(first)
    assert (run_dir / "seed-0/tsp/round-1/data/pairs.jsonl").read_text(encoding="utf-8") == '{"pair": 1}\n'
    assert Pipeline(load_config(_config(tmp_path, "b")), run_dir, fingerprint=OLD).plan()[0].done
