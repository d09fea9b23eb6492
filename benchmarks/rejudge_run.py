"""What a finished run's evaluations say under the installed oracle (issue #13, docs/results.md).

    PYTHONPATH=src .venv/bin/python benchmarks/rejudge_run.py runs/experiment-tasks36-v7-indist \
        runs/experiment-tasks36-v7-indist-rejudged

An oracle change bumps `ORACLE_VERSION`, so `treeplay run` would redo every stage of an old run,
sampling included. To read an old run's *programs* with a new referee, this script copies the run's
config, budgets and every evaluation's `generations.jsonl` into OUT, each generation re-judged by the
installed oracle with its bench's task (as the evaluation judged it; `treeplay.eval.rejudge`), and writes
OUT's report. metrics.json is not copied: the report recomputes it from the re-judged generations
(its note says so). Models, trees and training logs stay in RUN; the models were trained on the
old oracle's labels, which this does not change. OUT must not exist (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from treeplay.eval.evaluate import GENERATIONS_FILE
from treeplay.eval.records import read_generations
from treeplay.eval.rejudge import rejudge
from treeplay.eval.report import write_report
from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.config import ORACLE_VERSION
from treeplay.run_layout import RunLayout


def copy_rejudged(run: Path, out: Path, oracle: Oracle) -> int:
    """Copy config, budgets and re-judged generations of RUN into OUT; returns the programs judged."""
    source, target = RunLayout(run), RunLayout(out)
    out.mkdir(parents=True)
    if source.config_file.exists():
        shutil.copy(source.config_file, target.config_file)
    judged = 0
    for seed, arm, bench_dir in source.found_evals():
        generations = bench_dir / GENERATIONS_FILE
        if not generations.exists():
            continue
        records = rejudge(read_generations(generations), oracle.judge_many)
        dest = target.arm_dir(seed, arm) / bench_dir.parent.name / bench_dir.name
        dest.mkdir(parents=True, exist_ok=True)
        with (dest / GENERATIONS_FILE).open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(record.to_json()) + "\n")
        if source.budget(seed, arm).exists():
            shutil.copy(source.budget(seed, arm), target.budget(seed, arm))
        judged += len(records)
        print(f"seed {seed} / {arm} / {bench_dir.name}: {len(records)} programs re-judged")
    return judged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: choose a new directory (nothing is overwritten)")
    oracle = Oracle(OracleConfig(use_cache=False))
    try:
        judged = copy_rejudged(args.run, args.out, oracle)
    finally:
        oracle.close()
    (args.out / "REJUDGED.json").write_text(json.dumps(
        {"from": str(args.run), "oracle_version": ORACLE_VERSION, "programs": judged}, indent=1) + "\n")
    md, _ = write_report(args.out)
    print(f"{judged} programs re-judged under oracle v{ORACLE_VERSION}; report: {md}")


if __name__ == "__main__":
    main()
