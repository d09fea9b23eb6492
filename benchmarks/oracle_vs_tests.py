"""The static oracle against executable security tests, on real model output (evaluation only).

    nice -n 15 .venv/bin/python benchmarks/oracle_vs_tests.py RUN_DIR [RUN_DIR ...] [--bench sallm] [--rejudge]

Reads every `generations.jsonl` of the bench in the run dirs (all seeds and arms: programs the
embedded model wrote), keeps the generations whose security test ran (the rules of
`treeplay.eval.agreement`), and prints, per arm and pooled:
- `flagged | test FAIL`: of the programs an attack succeeded on, the share the oracle called
  vulnerable (the oracle's recall against the tests; issue #16's goal is >= 60 %);
- `flagged | test pass`: of the programs the security test passed, the share the oracle called
  vulnerable (not a false-positive rate: one test per task does not prove a program secure);
- both again for the programs that also pass their functional tests.
`--task-cwe` counts a program as flagged only when a finding carries the task's CWE (or an
equivalent one, `treeplay.oracle.cwe.matches`): the test checks that CWE only, so this is the
like-for-like view; a flag of another CWE is re-labelled `secure` for the table.
`--rejudge` judges every stored program again with the installed oracle (the stored verdicts are
those of the oracle the run was made with), so a new oracle version is measured on the same
programs without generating anything. SALLM is an evaluation set: this script measures, it is
never used to choose a rule.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from treeplay.eval.agreement import oracle_vs_tests
from treeplay.eval.evaluate import GENERATIONS_FILE, bench_slug
from treeplay.eval.records import Generation, read_generations
from treeplay.eval.rejudge import rejudge
from treeplay.run_layout import RunLayout


def read_run_generations(run_dirs: Iterable[Path], bench: str) -> dict[str, list[Generation]]:
    """arm -> generation records of `bench` over every seed of every run dir."""
    by_arm: dict[str, list[Generation]] = defaultdict(list)
    for run_dir in run_dirs:
        for _, arm, directory in RunLayout(run_dir).found_evals():
            if directory.name != bench_slug(bench):
                continue
            try:
                by_arm[arm].extend(read_generations(directory / GENERATIONS_FILE))
            except ValueError as error:  # names the file, the line and the field
                raise SystemExit(str(error)) from error
    return dict(by_arm)


def task_cwe_only(record: Generation) -> Generation:
    """The record with `vulnerable` kept only when a finding matches the task's CWE."""
    from treeplay.oracle.cwe import matches

    verdict = record.verdict
    if verdict is None or verdict.status != "vulnerable":
        return record
    if any(matches(f.cwe, record.cwe) for f in verdict.findings):
        return record
    return replace(record, verdict=replace(verdict, status="secure"))


def _share(numerator: int, denominator: int) -> str:
    return f"{100 * numerator / denominator:5.1f}% ({numerator}/{denominator})" if denominator else "   -"


def table_row(label: str, table: Mapping[str, Any]) -> str:
    cells = []
    for subset in ("all", "functional_pass"):
        part = table[subset]
        failed = part["secure_fail"] + part["vulnerable_fail"]
        passed = part["secure_pass"] + part["vulnerable_pass"]
        cells += [_share(part["vulnerable_fail"], failed), _share(part["vulnerable_pass"], passed)]
    return f"| {label} | " + " | ".join(cells) + f" | {sum(table['excluded'].values())} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--bench", default="sallm")
    parser.add_argument("--rejudge", action="store_true", help="judge the stored programs with the installed oracle")
    parser.add_argument("--task-cwe", action="store_true", help="flagged = a finding of the task's CWE")
    args = parser.parse_args()
    by_arm = read_run_generations(args.run_dirs, args.bench)
    if not by_arm:
        raise SystemExit(f"no {args.bench} generations under {', '.join(map(str, args.run_dirs))}")
    if args.rejudge:
        flat = [(arm, r) for arm, records in by_arm.items() for r in records]
        judged = rejudge([r for _, r in flat], bench=args.bench)
        by_arm = defaultdict(list)
        for (arm, _), record in zip(flat, judged, strict=True):
            by_arm[arm].append(record)
    if args.task_cwe:
        by_arm = {arm: [task_cwe_only(r) for r in records] for arm, records in by_arm.items()}
    print(f"verdicts: {'installed oracle (re-judged)' if args.rejudge else 'as stored in the run'}"
          f"{'; flagged = a finding of the task CWE' if args.task_cwe else '; flagged = any finding'}")
    print("| arm | flagged given test FAIL | flagged given test pass | same, functional pass: given FAIL "
          "| given pass | excluded |")
    print("|---|---|---|---|---|---|")
    for arm, records in sorted(by_arm.items()):
        table = oracle_vs_tests(records)
        if table is not None:
            print(table_row(f"{arm} ({len(records)})", table))
    pooled = oracle_vs_tests([r for records in by_arm.values() for r in records])
    if pooled is not None:
        print(table_row(f"all arms ({sum(map(len, by_arm.values()))})", pooled))


if __name__ == "__main__":
    main()
