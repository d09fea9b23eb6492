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
        "threads": 2,
        "seeds": [0],
        "methods": ["sft", "tsp"],
        "rounds": 1,
        "data_root": str(shared_data),
        "train_tasks": {"path": "data:safecoder/sec-new-desc.train.jsonl", "language": "py", "limit": 2},
        "eval": {"benches": ["securityeval"], "limit": 2, "max_new_tokens": 24},
        "tree": {"k": 2, "depth": 1, "root_samples": 2, "max_new_tokens": 24, "max_nodes": 2, "max_branches": 6},
        "train": {"max_steps": 2, "batch_size": 2, "save_every": 1, "lora": True, "lora_r": 4, "lora_alpha": 8},
        "allow_untrained": True,  # 2 tasks may give TSP no pair: then it must be reported untrained
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    load_config(path)
    run_dir = run_pipeline(path, tmp_path / "run")

    base = json.loads((run_dir / "seed-0/base/eval/securityeval/metrics.json").read_text())
    tsp = json.loads((run_dir / "seed-0/tsp/eval/securityeval/metrics.json").read_text())
    sft = json.loads((run_dir / "seed-0/sft/eval/securityeval/metrics.json").read_text())
    assert base["tasks_evaluated"] == 2 and tsp["tasks_evaluated"] == 2
    assert base["settings"]["model_id"] == "embedded"
    assert sft["settings"]["model_id"] != "embedded"  # the trained model, not the base under SFT's name
    generations = (run_dir / "seed-0/tsp/eval/securityeval/generations.jsonl").read_text().splitlines()
    assert len(generations) == 2
    trees = (run_dir / "seed-0/tsp/round-1/data/trees.jsonl").read_text().splitlines()
    assert len(trees) == 2
    assert json.loads((run_dir / "seed-0/sft/budget.json").read_text())["optimizer_steps"] == 2
    tsp_budget = json.loads((run_dir / "seed-0/tsp/budget.json").read_text())
    report = (run_dir / "report.md").read_text()
    if tsp_budget["untrained"]:  # zero pairs: evaluated as the base model and said so in the report
        assert tsp_budget["optimizer_steps"] == 0 and tsp["settings"]["model_id"] == "embedded"
        assert "seed 0 / tsp: UNTRAINED" in report
    else:
        assert tsp_budget["optimizer_steps"] == 2 and tsp["settings"]["model_id"] != "embedded"
        assert "UNTRAINED" not in report
    assert (run_dir / "report.html").exists()

    # A rerun skips every finished stage: nothing is rebuilt or duplicated.
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.rglob("stage.json")}
    run_pipeline(path, tmp_path / "run")
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("stage.json")} == stamps
    assert len((run_dir / "seed-0/tsp/round-1/data/trees.jsonl").read_text().splitlines()) == 2
