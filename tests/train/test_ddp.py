from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"


@pytest.mark.slow
def test_two_process_ddp_run_shards_batches_and_checkpoints(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(WORKER), str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["pairs_per_step"] == 8  # 2 pairs x 2 accumulation x 2 processes
    ckpt = tmp_path / "run" / "checkpoints" / "step-0000004"
    assert (ckpt / "random_states_0.pkl").exists() and (ckpt / "random_states_1.pkl").exists()
    refs = (tmp_path / "run" / "reference_logprobs.jsonl").read_text().splitlines()
    assert len(refs) == 6  # written once, by the main process
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
