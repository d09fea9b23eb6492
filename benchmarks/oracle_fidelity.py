"""Oracle fidelity on labelled secure/insecure code: recall and false-positive rate, tuning vs held-out.

    nice -n 15 .venv/bin/python benchmarks/oracle_fidelity.py [--data ../shared/data] [--by-cwe]

One table per language. Columns:
- `tuning`   = SafeCoder sec-new-desc.train.jsonl: the ONLY data rules and hyper-parameters are
               chosen on (func_src_before = insecure, func_src_after = secure).
- `held-out` = SafeCoder sec-new-desc.val.jsonl: never used to write or tune a rule. The sec-eval
               scenarios (safecoder/sec_eval) carry prompts and CodeQL queries but no labelled
               secure/insecure code, so they add no held-out pairs here.
- `seen`     = SecurityEval `Insecure_code` (Python, insecure only: recall). Read while writing the
               v2 rules, so it is *not* held-out.
- `own`      = tests/fixtures/oracle/*.yaml twin pairs (regression tests, not a measurement).
Each snippet is judged with its row's CWE as the task CWE. recall = insecure judged vulnerable;
FPR = secure judged vulnerable; unparseable snippets count as not flagged (`unp` column).
`--dump FILE` writes one JSON line per tuning row (for reading misses on train only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

import yaml

from treeplay.oracle import Oracle, OracleConfig
from treeplay.tasks.records import Task, normalise_cwe

REPO = Path(__file__).resolve().parents[1]
EXT_LANG = {"py": "py", "js": "js", "jsx": "js", "go": "go", "c": "c", "cc": "cpp", "cpp": "cpp",
            "java": "java", "rb": "rb"}
FIXTURE_LANG = {"python": "py", "python_taint": "py", "c": "c", "javascript": "js", "go": "go",
                "java": "java", "ruby": "rb"}
SOURCES = ("tuning", "held-out", "seen", "own")

Row = tuple[str, str, str, str, bool]  # source, language, cwe, code, insecure


def safecoder_rows(data: Path) -> list[Row]:
    rows: list[Row] = []
    for name, source in (("sec-new-desc.train.jsonl", "tuning"), ("sec-new-desc.val.jsonl", "held-out")):
        path = data / "safecoder" / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            lang = EXT_LANG.get(r["file_name"].rsplit(".", 1)[-1])
            if lang is None:
                continue
            cwe = normalise_cwe(r["vul_type"])
            rows.append((source, lang, cwe, r["func_src_before"], True))
            rows.append((source, lang, cwe, r["func_src_after"], False))
    return rows


def securityeval_rows(data: Path) -> list[Row]:
    path = data / "securityeval" / "securityeval-121.json"
    if not path.exists():
        return []
    return [("seen", "py", normalise_cwe(r["ID"].split("_")[0]), r["Insecure_code"], True)
            for r in json.loads(path.read_text())]


def fixture_rows() -> list[Row]:
    out: list[Row] = []
    for stem, lang in FIXTURE_LANG.items():
        path = REPO / "tests/fixtures/oracle" / f"{stem}.yaml"
        if not path.exists():
            continue
        for p in yaml.safe_load(path.read_text()):
            language = p.get("language", lang)
            out.append(("own", language, p["cwe"], p["vulnerable"], True))
            out.append(("own", language, p["cwe"], p["secure"], False))
    return out


Counts = list[int]  # tp, n_insecure, fp, n_secure, unparseable, nonfunctional


def tally(rows: list[Row], statuses: list[str], extra: list[bool]) -> dict[tuple[str, str, str], Counts]:
    """(language, group, source) -> counts; group is 'all' or a CWE."""
    groups: dict[tuple[str, str, str], Counts] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for (source, lang, cwe, _, insecure), status, nonfunctional in zip(rows, statuses, extra, strict=True):
        for group in ("all", cwe):
            g = groups[(lang, group, source)]
            flagged = status == "vulnerable"
            g[0 if insecure else 2] += flagged
            g[1 if insecure else 3] += 1
            g[4] += status == "unparseable"
            g[5] += nonfunctional
    return groups


def cell(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}% ({a}/{b})" if b else "-"


def print_tables(groups: dict[tuple[str, str, str], Counts], by_cwe: bool) -> None:
    for lang in sorted({k[0] for k in groups}):
        cwes = sorted({k[1] for k in groups if k[0] == lang and k[1] != "all"})
        print(f"\n### {lang}")
        header = ["group"] + [f"{s} {m}" for s in SOURCES for m in ("recall", "FPR")] + ["unp", "nonfunc"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for group in ["all", *(cwes if by_cwe else [])]:
            cells = [group]
            unp = nonfunc = 0
            for source in SOURCES:
                tp, ni, fp, ns, u, nf = groups.get((lang, group, source), [0, 0, 0, 0, 0, 0])
                cells += [cell(tp, ni), cell(fp, ns)]
                unp += u
                nonfunc += nf
            if all(c == "-" for c in cells[1:]):
                continue
            print("| " + " | ".join([*cells, str(unp), str(nonfunc)]) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("TREEPLAY_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--by-cwe", action="store_true", help="also print per-CWE rows")
    parser.add_argument("--only", choices=SOURCES, help="judge only this source (e.g. tuning while writing rules)")
    parser.add_argument("--languages", default="", help="comma-separated subset, e.g. py,java")
    parser.add_argument("--dump", type=Path, help="write per-row verdicts of the tuning rows (JSON lines)")
    args = parser.parse_args()
    rows = safecoder_rows(args.data) + securityeval_rows(args.data) + fixture_rows()
    if args.only:
        rows = [r for r in rows if r[0] == args.only]
    if args.languages:
        wanted = set(args.languages.split(","))
        rows = [r for r in rows if r[1] in wanted]
    items = [(code, lang, Task(id=f"r{i}", language=lang, cwe=(cwe,), instruction="", prefix=""))
             for i, (_, lang, cwe, code, _) in enumerate(rows)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=args.workers))
    start = time.perf_counter()
    verdicts = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()
    nonfunctional = [getattr(v, "functional", None) == "nonfunctional" for v in verdicts]
    print(f"judged {len(rows)} snippets in {elapsed:.1f}s ({len(rows) / elapsed:.1f}/s)")
    print_tables(tally(rows, [v.status for v in verdicts], nonfunctional), args.by_cwe)
    if args.dump:
        with args.dump.open("w") as fh:
            for (source, lang, cwe, code, insecure), v in zip(rows, verdicts, strict=True):
                if source == "tuning":
                    fh.write(json.dumps({"lang": lang, "cwe": cwe, "insecure": insecure, "status": v.status,
                                         "rules": sorted({f.rule for f in v.findings}), "code": code}) + "\n")


if __name__ == "__main__":
    main()
