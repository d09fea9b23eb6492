"""The whole pipeline on 2 tasks with tiny budgets: real model, real oracle, real training."""

import json

import pytest
import yaml

from treeplay.pipeline import load_config, run_pipeline


@pytest.mark.slow
def test_pipeline_end_to_end_and_resume(shared_data, tmp_path):
    config = {
        "name": "e2e",
        "model": "embedded",
        "threads": 1,
        "seeds": [0],
        "methods": ["sft", "tsp"],
        "rounds": 1,
        "data_root": str(shared_data),
        "train_tasks": {"path": "data:safecoder/sec-new-desc.train.jsonl", "language": "py", "limit": 2},
        "eval": {"benches": ["securityeval"], "limit": 2, "max_new_tokens": 24},
        "tree": {"k": 2, "depth": 1, "root_samples": 2, "max_new_tokens": 24, "max_nodes": 2, "max_branches": 6},
        "train": {"max_steps": 2, "batch_size": 2, "save_every": 1},
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    load_config(path)
    run_dir = run_pipeline(path, tmp_path / "run")

    base = json.loads((run_dir / "seed-0/base/eval/securityeval/metrics.json").read_text())
    tsp = json.loads((run_dir / "seed-0/tsp/eval/securityeval/metrics.json").read_text())
    assert base and tsp
    generations = (run_dir / "seed-0/tsp/eval/securityeval/generations.jsonl").read_text().splitlines()
    assert len(generations) == 2
    trees = (run_dir / "seed-0/tsp/round-1/data/trees.jsonl").read_text().splitlines()
    assert len(trees) == 2
    for method in ("sft", "tsp"):
        budget = json.loads((run_dir / f"seed-0/{method}/budget.json").read_text())
        assert budget["optimizer_steps"] in (0, 2)
    assert json.loads((run_dir / "seed-0/sft/budget.json").read_text())["optimizer_steps"] == 2
    assert (run_dir / "report.md").exists() and (run_dir / "report.html").exists()

    # A rerun skips every finished stage: nothing is rebuilt or duplicated.
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("stage.json")}
    run_pipeline(path, tmp_path / "run")
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("stage.json")} == stamps
    assert len((run_dir / "seed-0/tsp/round-1/data/trees.jsonl").read_text().splitlines()) == 2
