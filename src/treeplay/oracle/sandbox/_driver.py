"""Runs inside the sandbox (standalone: no treeplay imports): compile + test each candidate in turn.

Usage: python _treeplay_driver.py plan.json

plan.json = {"candidates": [{"dir": "c0", "compile": [argv] | null, "test": [argv],
             "timeout_s": 30.0}, ...]}

For every candidate it writes `<dir>/_treeplay_result.json` with the compile/test exit codes,
whether the candidate's time ran out, and the duration; the test output goes to
`<dir>/_treeplay_output.txt`. Between candidates every other process of the sandbox uid is killed
so nothing a candidate left behind can touch the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any


def _run_step(argv: list[str], cwd: str, deadline: float, log_path: str) -> tuple[int | None, bool]:
    """Run one step with output to `log_path`; returns (exit code, timed_out)."""
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.write(f"cannot start {argv[0]}: {exc}\n".encode())
            return 127, False
        try:
            return proc.wait(timeout=max(0.05, deadline - time.monotonic())), False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
            return None, True


def _kill_leftovers() -> None:
    """Kill every process of this uid except ourselves (we are alone in our pid namespace)."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass


def run_candidate(spec: dict[str, Any]) -> dict[str, Any]:
    cwd = os.path.abspath(spec["dir"])
    log_path = os.path.join(cwd, "_treeplay_output.txt")
    start = time.monotonic()
    deadline = start + float(spec["timeout_s"])
    result: dict[str, Any] = {"compile_rc": None, "test_rc": None, "timed_out": False, "stage": "test"}
    if spec.get("compile"):
        os.makedirs(os.path.join(cwd, "compiled"), exist_ok=True)
        rc, timed_out = _run_step(spec["compile"], cwd, deadline, log_path)
        result.update(compile_rc=rc, timed_out=timed_out)
        if timed_out or rc != 0:
            result["stage"] = "compile"
            result["duration_s"] = time.monotonic() - start
            return result
    rc, timed_out = _run_step(spec["test"], cwd, deadline, log_path)
    result.update(test_rc=rc, timed_out=timed_out, duration_s=time.monotonic() - start)
    return result


def main() -> int:
    # Values naming "{workdir}" (e.g. GOCACHE in the unshare fallback) point into our work dir.
    for key, value in list(os.environ.items()):
        if "{workdir}" in value:
            os.environ[key] = value.replace("{workdir}", os.getcwd())
    with open(sys.argv[1], encoding="utf-8") as fh:
        plan = json.load(fh)
    for spec in plan["candidates"]:
        result = run_candidate(spec)
        _kill_leftovers()
        with open(os.path.join(spec["dir"], "_treeplay_result.json"), "w", encoding="utf-8") as fh:
            json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
