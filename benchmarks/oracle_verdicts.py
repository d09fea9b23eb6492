"""Dump the oracle's verdicts on the fidelity rows, or compare two dumps (a guard for changes that
must not change any verdict: speed work, rule refactoring).

    nice -n 15 .venv/bin/python benchmarks/oracle_verdicts.py dump before.jsonl [--workers 2]
    nice -n 15 .venv/bin/python benchmarks/oracle_verdicts.py compare before.jsonl after.jsonl

The rows are those of `oracle_fidelity.py` (SafeCoder train/val, SecurityEval, the twin fixtures;
every language), judged with their row's CWE as the task CWE. Each line holds the row's source,
language, CWE, a hash of its code, the status, target_hit, functional and the findings as
(analyzer, rule, CWE, line). `compare` prints every row whose verdict differs and exits 1 if any
does.
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
        rows = [r for r in rows if r[1] in set(languages.split(","))]
    items = [(code, lang, Task(id=f"r{i}", language=lang, cwe=(cwe,), instruction="", prefix=""))
             for i, (_, lang, cwe, code, _) in enumerate(rows)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=workers))
    start = time.perf_counter()
    verdicts = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()
    with out.open("w") as fh:
        for (source, lang, cwe, code, _), v in zip(rows, verdicts, strict=True):
            fh.write(json.dumps(verdict_row(source, lang, cwe, code, v)) + "\n")
    print(f"judged {len(rows)} snippets in {elapsed:.1f}s; wrote {out}")


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
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.cmd == "dump":
        dump(args.out, args.data, args.workers, args.languages)
        return
    before, after = load(args.before), load(args.after)
    diffs = differences(before, after)
    for line in diffs:
        print(line)
    print(f"{len(before)} rows compared, {len(diffs)} differ")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
