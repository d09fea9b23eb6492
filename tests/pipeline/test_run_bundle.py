"""`treeplay bundle` / `unbundle`: a run's results without its weights go to another checkout, the
restored run resumes with its finished stages done, and a stage that would need a left-out model
is a run-check blocker (runs/ does not survive from one working session to the next)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_run import OLD, TINY_CONFIG

from treeplay.pipeline import Pipeline, load_config
from treeplay.run_bundle import (
    MANIFEST,
    BundleError,
    RunDirBusy,
    bundle_blocker,
    is_weight,
    missing_model_blockers,
    read_manifest,
    restore_bundle,
    write_bundle,
)
from treeplay.run_check import check_run
from treeplay.stages import ArmBudget, Stage, run_stage, walk

CONFIG = {**TINY_CONFIG, "seeds": [0, 1]}
ADAPTER = b"not really weights, but the bytes stand for them"
CHECKPOINT = b"optimizer state"


def _config(directory: Path, **changes: Any) -> Path:
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, **changes}), encoding="utf-8")
    return path


def _work(stage: Stage) -> dict[str, Any]:
    """A stage's model work replaced by files of the real layout."""
    if stage.kind == "data":
        (stage.directory / "trees.jsonl").write_text('{"tree": 1}\n', encoding="utf-8")
        return {"trees": 1, "pairs": 1}
    if stage.kind == "train":
        final = stage.directory / "final"
        final.mkdir()
        (final / "adapter_model.safetensors").write_bytes(ADAPTER)
        (final / "treeplay_train.json").write_text('{"adapter": true}', encoding="utf-8")
        (stage.directory / "checkpoints" / "step-4").mkdir(parents=True)
        (stage.directory / "checkpoints" / "step-4" / "state.json").write_bytes(CHECKPOINT)
        (stage.directory / "metrics.jsonl").write_text('{"step": 1, "loss": 0.69}\n', encoding="utf-8")
        return {"final_model_dir": str(final), "steps": 1}
    (stage.directory / "generations.jsonl").write_text('{"task_id": "t"}\n', encoding="utf-8")
    return {"tasks": 1}


def _fake_run(config_path: Path, run_dir: Path) -> list[str]:
    """Every stage through `run_stage`, the model work replaced by `_work`."""
    pipeline = Pipeline(load_config(config_path), run_dir, fingerprint=OLD)
    pipeline.load_tasks()
    names: list[str] = []

    def on_stage(stage: Stage) -> dict[str, Any]:
        names.append(stage.name)
        return run_stage(dataclasses.replace(stage, run=lambda: _work(stage)))

    walk(pipeline.steps(), on_stage, ArmBudget.write)
    (run_dir / "config.yaml").write_text(config_path.read_text(encoding="utf-8"), encoding="utf-8")
    return names


@pytest.fixture
def run(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    config = _config(tmp_path)
    run_dir = tmp_path / "runs" / "tiny"
    _fake_run(config, run_dir)
    (run_dir / "superseded" / "abc" / "seed-0").mkdir(parents=True)
    (run_dir / "superseded" / "abc" / "seed-0" / "old.json").write_text("{}", encoding="utf-8")
    (run_dir / ".treeplay.lock").write_text("pid 1", encoding="utf-8")
    return config, run_dir


def _members(bundle: Path) -> set[str]:
    with tarfile.open(bundle) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def test_weight_files_and_checkpoints_are_left_out() -> None:
    assert is_weight(Path("seed-0/tsp/round-1/train/final/adapter_model.safetensors"))
    assert is_weight(Path("seed-0/tsp/round-1/train/final/adapter.gguf"))
    assert is_weight(Path("seed-0/tsp/round-1/train/checkpoints/step-4/state.json"))
    assert is_weight(Path("seed-0/tsp/round-1/train/final/tokenizer.json"))  # a copy of the base model's
    assert not is_weight(Path("seed-0/tsp/round-1/train/final/treeplay_train.json"))
    assert not is_weight(Path("seed-0/tsp/round-1/train/final/adapter_config.json"))
    assert not is_weight(Path("seed-0/tsp/round-1/train/metrics.jsonl"))
    assert not is_weight(Path("seed-0/tsp/eval/sallm/generations.jsonl"))


def test_bundle_keeps_results_and_lists_the_weights_it_left_out(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    summary = write_bundle(run_dir, tmp_path / "b.tar.xz")
    members = _members(tmp_path / "b.tar.xz")
    train = "seed-0/tsp/round-1/train"
    assert {"config.yaml", MANIFEST, f"{train}/stage.json", f"{train}/metrics.jsonl", f"{train}/final/treeplay_train.json",
            "seed-0/tsp/round-1/data/trees.jsonl", "seed-1/tsp/eval/securityeval/generations.jsonl",
            "seed-0/base/eval/securityeval/stage.json", "seed-0/tsp/budget.json"} <= members  # fmt: skip
    assert not any(m.endswith(".safetensors") or "/checkpoints/" in m for m in members)
    assert not any(m.startswith("superseded/") or m == ".treeplay.lock" for m in members)
    left = {item["path"]: item for item in read_manifest(tmp_path / "b.tar.xz")["left_out"]}
    adapter = f"{train}/final/adapter_model.safetensors"
    # two seeds: an adapter and a checkpoint file each
    assert sorted(left) == sorted(f"seed-{s}/tsp/round-1/{p}" for s in (0, 1)
                                  for p in ("train/final/adapter_model.safetensors", "train/checkpoints/step-4/state.json"))  # fmt: skip
    assert left[adapter]["bytes"] == len(ADAPTER)
    assert left[adapter]["sha256"] == hashlib.sha256(ADAPTER).hexdigest()
    assert len(summary.left_out) == 4


def test_one_seed_only(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    write_bundle(run_dir, tmp_path / "s1.tar.xz", seeds=[1])
    members = _members(tmp_path / "s1.tar.xz")
    assert "seed-1/tsp/round-1/data/trees.jsonl" in members
    assert not any(m.startswith("seed-0/") for m in members)
    assert read_manifest(tmp_path / "s1.tar.xz")["seeds"] == [1]
    with pytest.raises(BundleError, match=r"no seed dir for seed\(s\) \[7\]"):
        write_bundle(run_dir, tmp_path / "s7.tar.xz", seeds=[7])


def test_restored_run_has_its_finished_stages_done(run: tuple[Path, Path], tmp_path: Path) -> None:
    config, run_dir = run
    write_bundle(run_dir, tmp_path / "b.tar.xz")
    other = tmp_path / "elsewhere" / "tiny"
    assert restore_bundle(tmp_path / "b.tar.xz", other) == (len(_members(tmp_path / "b.tar.xz")) - 1, 0)
    rel = "seed-0/tsp/round-1/data/trees.jsonl"
    assert (other / rel).read_bytes() == (run_dir / rel).read_bytes()
    planned = Pipeline(load_config(config), other, fingerprint=OLD).plan()
    assert len(planned) == 8 and all(p.done for p in planned)  # 2 seeds x (base eval, data, train, eval)
    assert missing_model_blockers(planned, "tiny.yaml") == []  # nothing left to run needs a model
    # a second restore writes nothing and keeps everything
    assert restore_bundle(tmp_path / "b.tar.xz", other) == (0, len(_members(tmp_path / "b.tar.xz")) - 1)


def test_restore_refuses_to_overwrite_other_contents(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    write_bundle(run_dir, tmp_path / "b.tar.xz")
    other = tmp_path / "other"
    (other / "seed-0" / "tsp").mkdir(parents=True)
    (other / "seed-0" / "tsp" / "budget.json").write_text('{"mine": true}', encoding="utf-8")
    with pytest.raises(BundleError, match=r"1 file\(s\) already in .* with other contents"):
        restore_bundle(tmp_path / "b.tar.xz", other)
    assert (other / "seed-0" / "tsp" / "budget.json").read_text(encoding="utf-8") == '{"mine": true}'
    assert not (other / "config.yaml").exists()  # nothing was written


def test_not_a_bundle_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.tar.xz").write_bytes(b"garbage")
    with pytest.raises(BundleError, match=r"x\.tar\.xz: not a treeplay bundle"):
        restore_bundle(tmp_path / "x.tar.xz", tmp_path / "r")


def test_a_stage_needing_a_left_out_model_blocks_the_run(run: tuple[Path, Path], tmp_path: Path) -> None:
    """A new bench for the restored trained arm needs its model: the check says so, naming the
    train stage and what to delete; the base arm's new bench needs no trained model."""
    _, run_dir = run
    write_bundle(run_dir, tmp_path / "b.tar.xz", seeds=[0])
    other = tmp_path / "restored"
    restore_bundle(tmp_path / "b.tar.xz", other)
    shutil.rmtree(run_dir)  # another checkout: the weights the records name are not on this disk
    config = load_config(_config(tmp_path, seeds=[0], eval={**CONFIG["eval"], "benches": ["securityeval", "humaneval"]}))
    report = check_run(config, other, source="tiny.yaml", fingerprint=OLD)
    train = other / "seed-0" / "tsp" / "round-1" / "train"
    assert report.to_run == ["seed 0 / base / eval humaneval", "seed 0 / tsp / eval humaneval"]
    assert report.problems[-1:] == [
        f"tiny.yaml: seed 0 / tsp / round 1 / train is done but its model {run_dir}/seed-0/tsp/round-1/train/final "
        f"has no weights (a bundle leaves them out), and 1 stage(s) need it, e.g. seed 0 / tsp / eval humaneval; "
        f"delete {train} to train it again"
    ]
    assert not any("base" in p and "no weights" in p for p in report.problems)


def test_cli_round_trip(run: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from treeplay.cli import app

    _, run_dir = run
    out = tmp_path / "cli.tar.xz"
    result = CliRunner().invoke(app, ["bundle", str(run_dir), "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "left out 2 weight file(s)" in result.output
    result = CliRunner().invoke(app, ["unbundle", str(out), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "seed-1" / "tsp" / "budget.json").read_text(encoding="utf-8"))
    result = CliRunner().invoke(app, ["unbundle", str(tmp_path / "nope.tar.xz")])
    assert result.exit_code == 2 and "not a treeplay bundle" in result.output


def test_restore_waits_for_no_run(run: tuple[Path, Path], tmp_path: Path) -> None:
    from treeplay.run_lock import hold_run_dir

    _, run_dir = run
    write_bundle(run_dir, tmp_path / "b.tar.xz")
    other = tmp_path / "busy"
    with hold_run_dir(other, "treeplay run busy.yaml"), pytest.raises(RunDirBusy, match=r"treeplay run busy\.yaml"):
        restore_bundle(tmp_path / "b.tar.xz", other)
    assert not (other / "config.yaml").exists()


# ---- treeplay run --bundle FILE: the bundle rewritten after every stage ------------------------


class Killed(Exception):
    """The session ends here (the stage that was running is lost)."""


def _run_with_bundle(config: Path, run_dir: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch,
                     kill_at: str | None = None) -> list[str]:  # fmt: skip
    """`Pipeline.run` with `--bundle` (the real driver: clock, selection, budgets), each stage's model
    work replaced by `_work`; `kill_at`: the stage during which the process dies. Returns the stages that worked."""
    import treeplay.stages as stages

    worked: list[str] = []

    def fake_run_stage(stage: Stage, archive: Path | None = None) -> dict[str, Any]:
        if stage.name == kill_at:
            raise Killed(stage.name)
        worked.append(stage.name)
        return run_stage(dataclasses.replace(stage, run=lambda: _work(stage)), archive)  # the real one

    monkeypatch.setattr(stages, "run_stage", fake_run_stage)
    Pipeline(load_config(config), run_dir, fingerprint=OLD, bundle=bundle).run()
    return worked


def test_a_run_killed_mid_way_leaves_a_bundle_of_what_finished(tmp_path: Path, shared_data: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The session ends during seed 0's TSP evaluation: the bundle holds base's eval, TSP's data and
    training (not its weights), and restored in a fresh checkout those three stages are done and
    the run goes on from the evaluation, which is not."""
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    config, run_dir, bundle = _config(tmp_path), tmp_path / "runs" / "tiny", tmp_path / "results" / "tiny.tar.xz"
    with pytest.raises(Killed):
        _run_with_bundle(config, run_dir, bundle, monkeypatch, kill_at="seed 0 / tsp / eval securityeval")
    members = _members(bundle)
    assert "seed-0/tsp/round-1/train/stage.json" in members and "seed-0/base/eval/securityeval/stage.json" in members
    assert not any(m.startswith("seed-0/tsp/eval/") or m.startswith("seed-1/") for m in members)
    assert not any(m.endswith(".safetensors") for m in members)

    fresh = tmp_path / "fresh" / "tiny"  # the next session's checkout: runs/ is gone, the bundle is not
    restore_bundle(bundle, fresh)
    planned = Pipeline(load_config(config), fresh, fingerprint=OLD).plan()
    assert [p.stage.name for p in planned if p.done] == [
        "seed 0 / base / eval securityeval", "seed 0 / tsp / round 1 / data", "seed 0 / tsp / round 1 / train"]


def test_every_stage_that_runs_rewrites_the_bundle_and_done_ones_do_not(tmp_path: Path, shared_data: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    config, run_dir, bundle = _config(tmp_path), tmp_path / "runs" / "tiny", tmp_path / "tiny.tar.xz"
    with pytest.raises(Killed):
        _run_with_bundle(config, run_dir, bundle, monkeypatch, kill_at="seed 1 / base / eval securityeval")
    capsys.readouterr()
    worked = _run_with_bundle(config, run_dir, bundle, monkeypatch)  # the resumed run
    rewrites = [line.split(" rewritten ")[1].split(" (")[0] for line in capsys.readouterr().err.splitlines()
                if line.startswith("bundle: ")]  # fmt: skip
    # seed 0's budget is written again with the same bytes: no rewrite for it
    assert rewrites == ["after seed 1 / base / eval securityeval", "after seed 1 / tsp / round 1 / data",
                        "after seed 1 / tsp / round 1 / train", "after seed 1 / tsp / eval securityeval",
                        "after the budget of seed 1 / tsp"]  # fmt: skip
    assert worked == ["seed 1 / base / eval securityeval", "seed 1 / tsp / round 1 / data",
                      "seed 1 / tsp / round 1 / train", "seed 1 / tsp / eval securityeval"]  # fmt: skip
    members = _members(bundle)
    assert {"seed-0/tsp/budget.json", "seed-1/tsp/budget.json", "seed-1/tsp/eval/securityeval/generations.jsonl",
            "seed-0/tsp/eval/securityeval/generations.jsonl"} <= members  # fmt: skip


def test_rolling_bundle_counts_its_rewrites(run: tuple[Path, Path], tmp_path: Path) -> None:
    """A stage done earlier rewrites nothing; each of 4 stages run again rewrites once."""
    from treeplay.run_bundle import RollingBundle

    config, run_dir = run
    said: list[str] = []
    bundle = RollingBundle(run_dir, tmp_path / "r.tar.xz", said.append)
    pipeline = Pipeline(load_config(config), run_dir, fingerprint=OLD)
    pipeline.load_tasks()
    walk(pipeline.steps(), bundle.stage_runner(lambda stage: stage.done_record() or {}), ArmBudget.write)
    assert bundle.written == 0 and said == []  # every stage of the fixture's run is done
    shutil.rmtree(run_dir / "seed-1")
    walk(pipeline.steps(), bundle.stage_runner(lambda stage: stage.done_record() or run_stage(
        dataclasses.replace(stage, run=lambda: _work(stage)))), ArmBudget.write)  # fmt: skip
    assert bundle.written == 4  # seed 1's base eval, TSP data, train and eval
    assert said[0].startswith(f"bundle: {tmp_path / 'r.tar.xz'} rewritten after seed 1 / base / eval securityeval (")


def test_bundle_blocker(run: tuple[Path, Path], tmp_path: Path) -> None:
    """An existing bundle not restored into the run dir would lose its results when rewritten."""
    _, run_dir = run
    bundle = tmp_path / "b.tar.xz"
    assert bundle_blocker(bundle, run_dir, "tiny.yaml") is None  # a new file
    write_bundle(run_dir, bundle)
    assert bundle_blocker(bundle, run_dir, "tiny.yaml") is None  # made from (or restored into) this run dir
    empty = tmp_path / "empty"
    assert bundle_blocker(bundle, empty, "tiny.yaml") == (
        f"tiny.yaml: --bundle {bundle}: {len(_members(bundle)) - 1} of its {len(_members(bundle)) - 1} file(s) are not "
        f"in {empty} (e.g. config.yaml), so rewriting it would drop them: `treeplay unbundle {bundle}` first, or name a new file")  # fmt: skip
    assert bundle_blocker(tmp_path / "b.zip", run_dir, "tiny.yaml") == f"tiny.yaml: --bundle {tmp_path / 'b.zip'}: a bundle is a .tar.xz file"
    (tmp_path / "junk.tar.xz").write_bytes(b"junk")
    assert "not a treeplay bundle" in str(bundle_blocker(tmp_path / "junk.tar.xz", run_dir, "tiny.yaml"))


def test_run_check_names_the_bundle_blocker(run: tuple[Path, Path], tmp_path: Path) -> None:
    config, run_dir = run
    bundle = tmp_path / "b.tar.xz"
    write_bundle(run_dir, bundle)
    report = check_run(load_config(config), tmp_path / "fresh", source="tiny.yaml", fingerprint=OLD, bundle=bundle)
    assert any(p.startswith(f"tiny.yaml: --bundle {bundle}: ") and "treeplay unbundle" in p for p in report.problems)
    report = check_run(load_config(config), run_dir, source="tiny.yaml", fingerprint=OLD, bundle=bundle)
    assert not any("--bundle" in p for p in report.problems)


def test_cli_run_check_names_the_bundle_to_unbundle_first(run: tuple[Path, Path], tmp_path: Path) -> None:
    """`treeplay run CONFIG --check --bundle FILE` in a fresh checkout that forgot `treeplay unbundle`."""
    from typer.testing import CliRunner

    from treeplay.cli import app

    config, run_dir = run
    bundle = tmp_path / "b.tar.xz"
    write_bundle(run_dir, bundle)
    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(app, ["run", str(config), "--check", "--run-dir", str(fresh), "--bundle", str(bundle)])
    assert result.exit_code == 1
    assert f"--bundle {bundle}: " in result.output and f"treeplay unbundle {bundle}" in result.output
    assert not fresh.exists()  # a check writes nothing
