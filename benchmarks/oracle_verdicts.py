"""Dump the oracle's verdicts on the fidelity rows, or compare two dumps (a guard for changes that
must not change any verdict: speed work, rule refactoring).

    nice -n 15 .venv/bin/python benchmarks/oracle_verdicts.py dump before.jsonl [--workers 2]
    nice -n 15 .venv/bin/python benchmarks/oracle_verdicts.py compare before.jsonl after.jsonl
    nice -n 19 .venv/bin/python benchmarks/oracle_verdicts.py dump-runs before.jsonl RUN_DIR... [--languages py]
    nice -n 15 .venv/bin/python benchmarks/oracle_verdicts.py compare-runs before.jsonl after.jsonl

The rows are those of `oracle_fidelity.py` (SafeCoder train/val, SecurityEval, the twin fixtures;
every language), judged with their row's CWE as the task CWE. Each line holds the row's source,
language, CWE, a hash of its code, the status, target_hit, functional and the findings as
(analyzer, rule, CWE, line). `compare` prints every row whose verdict differs and exits 1 if any
does.

`dump-runs` does the same for the programs stored in experiment run dirs: every tree branch
(`seed-*/<arm>/round-*/data/trees.jsonl`, task from the tree record) and every eval generation
(`seed-*/<arm>/eval/<bench>/generations.jsonl`, task CWE from the record, no prefix), i.e. the
verdicts an oracle change would make stale. Each identical (program, language, CWE) is judged once.
`compare-runs` keys rows by (file, line, branch) and prints, per run/stage file, how many stored
programs' verdicts differ (and which), plus rows found in one dump only (a run still writing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from oracle_fidelity import fixture_rows, safecoder_rows, securityeval_rows  # this directory is on sys.path

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.records import Verdict
from treeplay.tasks.records import Task

REPO = Path(__file__).resolve().parents[1]
COMPARED = ("status", "target_hit", "functional", "failed", "findings")


def verdict_row(source: str, lang: str, cwe: str, code: str, verdict: Verdict) -> dict[str, Any]:
    findings = sorted([f.analyzer, f.rule, f.cwe or "", f.line] for f in verdict.findings)
    return {"source": source, "lang": lang, "cwe": cwe, "code": hashlib.sha256(code.encode()).hexdigest()[:16],
            "status": verdict.status, "target_hit": verdict.target_hit, "functional": verdict.functional,
            "failed": sorted(verdict.failed_analyzers), "findings": findings}


def dump(out: Path, data: Path, workers: int, languages: str) -> None:
    rows = safecoder_rows(data) + securityeval_rows(data) + fixture_rows()
    if languages:
        rows = [r for r in rows if r.lang in set(languages.split(","))]
    items = [(r.code, r.lang, Task(id=f"r{i}", language=r.lang, cwe=(r.cwe,), instruction="", prefix=""))
             for i, r in enumerate(rows)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=workers))
    start = time.perf_counter()
    verdicts = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()
    with out.open("w") as fh:
        for r, v in zip(rows, verdicts, strict=True):  # Row has more fields since the label audit
            fh.write(json.dumps(verdict_row(r.source, r.lang, r.cwe, r.code, v)) + "\n")
    print(f"judged {len(rows)} snippets in {elapsed:.1f}s; wrote {out}")


def run_programs(run_dirs: list[Path], languages: str) -> list[tuple[str, str, str, tuple[str, ...], str]]:
    """(key, language, task prefix, task CWEs, program) of every stored tree branch and eval generation,
    read with the stages' own typed readers (a bad record names file, line and field)."""
    from treeplay.eval.records import iter_generations
    from treeplay.tree.records import read_trees

    wanted = set(languages.split(",")) if languages else None
    out = []
    for run_dir in run_dirs:
        for path in sorted(run_dir.glob("seed-*/*/round-*/data/trees.jsonl")):
            where = f"{run_dir.name}/{path.relative_to(run_dir)}"
            for number, tree in enumerate(read_trees(path), 1):
                task = tree.task or {}
                lang = task.get("language", "py")
                for index, b in enumerate(tree.branches):
                    out.append((f"{where}:{number}:{index}", lang, task.get("prefix", ""),
                                tuple(task.get("cwe") or ()), b.prefix + b.completion))
        for path in sorted(run_dir.glob("seed-*/*/eval/*/generations.jsonl")):
            where = f"{run_dir.name}/{path.relative_to(run_dir)}"
            for number, g in enumerate(iter_generations(path), 1):
                out.append((f"{where}:{number}:0", g.language, "", tuple(g.cwe), g.program))
    return [row for row in out if wanted is None or row[1] in wanted]


def dump_runs(out: Path, run_dirs: list[Path], workers: int, languages: str) -> None:
    rows = run_programs(run_dirs, languages)
    unique = sorted({(lang, prefix, cwe, code) for _, lang, prefix, cwe, code in rows})
    items = [(code, lang, Task(id=f"u{i}", language=lang, cwe=cwe, instruction="", prefix=prefix))
             for i, (lang, prefix, cwe, code) in enumerate(unique)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=workers))
    start = time.perf_counter()
    verdicts = dict(zip(unique, oracle.judge_many(items), strict=True))
    elapsed = time.perf_counter() - start
    oracle.close()
    with out.open("w") as fh:
        for key, lang, prefix, cwe, code in rows:
            row = verdict_row(key, lang, ",".join(cwe), code, verdicts[(lang, prefix, cwe, code)])
            fh.write(json.dumps(row) + "\n")
    print(f"judged {len(unique)} distinct programs ({len(rows)} stored) in {elapsed:.1f}s; wrote {out}")


def compare_runs(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> int:
    """Print the changed stored verdicts per run/stage file; return how many rows differ."""
    old, new = {r["source"]: r for r in before}, {r["source"]: r for r in after}
    per_file: dict[str, list[int]] = {}
    changed = 0
    for key in sorted(old.keys() & new.keys()):
        where = key.rsplit(":", 2)[0]
        counts = per_file.setdefault(where, [0, 0])
        counts[1] += 1
        diff = [f"{k}: {old[key][k]!r} -> {new[key][k]!r}" for k in COMPARED if old[key][k] != new[key][k]]
        if diff:
            counts[0] += 1
            changed += 1
            print(f"{key} ({old[key]['cwe']} {old[key]['code']}): " + "; ".join(diff))
    print("\n| run/stage file | stored programs | verdict changed | status changed |\n|---|---|---|---|")
    for where, (n_changed, n) in sorted(per_file.items()):
        status = sum(1 for k in old.keys() & new.keys()
                     if k.rsplit(":", 2)[0] == where and old[k]["status"] != new[k]["status"])
        print(f"| {where} | {n} | {n_changed} | {status} |")
    for name, a, b in (("before", old, new), ("after", new, old)):
        if a.keys() - b.keys():
            print(f"{len(a.keys() - b.keys())} rows only in the {name} dump (a run still writing?)")
    return changed


def load(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{n}: not a JSON line: {exc}") from exc
    return rows


def differences(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """One message per row whose compared fields differ (rows must be the same, in the same order)."""
    if [(r["source"], r["lang"], r["code"]) for r in before] != [(r["source"], r["lang"], r["code"]) for r in after]:
        return ["the two dumps do not hold the same rows in the same order"]
    out = []
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        changed = [f"{k}: {b[k]!r} -> {a[k]!r}" for k in COMPARED if b[k] != a[k]]
        if changed:
            out.append(f"row {i} ({b['source']} {b['lang']} {b['cwe']} {b['code']}): " + "; ".join(changed))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--data", type=Path,
                   default=Path(os.environ.get("TREEPLAY_SHARED_DATA", REPO.parent / "shared" / "data")))
    d.add_argument("--workers", type=int, default=1)
    d.add_argument("--languages", default="", help="comma-separated subset, e.g. py,js")
    r = sub.add_parser("dump-runs")
    r.add_argument("out", type=Path)
    r.add_argument("run_dirs", nargs="+", type=Path)
    r.add_argument("--workers", type=int, default=1)
    r.add_argument("--languages", default="", help="comma-separated subset, e.g. py")
    for name in ("compare", "compare-runs"):
        c = sub.add_parser(name)
        c.add_argument("before", type=Path)
        c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.cmd == "dump":
        dump(args.out, args.data, args.workers, args.languages)
        return
    if args.cmd == "dump-runs":
        dump_runs(args.out, args.run_dirs, args.workers, args.languages)
        return
    if args.cmd == "compare-runs":
        n = compare_runs(load(args.before), load(args.after))
        print(f"{n} stored verdicts differ")
        sys.exit(1 if n else 0)
    before, after = load(args.before), load(args.after)
    diffs = differences(before, after)
    for line in diffs:
        print(line)
    print(f"{len(before)} rows compared, {len(diffs)} differ")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
