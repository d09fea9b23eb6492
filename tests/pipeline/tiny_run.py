"""The one-task, one-bench run config the pipeline tests drive with fake stage work (bundle, rekey,
reuse), and the oracle fingerprint they key stages with (not the installed oracle's)."""

from __future__ import annotations

from typing import Any

OLD = "0ld0rac1e0000000"  # the fingerprint of the oracle the fake runs are judged with
TINY_CONFIG: dict[str, Any] = {
    "name": "tiny",
    "model": "embedded",
    "seeds": [0],
    "methods": ["tsp"],
    "rounds": 1,
    "train_tasks": {"path": "data:safecoder/sec-new-desc.train.jsonl", "language": "py", "limit": 1},
    "eval": {"benches": ["securityeval"], "limit": 1, "n": 1, "max_new_tokens": 64},
    "report": False,
}
