"""Overhead of the sandbox: one Python task's pytest run, sandboxed vs unsandboxed, measured in one run.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/sandbox_overhead.py [--repeats 10]

Both sides run the same thing: the fixture task cwe_020_0 (5 parametrized tests) with its reference
solution, pytest in a fresh process with the same plugin. "unsandboxed" = plain subprocess in a temp
dir; "sandboxed" = `run_task_tests` (bwrap + prlimit + uid drop + the in-sandbox driver). Also
reports the per-candidate cost when 8 candidates share one sandbox start (`run_candidates`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from treeplay.oracle.sandbox import default_sandbox, run_candidates, run_task_tests, task_from_file

ROOT = Path(__file__).resolve().parents[1]
TASK_FILE = ROOT / "tests/fixtures/cweval/benchmark/core/py/cwe_020_0_task.py"
PLUGIN = ROOT / "src/treeplay/oracle/sandbox/_pytest_plugin.py"


def unsandboxed_run(code: str, test_file: Path) -> float:
    work = Path(tempfile.mkdtemp(prefix="treeplay-bench-"))
    try:
        start = time.perf_counter()
        (work / test_file.name).write_bytes(test_file.read_bytes())
        (work / TASK_FILE.name).write_text(code)
        (work / "conftest.py").write_text(PLUGIN.read_text())
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "TREEPLAY_REPORT": "_treeplay_report.jsonl"}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
             "--rootdir=.", test_file.name],
            cwd=work, env=env, capture_output=True, timeout=60,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"unsandboxed run failed:\n{proc.stdout.decode()}{proc.stderr.decode()}")
        return elapsed
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    task = task_from_file(TASK_FILE)
    code = task.golden_solution or ""
    box = default_sandbox()
    box.ensure_network_isolated()
    run_task_tests(task, code)  # warm caches on both paths
    unsandboxed_run(code, Path(task.tests or ""))

    plain, boxed = [], []
    for _ in range(args.repeats):  # interleaved so machine load hits both sides alike
        plain.append(unsandboxed_run(code, Path(task.tests or "")))
        start = time.perf_counter()
        result = run_task_tests(task, code)
        boxed.append(time.perf_counter() - start)
        if not (result.outcome == "ok" and result.functional_pass and result.security_pass):
            raise SystemExit(f"sandboxed run failed: {result}")
    start = time.perf_counter()
    batch = run_candidates(task, [code] * 8)
    batch_per_candidate = (time.perf_counter() - start) / 8
    assert all(r.functional_pass for r in batch)

    p, b = statistics.median(plain), statistics.median(boxed)
    print(f"backend={box.backend} cores={os.cpu_count()} repeats={args.repeats}")
    print(f"unsandboxed pytest run      median {p * 1000:7.1f} ms")
    print(f"sandboxed run_task_tests    median {b * 1000:7.1f} ms")
    print(f"overhead ratio (sandboxed / unsandboxed): {b / p:.2f}x  (+{(b - p) * 1000:.0f} ms per run)")
    print(f"batched: 8 candidates in one sandbox start: {batch_per_candidate * 1000:.1f} ms per candidate "
          f"({batch_per_candidate / p:.2f}x unsandboxed)")


if __name__ == "__main__":
    main()
