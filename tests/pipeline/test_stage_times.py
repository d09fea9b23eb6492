"""The time key of each stage: what its wall time is comparable to (written by hand per stage)."""

from __future__ import annotations

import json

import yaml

from treeplay.pipeline import Pipeline, load_config
from treeplay.stage_times import stage_keys

CONFIG = {
    "name": "keys",
    "model": "embedded",
    "seeds": [0],
    "methods": ["sft", "tsp", "selfplay"],
    "rounds": 1,
    "train_tasks": {"path": "data:safecoder/sec-new-desc.train.jsonl", "language": "py", "limit": 2},
    "eval": {"benches": ["securityeval"], "limit": 2, "n": 1, "max_new_tokens": 128},
    "tree": {"k": 4, "depth": 1, "root_samples": 4, "max_nodes": 2, "max_branches": 8, "max_new_tokens": 64},
    "variants": {"tsp-dpo": {"method": "tsp", "train": {"sft_alpha": 0.0}},
                 "tsp-sibling": {"method": "tsp", "pair_mode": "sibling"}},
    "report": False,
}  # fmt: skip


def test_keys_say_where_each_data_stage_gets_its_trees(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(CONFIG))), encoding="utf-8")
    config = load_config(path)
    planned = Pipeline(config, tmp_path / "run", fingerprint="0123456789abcdef").plan()
    methods = {arm.name: arm.method for arm in config.arms()}
    keys = dict(zip([p.stage.name for p in planned], stage_keys(planned, methods), strict=True))
    assert keys == {
        "seed 0 / base / eval securityeval": ("eval", "securityeval"),
        "seed 0 / tsp / round 1 / data": ("data", "tsp", "sampled"),
        "seed 0 / tsp / round 1 / train": ("train", "tsp"),
        "seed 0 / tsp / eval securityeval": ("eval", "securityeval"),
        "seed 0 / sft / round 1 / data": ("data", "sft", "golden"),
        "seed 0 / sft / round 1 / train": ("train", "sft"),
        "seed 0 / sft / eval securityeval": ("eval", "securityeval"),
        "seed 0 / selfplay / round 1 / data": ("data", "selfplay", "sampled"),
        "seed 0 / selfplay / round 1 / train": ("train", "selfplay"),
        "seed 0 / selfplay / eval securityeval": ("eval", "securityeval"),
        "seed 0 / tsp-dpo / round 1 / data": ("data", "tsp", "copied"),
        "seed 0 / tsp-dpo / round 1 / train": ("train", "tsp"),
        "seed 0 / tsp-dpo / eval securityeval": ("eval", "securityeval"),
        "seed 0 / tsp-sibling / round 1 / data": ("data", "tsp", "reused"),
        "seed 0 / tsp-sibling / round 1 / train": ("train", "tsp"),
        "seed 0 / tsp-sibling / eval securityeval": ("eval", "securityeval"),
    }
