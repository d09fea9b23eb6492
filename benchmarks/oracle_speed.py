"""Oracle speed: Python snippets/s for in-process vs one subprocess per snippet, batched semgrep,
process parallelism and cache hits. Ratios come from one run on this machine.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/oracle_speed.py [--n 200]

Besides wall time, every line reports the CPU seconds the measured code used (this process, its
pool workers and every analyzer subprocess they started), so a run on a busy machine still says
what the oracle costs: wall-clock rates under load are lower bounds, the CPU-based estimate for two
idle cores is what the same work needs when nothing else runs (`cpu_clock` below).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.analyzers.bandit_py import BanditAnalyzer
from treeplay.oracle.prepare import prepare

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


def _descendants() -> list[int]:
    """Live descendant pids of this process (pool workers and the analyzers they run)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier]
        found += kids
        frontier = kids
    return found


def _proc_cpu(pid: int) -> float:
    """utime + stime of a live process plus those of the children it has reaped (seconds)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_clock() -> tuple[float, dict[int, float]]:
    """(CPU s of this process and its reaped children, {live descendant pid: its CPU s}).

    The live part matters for the process pool: its workers outlive a batch, so their time (and
    that of the semgrep-core processes they reaped) is not in RUSAGE_CHILDREN yet."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return total, {pid: _proc_cpu(pid) for pid in _descendants()}


class Timer:
    """Wall and CPU time of a block: total CPU, and the critical path (this process and reaped
    children, plus the busiest live worker), which is what two idle cores would need."""

    def __enter__(self) -> Timer:
        self.wall0, (self.own0, self.live0) = time.perf_counter(), cpu_clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        own1, live1 = cpu_clock()
        own = own1 - self.own0
        workers = [cpu - self.live0.get(pid, 0.0) for pid, cpu in live1.items()]
        self.own, self.workers = own, sorted(w for w in workers if w > 0.005)
        self.cpu = own + sum(workers)
        self.critical = own + max(workers, default=0.0)


def rate(n: int, timer: Timer | float) -> str:
    if isinstance(timer, float):
        return f"{n / timer:8.1f} snippets/s  ({n} in {timer:.2f}s)"
    idle = n / max(timer.critical, 1e-9)
    split = f" [this process {timer.own:.2f}s, workers {'/'.join(f'{w:.2f}' for w in timer.workers)}s]"
    return (f"{n / timer.wall:8.1f} snippets/s  ({n} in {timer.wall:.2f}s) | CPU {timer.cpu:6.2f}s "
            f"= {1000 * timer.cpu / n:6.1f} ms/snippet, idle 2-core est. {idle:7.1f}/s"
            + (split if timer.workers else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--n-subprocess", type=int, default=10)
    parser.add_argument("--only-batch", action="store_true", help="skip the subprocess-per-snippet lines")
    args = parser.parse_args()
    snippets = python_snippets(args.data, args.n)
    n = len(snippets)
    bin_dir = Path(sys.executable).parent
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load} on {os.cpu_count()} cores."
          " Wall-clock rates on a busy machine are lower bounds; 'idle 2-core est.' = snippets / CPU s of the"
          " critical path (this process + its busiest pool worker, with their analyzer subprocesses).")

    bandit = BanditAnalyzer()
    bandit.analyze_text("x = 1\n")  # build the test set once
    texts = [prepare(code, "py").text for code in snippets]  # what the oracle hands bandit (repaired)
    with Timer() as t:
        for text in texts:
            bandit.analyze_text(text)
    print("bandit in-process (one test set)        ", rate(n, t))

    k = args.n_subprocess
    if not args.only_batch:
        subprocess_lines(snippets[:k], bin_dir)

    oracle = Oracle(OracleConfig(use_cache=False))
    if not args.only_batch:
        with Timer() as t:
            for code in snippets[:k]:
                oracle.judge(code, "py")
        print("judge() one at a time (bandit+semgrep)  ", rate(k, t))
    with Timer() as t:
        oracle.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 1 process             ", rate(n, t))
    oracle.close()

    parallel = Oracle(OracleConfig(use_cache=False, workers=2))
    with Timer() as t:
        parallel.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 2 processes (cold)    ", rate(n, t))
    parallel.close()

    # warm: the pool and each child's analyzers were started by an earlier batch of other snippets
    warm = Oracle(OracleConfig(use_cache=False, workers=2))
    warm.judge_many([(c, "py", None) for c in warmup_snippets(args.data, 40)])
    with Timer() as t:
        warm.judge_many([(c, "py", None) for c in snippets])
    print("judge_many batch, 2 processes (warm)    ", rate(n, t))
    warm.close()

    with tempfile.TemporaryDirectory() as tmp:
        cached = Oracle(OracleConfig(cache_path=Path(tmp) / "c.sqlite"))
        cached.judge_many([(c, "py", None) for c in snippets])
        with Timer() as t:
            cached.judge_many([(c, "py", None) for c in snippets])
        print("judge_many, all cache hits              ", rate(n, t))
        cached.close()


def subprocess_lines(snippets: list[str], bin_dir: Path) -> None:
    """One bandit / semgrep CLI process per snippet (what the batched oracle avoids)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, code in enumerate(snippets):
            f = Path(tmp) / f"s{i}.py"
            f.write_text(code)
            files.append(f)
        with Timer() as t:
            for f in files:
                subprocess.run([str(bin_dir / "bandit"), "-q", "-f", "json", str(f)], capture_output=True,
                               check=False)
        print("bandit, one subprocess per snippet      ", rate(len(files), t))
        with Timer() as t:
            for f in files[:3]:
                subprocess.run([str(bin_dir / "semgrep"), "scan", "--metrics=off", "--disable-version-check",
                                "--json", "--quiet", "--config", str(REPO / "src/treeplay/oracle/rules/python.yaml"),
                                str(f)], capture_output=True, check=False)
        print("semgrep CLI, one subprocess per snippet ", rate(len(files[:3]), t))


if __name__ == "__main__":
    main()
