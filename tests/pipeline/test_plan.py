"""issue 15: the pipeline yields its stages; `plan` (and `treeplay run --check`) walks them without
running anything and says which are done. The run dir here is real: written by the real stage
machinery (`run_stage`, `stage.json`, `budget.json`) with the model work replaced by fixed records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from treeplay.pipeline import Pipeline, load_config
from treeplay.stages import ArmBudget, Selection, Stage, run_stage, walk

FINGERPRINT = "0123456789abcdef"
CONFIG = {
    "name": "tiny",
    "model": "embedded",
    "seeds": [0],
    "methods": ["sft", "tsp"],
    "rounds": 2,
    "train_tasks": {"path": "data:safecoder/sec-new-desc.train.jsonl", "language": "py", "limit": 2},
    "eval": {"benches": ["securityeval"], "limit": 2, "n": 1, "max_new_tokens": 128},
    "tree": {"k": 4, "depth": 1, "root_samples": 4, "max_nodes": 2, "max_branches": 8, "max_new_tokens": 64},
    "report": False,
}
# the stages of CONFIG in run order, written out by hand from Algorithm 1
ALL_STAGES = [
    "seed 0 / base / eval securityeval",
    "seed 0 / sft / round 1 / data", "seed 0 / sft / round 1 / train",
    "seed 0 / sft / round 2 / data", "seed 0 / sft / round 2 / train",
    "seed 0 / sft / eval securityeval",
    "seed 0 / tsp / round 1 / data", "seed 0 / tsp / round 1 / train",
    "seed 0 / tsp / round 2 / data", "seed 0 / tsp / round 2 / train",
    "seed 0 / tsp / eval securityeval",
]  # fmt: skip


def _config(tmp_path: Path, **eval_overrides: Any) -> Path:
    raw = json.loads(json.dumps(CONFIG))
    raw["eval"].update(eval_overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _fake_record(stage: Stage) -> dict[str, Any]:
    if stage.kind == "data":
        return {"pairs": 3, "pairs_by_mode": {"sibling": 3}}
    if stage.kind == "train":
        return {"final_model_dir": str(stage.directory / "final"), "steps": 2, "tokens": 10}
    return {"tasks": 2}


def _fake_run(pipeline: Pipeline) -> list[str]:
    """Run every stage through the real machinery with the model work replaced; the names run."""
    ran: list[str] = []

    def on_stage(stage: Stage) -> dict[str, Any]:
        if stage.done_record() is None:
            ran.append(stage.name)
        return run_stage(dataclasses.replace(stage, run=lambda: _fake_record(stage)))

    pipeline.load_tasks()
    walk(pipeline.steps(), on_stage, ArmBudget.write)
    return ran


@pytest.fixture
def finished_run(tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    run_dir = tmp_path / "run"
    assert _fake_run(Pipeline(load_config(_config(tmp_path)), run_dir, fingerprint=FINGERPRINT)) == ALL_STAGES
    return run_dir


def _pending(tmp_path: Path, run_dir: Path, **eval_overrides: Any) -> list[str]:
    pipeline = Pipeline(load_config(_config(tmp_path, **eval_overrides)), run_dir, fingerprint=FINGERPRINT)
    return [p.stage.name for p in pipeline.plan() if not p.done]


def test_plan_of_a_fresh_run_dir_lists_every_stage_and_writes_nothing(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    run_dir = tmp_path / "run"
    assert _pending(tmp_path, run_dir) == ALL_STAGES
    assert not run_dir.exists()


def test_a_finished_run_is_all_done_and_a_rerun_runs_nothing(tmp_path, finished_run):
    assert _pending(tmp_path, finished_run) == []
    budget = json.loads((finished_run / "seed-0" / "tsp" / "budget.json").read_text())
    assert budget["optimizer_steps"] == 4 and budget["pairs"] == 6 and budget["pairs_by_mode"] == {"sibling": 6}
    assert budget["final_model"] == str(finished_run / "seed-0" / "tsp" / "round-2" / "train" / "final")
    assert _fake_run(Pipeline(load_config(_config(tmp_path)), finished_run, fingerprint=FINGERPRINT)) == []


def test_plan_names_exactly_the_stages_whose_inputs_changed(tmp_path, finished_run):
    (finished_run / "seed-0" / "tsp" / "round-2" / "train" / "stage.json").unlink()
    # the eval hash follows the train stage's inputs, not its output: only the train stage reruns
    assert _pending(tmp_path, finished_run) == ["seed 0 / tsp / round 2 / train"]
    assert _pending(tmp_path, finished_run, temperature=0.8) == [
        "seed 0 / base / eval securityeval", "seed 0 / sft / eval securityeval",
        "seed 0 / tsp / round 2 / train", "seed 0 / tsp / eval securityeval"]  # fmt: skip
    # the oracle is in every data and eval hash, and each train hash follows its data stage
    other = Pipeline(load_config(_config(tmp_path)), finished_run, fingerprint="another-oracle")
    assert [p.stage.name for p in other.plan() if not p.done] == ALL_STAGES


def test_placeholder_models_give_the_hashes_the_run_records(tmp_path, finished_run):
    """Planned on an empty dir (no model trained yet), every stage has the hash the run wrote."""
    planned = Pipeline(load_config(_config(tmp_path)), tmp_path / "empty", fingerprint=FINGERPRINT).plan()
    recorded = [json.loads((finished_run / p.stage.directory.relative_to(tmp_path / "empty") / "stage.json")
                           .read_text())["inputs_hash"] for p in planned]  # fmt: skip
    assert [p.stage.inputs_hash for p in planned] == recorded and not any(p.done for p in planned)
    train = next(p.stage for p in planned if p.stage.name == "seed 0 / sft / round 1 / train")
    assert train.placeholder == {"final_model_dir": "<model of seed 0 / sft / round 1, not trained yet>"}


def test_check_counts_done_stages_and_estimates_the_rest_only(tmp_path, finished_run, monkeypatch):
    from treeplay.run_check import check_run

    (finished_run / "seed-0" / "tsp" / "round-2" / "data" / "stage.json").unlink()
    config = load_config(_config(tmp_path, temperature=0.8))
    report = check_run(config, finished_run, source="tiny.yaml", fingerprint=FINGERPRINT)
    assert "run dir: 7 of 11 stages done (inputs unchanged: skipped), 4 to run" in report.plan
    assert report.to_run == ["seed 0 / base / eval securityeval", "seed 0 / sft / eval securityeval",
                             "seed 0 / tsp / round 2 / data", "seed 0 / tsp / eval securityeval"]  # fmt: skip
    # to run: tsp round 2 trees (2 tasks x min(8, 4 + 4 x 2) branches x 64 tokens = 1024) and three
    # evaluations of 2 tasks x n=1 x 128 tokens (768): 1792 tokens, 1.5 min at 20 tok/s
    assert report.plan[-1].startswith("estimate (stages to run): <= 1792 generated tokens, ~2 min of sampling")
    # the three evaluations finished at T = 0.2: redone at 0.8, their results kept aside
    assert report.plan[2] == (f"note: 3 finished stage(s) have other inputs now and will be redone; their results "
                              f"move to {finished_run / 'superseded'}/<old inputs hash>/ (nothing is deleted)")
    assert "\nstages to run:\n  seed 0 / base / eval securityeval\n" in report.render()


def test_run_on_a_finished_run_dir_skips_every_stage(tmp_path, finished_run):
    import io

    from rich.console import Console

    out = io.StringIO()
    budget = finished_run / "seed-0" / "sft" / "budget.json"
    before = budget.read_text()
    Pipeline(load_config(_config(tmp_path)), finished_run, console=Console(file=out, width=200),
             fingerprint=FINGERPRINT).run()  # fmt: skip
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert lines == [f"[{i}/11] {name}: done earlier, skipped" for i, name in enumerate(ALL_STAGES, 1)]
    assert "11 of 11 stages done earlier, 0 to run" in out.getvalue()
    assert budget.read_text() == before


def test_selfplay_samples_whole_programs_with_its_own_token_budget(tmp_path, shared_data, monkeypatch):
    """`selfplay.max_new_tokens` is the whole-sequence baseline's per-sample budget (the tree's
    branches stay short); it reaches the tree config, the data stage's hash and the estimate."""
    from treeplay.run_check import check_run

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    raw = json.loads(json.dumps(CONFIG))
    raw.update(methods=["selfplay", "tsp"], rounds=1, selfplay={"root_samples": 4, "max_new_tokens": 192})
    path = tmp_path / "sp.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    pipeline = Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT)
    arms = {a.name: a for a in pipeline.config.arms()}
    selfplay, tsp = pipeline.stages.tree_config(arms["selfplay"]), pipeline.stages.tree_config(arms["tsp"])
    assert (selfplay.root_samples, selfplay.max_branches, selfplay.max_nodes, selfplay.max_new_tokens) == (4, 4, 1, 192)
    assert (tsp.root_samples, tsp.max_branches, tsp.max_new_tokens) == (4, 8, 64)
    report = check_run(pipeline.config, tmp_path / "empty", source="sp.yaml", fingerprint=FINGERPRINT)
    # self-play: 2 tasks x 4 samples x 192 tokens = 1536; tsp: 2 tasks x min(8, 4 + 4 x 2) x 64 = 1024;
    # three evaluations (base, selfplay, tsp) of 2 tasks x 128 tokens = 768: 3328 tokens
    assert "data: up to 24 sampled branches in the data stages to run" in report.plan
    assert report.plan[-1].startswith("estimate (stages to run): <= 3328 generated tokens")
    raw["selfplay"]["max_new_tokens"] = 160
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    other = Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT)
    data = [s for s in (pipeline.plan(), other.plan())]
    first = next(p.stage for p in data[0] if p.stage.name == "seed 0 / selfplay / round 1 / data")
    second = next(p.stage for p in data[1] if p.stage.name == "seed 0 / selfplay / round 1 / data")
    assert first.inputs_hash != second.inputs_hash


def test_check_counts_no_sampling_for_arms_that_reuse_trees(tmp_path, shared_data, monkeypatch):
    """tsp-dpo has tsp's data inputs (its data is copied); tsp-sibling has other pairs from the same
    trees (its trees are reused): only tsp's trees are sampled."""
    from treeplay.run_check import check_run

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    raw = json.loads(json.dumps(CONFIG))
    raw.update(methods=["tsp"], rounds=1, variants={
        "tsp-dpo": {"method": "tsp", "train": {"sft_alpha": 0.0}},
        "tsp-sibling": {"method": "tsp", "pair_mode": "sibling"},
        "tsp-oracle-nodes": {"method": "tsp", "tree": {"strategies": "oracle"}},
    })  # fmt: skip
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    report = check_run(load_config(path), tmp_path / "empty", source="v.yaml", fingerprint=FINGERPRINT)
    # tsp and tsp-oracle-nodes sample: 2 x 2 tasks x min(8, 4 + 4 x 2) branches = 32 branches x 64 tokens
    # = 2048; five evaluations (base and four arms) of 2 tasks x 128 tokens = 1280: 3328 tokens
    assert ("data: up to 32 sampled branches in the data stages to run; 1 copied from another arm; "
            "1 reuse another arm's trees") in report.plan
    assert report.plan[-1].startswith("estimate (stages to run): <= 3328 generated tokens")


def test_check_counts_a_copied_round_one_model_as_no_training(tmp_path, shared_data, monkeypatch):
    """tsp-2rounds is tsp with a second round: its round 1 (data and model) is tsp's, copied; only its
    round 2 samples trees and trains."""
    from treeplay.run_check import check_run

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    raw = json.loads(json.dumps(CONFIG))
    raw.update(methods=["tsp"], rounds=1, train={"max_steps": 8},
               variants={"tsp-2rounds": {"method": "tsp", "rounds": 2}})  # fmt: skip
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    report = check_run(load_config(path), tmp_path / "empty", source="r.yaml", fingerprint=FINGERPRINT)
    # tsp's round 1 and tsp-2rounds' round 2 sample: 2 x 2 tasks x min(8, 4 + 4 x 2) branches = 32
    assert "data: up to 32 sampled branches in the data stages to run; 1 copied from another arm" in report.plan
    assert (
        "train: 3 stage(s) to run (1 copied from another arm), 8 optimizer steps each (variants may override)"
        in report.plan
    )


@pytest.fixture
def fake_model_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Pipeline.run` with the real stage machinery and the model work replaced by fixed records."""
    from treeplay import stages

    real = stages.run_stage
    monkeypatch.setattr(stages, "run_stage", lambda stage, archive=None: real(
        dataclasses.replace(stage, run=lambda: _fake_record(stage)), archive))  # fmt: skip


def test_only_runs_the_named_arms_and_leaves_the_others(tmp_path, shared_data, monkeypatch, fake_model_work):
    import io

    from rich.console import Console

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    out = io.StringIO()
    run_dir = tmp_path / "run"
    Pipeline(load_config(_config(tmp_path)), run_dir, console=Console(file=out, width=200), fingerprint=FINGERPRINT,
             select=Selection.of(["tsp"])).run()  # fmt: skip
    lines = [line.split(" (elapsed")[0] for line in out.getvalue().splitlines() if line.startswith("[")]
    tsp = [name for name in ALL_STAGES if "/ tsp /" in name]
    assert lines == [f"[{i}/5] {name}" for i, name in enumerate(tsp, 1)]
    assert not (run_dir / "seed-0" / "base").exists() and not (run_dir / "seed-0" / "sft").exists()
    assert json.loads((run_dir / "seed-0" / "tsp" / "budget.json").read_text())["optimizer_steps"] == 4
    # the rest of the run later: only base and sft run, tsp is done
    rest = [p.stage.name for p in Pipeline(load_config(_config(tmp_path)), run_dir, fingerprint=FINGERPRINT).plan()
            if not p.done]  # fmt: skip
    assert rest == [name for name in ALL_STAGES if "/ tsp /" not in name]


def test_only_names_an_unknown_arm(tmp_path, shared_data, monkeypatch, fake_model_work):
    from treeplay.pipeline import ConfigError

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    with pytest.raises(ConfigError, match=r"--only: no arm tps in this run \(its arms: base, sft, tsp\)"):
        Pipeline(load_config(_config(tmp_path)), tmp_path / "run", fingerprint=FINGERPRINT, select=Selection.of(["tps"])).run()
    assert not (tmp_path / "run" / "seed-0").exists()


def test_only_refuses_an_arm_whose_shared_trees_are_not_sampled_yet(tmp_path, shared_data, monkeypatch, fake_model_work):
    """tsp-sibling trains on tsp's trees: alone, it would sample trees of its own."""
    from treeplay.pipeline import ConfigError

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    raw = json.loads(json.dumps(CONFIG))
    raw.update(methods=["tsp"], rounds=1, variants={"tsp-sibling": {"method": "tsp", "pair_mode": "sibling"}})
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"--only tsp-sibling: seed 0 / tsp-sibling / round 1 / data reuses the "
                                          r"trees of seed 0 / tsp / round 1 / data, which is not done: add --only tsp"):  # fmt: skip
        Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT, select=Selection.of(["tsp-sibling"])).run()
    # with tsp's trees done, tsp-sibling alone may run
    Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT, select=Selection.of(["tsp", "base"])).run()
    Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT, select=Selection.of(["tsp-sibling"])).run()
    assert (tmp_path / "run" / "seed-0" / "tsp-sibling" / "budget.json").is_file()


def test_check_with_only_lists_only_those_arms_stages(tmp_path, shared_data, monkeypatch):
    from treeplay.run_check import check_run

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    config = load_config(_config(tmp_path))
    report = check_run(config, tmp_path / "empty", source="tiny.yaml", fingerprint=FINGERPRINT, select=Selection.of(["sft"]))
    assert report.to_run == [name for name in ALL_STAGES if "/ sft /" in name]
    # an empty run dir: nothing is done; 6 stages of the other arms are neither done nor run
    assert report.plan[1] == "run dir: 0 of 11 stages done (inputs unchanged: skipped), 6 not done and not run (--only sft), 5 to run"
    report = check_run(config, tmp_path / "empty", source="tiny.yaml", fingerprint=FINGERPRINT, select=Selection.of(["bse"]))
    assert "tiny.yaml: --only: no arm bse in this run (its arms: base, sft, tsp)" in report.problems


def _two_seeds(tmp_path: Path, **changes: Any) -> Path:
    raw = json.loads(json.dumps(CONFIG))
    raw.update(seeds=[0, 1], methods=["tsp"], rounds=1, **changes)
    path = tmp_path / "seeds.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_seed_runs_only_that_seeds_stages(tmp_path, shared_data, monkeypatch, fake_model_work):
    """`--seed 1` runs seed 1's stages of every arm; `--only tsp --seed 0` then seed 0's tsp alone."""
    import io

    from rich.console import Console

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    run_dir = tmp_path / "run"
    out = io.StringIO()
    Pipeline(load_config(_two_seeds(tmp_path)), run_dir, console=Console(file=out, width=200), fingerprint=FINGERPRINT,
             select=Selection.of(seeds=[1])).run()  # fmt: skip
    lines = [line.split(" (elapsed")[0] for line in out.getvalue().splitlines() if line.startswith("[")]
    assert lines == ["[1/4] seed 1 / base / eval securityeval", "[2/4] seed 1 / tsp / round 1 / data",
                     "[3/4] seed 1 / tsp / round 1 / train", "[4/4] seed 1 / tsp / eval securityeval"]
    assert "only --seed 1: the other stages are not run" in out.getvalue()
    assert not (run_dir / "seed-0").exists()
    assert (run_dir / "seed-1" / "tsp" / "budget.json").is_file()
    out = io.StringIO()
    Pipeline(load_config(_two_seeds(tmp_path)), run_dir, console=Console(file=out, width=200), fingerprint=FINGERPRINT,
             select=Selection.of(["tsp"], [0])).run()  # fmt: skip
    lines = [line.split(" (elapsed")[0] for line in out.getvalue().splitlines() if line.startswith("[")]
    assert lines == ["[1/3] seed 0 / tsp / round 1 / data", "[2/3] seed 0 / tsp / round 1 / train",
                     "[3/3] seed 0 / tsp / eval securityeval"]
    assert not (run_dir / "seed-0" / "base").exists()
    rest = [p.stage.name for p in Pipeline(load_config(_two_seeds(tmp_path)), run_dir, fingerprint=FINGERPRINT).plan()
            if not p.done]  # fmt: skip
    assert rest == ["seed 0 / base / eval securityeval"]


def test_seed_names_a_seed_outside_the_run(tmp_path, shared_data, monkeypatch, fake_model_work):
    from treeplay.pipeline import ConfigError
    from treeplay.run_check import check_run

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    path = _two_seeds(tmp_path)
    with pytest.raises(ConfigError, match=r"--seed: no seed 2 in this run \(its seeds: 0, 1\)"):
        Pipeline(load_config(path), tmp_path / "run", fingerprint=FINGERPRINT, select=Selection.of(seeds=[2])).run()
    assert not (tmp_path / "run" / "seed-0").exists() and not (tmp_path / "run" / "seed-1").exists()
    report = check_run(load_config(path), tmp_path / "empty", source="seeds.yaml", fingerprint=FINGERPRINT,
                       select=Selection.of(["tsp"], [1]))  # fmt: skip
    assert report.to_run == ["seed 1 / tsp / round 1 / data", "seed 1 / tsp / round 1 / train",
                             "seed 1 / tsp / eval securityeval"]
    assert report.plan[1].endswith(", 5 not done and not run (--only tsp --seed 1), 3 to run")


def test_seed_lets_a_sibling_arm_reuse_the_trees_done_for_that_seed(tmp_path, shared_data, monkeypatch,
                                                                   fake_model_work):  # fmt: skip
    """Seed 0's tsp trees done, seed 1's not: tsp-sibling may run for seed 0 but not for both seeds."""
    from treeplay.pipeline import ConfigError

    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    path = _two_seeds(tmp_path, variants={"tsp-sibling": {"method": "tsp", "pair_mode": "sibling"}})
    run_dir = tmp_path / "run"
    Pipeline(load_config(path), run_dir, fingerprint=FINGERPRINT, select=Selection.of(["tsp"], [0])).run()
    with pytest.raises(ConfigError, match=r"seed 1 / tsp-sibling / round 1 / data reuses the trees of "
                                          r"seed 1 / tsp / round 1 / data, which is not done"):  # fmt: skip
        Pipeline(load_config(path), run_dir, fingerprint=FINGERPRINT, select=Selection.of(["tsp-sibling"])).run()
    assert not (run_dir / "seed-0" / "tsp-sibling").exists()
    Pipeline(load_config(path), run_dir, fingerprint=FINGERPRINT, select=Selection.of(["tsp-sibling"], [0])).run()
    assert (run_dir / "seed-0" / "tsp-sibling" / "budget.json").is_file()
    assert not (run_dir / "seed-1").exists()


def _set_wall(run_dir: Path, walls: dict[str, float]) -> None:
    for where, wall in walls.items():
        path = run_dir / where / "stage.json"
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "wall_s": wall}))


def test_time_of_the_stages_to_run_is_the_median_of_finished_ones_of_their_kind(tmp_path, finished_run,
                                                                               fake_model_work):  # fmt: skip
    """--check and the run's ETA time a stage by the finished stages of its kind in this run dir."""
    import io

    from rich.console import Console

    from treeplay.run_check import check_run

    _set_wall(finished_run, {"seed-0/tsp/round-1/train": 100, "seed-0/sft/round-1/train": 5000,
                             "seed-0/base/eval/securityeval": 50, "seed-0/sft/eval/securityeval": 70,
                             "seed-0/tsp/round-1/data": 4000})  # fmt: skip
    for where in ("seed-0/tsp/round-2/train", "seed-0/tsp/eval/securityeval"):
        (finished_run / where / "stage.json").unlink()
    report = check_run(load_config(_config(tmp_path)), finished_run, source="tiny.yaml", fingerprint=FINGERPRINT)
    # tsp train: 100 s (sft's train is another kind); eval securityeval: median(50, 70) = 60 s
    assert report.plan[-2] == ("time: ~3 min for 2 of the 2 stages to run, at the median wall time of this run's "
                               "finished stages of their kind")  # fmt: skip
    out = io.StringIO()
    Pipeline(load_config(_config(tmp_path)), finished_run, console=Console(file=out, width=200),
             fingerprint=FINGERPRINT).run()  # fmt: skip
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[") and "skipped" not in line]
    assert lines == ["[10/11] seed 0 / tsp / round 2 / train (elapsed 0s, ETA ~3 min)",
                     "[11/11] seed 0 / tsp / eval securityeval (elapsed 0s, ETA ~1 min)"]


def test_time_leaves_out_kinds_not_finished_yet(tmp_path, finished_run):
    from treeplay.run_check import check_run

    _set_wall(finished_run, {"seed-0/base/eval/securityeval": 100, "seed-0/tsp/eval/securityeval": 140})
    for where in ("seed-0/sft/eval/securityeval", "seed-0/tsp/round-1/data", "seed-0/tsp/round-2/data"):
        (finished_run / where / "stage.json").unlink()
    report = check_run(load_config(_config(tmp_path)), finished_run, source="tiny.yaml", fingerprint=FINGERPRINT)
    # tsp's two data stages sample trees and none finished here; the sft eval: median(100, 140) = 120 s
    assert report.plan[-2] == ("time: ~2 min for 1 of the 3 stages to run, at the median wall time of this run's "
                               "finished stages of their kind; 2 of a kind not finished here yet (see the estimate)")
