"""Oracle speed: Python snippets/s for in-process vs one subprocess per snippet, batched semgrep,
process parallelism and cache hits. Ratios come from one run on this machine.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/oracle_speed.py [--n 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.analyzers.bandit_py import BanditAnalyzer

REPO = Path(__file__).resolve().parents[1]


def python_snippets(data: Path, n: int) -> list[str]:
    out: list[str] = []
    for path in sorted((data / "safecoder").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["file_name"].endswith(".py"):
                out += [row["func_src_before"], row["func_src_after"]]
    return list(dict.fromkeys(out))[:n]


def warmup_snippets(data: Path, k: int) -> list[str]:
    """SecurityEval programs: disjoint from the timed SafeCoder snippets, used only to warm pools."""
    path = data / "securityeval" / "securityeval-121.json"
    return [row["Insecure_code"] for row in json.loads(path.read_text())][:k] if path.exists() else ["x = 1\n"]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} snippets/s  ({n} in {seconds:.2f}s)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-subprocess", type=int, default=10)
    args = parser.parse_args()
    snippets = python_snippets(args.data, args.n)
    n = len(snippets)
    bin_dir = Path(sys.executable).parent

    bandit = BanditAnalyzer()
    bandit.analyze_text("x = 1\n")  # build the test set once
    t = time.perf_counter()
    for code in snippets:
        bandit.analyze_text(code)
    print("bandit in-process (one test set)        ", rate(n, time.perf_counter() - t))

    k = args.n_subprocess
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, code in enumerate(snippets[:k]):
            f = Path(tmp) / f"s{i}.py"
            f.write_text(code)
            files.append(f)
        t = time.perf_counter()
        for f in files:
            subprocess.run([str(bin_dir / "bandit"), "-q", "-f", "json", str(f)], capture_output=True, check=False)
        print("bandit, one subprocess per snippet      ", rate(k, time.perf_counter() - t))
        t = time.perf_counter()
        for f in files[:3]:
            subprocess.run([str(bin_dir / "semgrep"), "scan", "--metrics=off", "--disable-version-check", "--json",
                            "--quiet", "--config", str(REPO / "src/treeplay/oracle/rules/python.yaml"), str(f)],
                           capture_output=True, check=False)
        print("semgrep CLI, one subprocess per snippet ", rate(3, time.perf_counter() - t))

    oracle = Oracle(OracleConfig(use_cache=False))
    t = time.perf_counter()
    for code in snippets[:k]:
        oracle.judge(code, "py")
    print("judge() one at a time (bandit+semgrep)  ", rate(k, time.perf_counter() - t))
    t = time.perf_counter()
    oracle.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 1 process             ", rate(n, time.perf_counter() - t))
    oracle.close()

    parallel = Oracle(OracleConfig(use_cache=False, workers=2))
    t = time.perf_counter()
    parallel.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 2 processes (cold)    ", rate(n, time.perf_counter() - t))
    parallel.close()

    # warm: the pool and each child's analyzers were started by an earlier batch of other snippets
    warm = Oracle(OracleConfig(use_cache=False, workers=2))
    warm.judge_many([(c, "py", None) for c in warmup_snippets(args.data, 40)])
    t = time.perf_counter()
    warm.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 2 processes (warm)    ", rate(n, time.perf_counter() - t))
    warm.close()

    with tempfile.TemporaryDirectory() as tmp:
        cached = Oracle(OracleConfig(cache_path=Path(tmp) / "c.sqlite"))
        cached.judge_many([(c, "py", None) for c in snippets])
        t = time.perf_counter()
        cached.judge_many([(c, "py", None) for c in snippets])
        print("judge_many, all cache hits              ", rate(n, time.perf_counter() - t))
        cached.close()


if __name__ == "__main__":
    main()
