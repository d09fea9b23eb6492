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
FPR = secure judged vulnerable; unparseable snippets count as not flagged (`unp` column). Each rate
is printed with its Wilson score 95% interval, `71% (10/14) [45-88]`.
`--dump FILE` writes one JSON line per tuning row (for reading misses on train only).

Label audit (`--audit`, default benchmarks/oracle_label_audit.yaml; criteria in that file and in
docs/oracle.md): each SafeCoder pair audited blind to the oracle as `ok` or a kind of label error.
Next to the raw held-out figures (the headline) the table prints `held-out label-ok` recall/FPR on
the pairs audited `ok` only, and `held-out excluded`: pairs left out, per verdict (`unaudited` if the
audit does not cover a pair). A summary of the verdicts per split and language follows the tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import NamedTuple

import yaml

from treeplay.oracle import Oracle, OracleConfig
from treeplay.tasks.records import Task, normalise_cwe

REPO = Path(__file__).resolve().parents[1]
EXT_LANG = {"py": "py", "js": "js", "jsx": "js", "go": "go", "c": "c", "cc": "cpp", "cpp": "cpp",
            "java": "java", "rb": "rb"}
FIXTURE_LANG = {"python": "py", "python_taint": "py", "c": "c", "javascript": "js", "go": "go",
                "java": "java", "ruby": "rb"}
SOURCES = ("tuning", "held-out", "seen", "own")
SPLITS = {"train": ("sec-new-desc.train.jsonl", "tuning"), "val": ("sec-new-desc.val.jsonl", "held-out")}
AUDIT = REPO / "benchmarks" / "oracle_label_audit.yaml"
VERDICTS = ("ok", "fix-invisible", "insecure-not-vulnerable", "secure-still-vulnerable")
AUDIT_FIELDS = ("split", "line", "sha", "file", "cwe", "verdict", "reason")
LABEL_CHECKED = ("held-out",)  # sources whose label-ok figures are printed (fully audited)


class Row(NamedTuple):
    source: str
    lang: str
    cwe: str
    code: str
    insecure: bool
    pair: str = ""  # "<split>:<line>" for SafeCoder rows (the label audit's key), else ""


class AuditError(ValueError):
    """The label audit file is malformed or names a row that does not exist."""


def pair_sha(before: str, after: str) -> str:
    return hashlib.sha256((before + "\0" + after).encode()).hexdigest()[:12]


def safecoder_rows(data: Path) -> list[Row]:
    rows: list[Row] = []
    for split, (name, source) in SPLITS.items():
        path = data / "safecoder" / name
        if not path.exists():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            r = json.loads(line)
            lang = EXT_LANG.get(r["file_name"].rsplit(".", 1)[-1])
            if lang is None:
                continue
            cwe = normalise_cwe(r["vul_type"])
            rows.append(Row(source, lang, cwe, r["func_src_before"], True, f"{split}:{n}"))
            rows.append(Row(source, lang, cwe, r["func_src_after"], False, f"{split}:{n}"))
    return rows


def _audit_entries(path: Path) -> list[tuple[int, object]]:
    """(line in the audit file, entry) for each item of its `pairs` list."""
    text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise AuditError(f"{path}: expected a mapping with a 'pairs' list at the top level")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)  # safe_load gave a dict
    node = next(v for k, v in root.value if k.value == "pairs")
    return [(n.start_mark.line + 1, e) for n, e in zip(node.value, data["pairs"], strict=True)]


def _check_entry(entry: object, data: Path, cache: dict[str, list[str]]) -> tuple[str, str]:
    """(pair key, verdict) of one audit entry; AuditError(field, message) when it is wrong."""
    if not isinstance(entry, dict) or set(entry) != set(AUDIT_FIELDS):
        raise AuditError("fields", f"expected exactly {', '.join(AUDIT_FIELDS)}")
    split, line = entry["split"], entry["line"]
    if split not in SPLITS:
        raise AuditError("split", f"{split!r} is not one of {', '.join(SPLITS)}")
    path = data / "safecoder" / SPLITS[split][0]
    if split not in cache:
        cache[split] = path.read_text().splitlines() if path.exists() else []
    if not isinstance(line, int) or not 1 <= line <= len(cache[split]):
        raise AuditError("line", f"{line!r}: {path} has no such line ({len(cache[split])} lines)")
    r = json.loads(cache[split][line - 1])
    expected = {"sha": pair_sha(r["func_src_before"], r["func_src_after"]), "file": r["file_name"],
                "cwe": normalise_cwe(r["vul_type"])}
    for field, value in expected.items():
        if entry[field] != value:
            raise AuditError(field, f"{entry[field]!r} but {path}:{line} has {value!r}")
    if entry["verdict"] not in VERDICTS:
        raise AuditError("verdict", f"{entry['verdict']!r} is not one of {', '.join(VERDICTS)}")
    if not isinstance(entry["reason"], str) or not entry["reason"].strip():
        raise AuditError("reason", "a one-line reason is required")
    return f"{split}:{line}", entry["verdict"]


def load_audit(path: Path, data: Path) -> dict[str, str]:
    """Pair key ("val:12") -> verdict, every entry checked against the SafeCoder file it names."""
    verdicts: dict[str, str] = {}
    cache: dict[str, list[str]] = {}
    for i, (where, entry) in enumerate(_audit_entries(path)):
        try:
            key, verdict = _check_entry(entry, data, cache)
        except AuditError as e:
            field, message = e.args if len(e.args) == 2 else ("entry", e.args[0])
            raise AuditError(f"{path}:{where}: pairs[{i}] field '{field}': {message}") from None
        if key in verdicts:
            raise AuditError(f"{path}:{where}: pairs[{i}] field 'line': {key} is audited twice")
        verdicts[key] = verdict
    return verdicts


def securityeval_rows(data: Path) -> list[Row]:
    path = data / "securityeval" / "securityeval-121.json"
    if not path.exists():
        return []
    return [Row("seen", "py", normalise_cwe(r["ID"].split("_")[0]), r["Insecure_code"], True)
            for r in json.loads(path.read_text())]


def fixture_rows() -> list[Row]:
    out: list[Row] = []
    for stem, lang in FIXTURE_LANG.items():
        path = REPO / "tests/fixtures/oracle" / f"{stem}.yaml"
        if not path.exists():
            continue
        for p in yaml.safe_load(path.read_text()):
            language = p.get("language", lang)
            out.append(Row("own", language, p["cwe"], p["vulnerable"], True))
            out.append(Row("own", language, p["cwe"], p["secure"], False))
    return out


Counts = list[int]  # tp, n_insecure, fp, n_secure, unparseable, nonfunctional
Key = tuple[str, str, str]  # language, group ('all' or a CWE), source
LABEL_OK = " label-ok"
SHORT = {"fix-invisible": "fi", "insecure-not-vulnerable": "inv", "secure-still-vulnerable": "ssv",
         "unaudited": "unaudited"}


def tally(rows: list[Row], statuses: list[str], extra: list[bool],
          audit: dict[str, str] | None = None) -> dict[Key, Counts]:
    """(language, group, source) -> counts. With an audit, the rows of a LABEL_CHECKED source's pairs
    audited `ok` are counted again under source + LABEL_OK (the label-consistent figures)."""
    groups: dict[Key, Counts] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for row, status, nonfunctional in zip(rows, statuses, extra, strict=True):
        sources = [row.source]
        if audit is not None and row.source in LABEL_CHECKED and audit.get(row.pair) == "ok":
            sources.append(row.source + LABEL_OK)
        for group in ("all", row.cwe):
            for source in sources:
                g = groups[(row.lang, group, source)]
                g[0 if row.insecure else 2] += status == "vulnerable"
                g[1 if row.insecure else 3] += 1
                g[4] += status == "unparseable"
                g[5] += nonfunctional
    return groups


def verdict_counts(rows: list[Row], audit: dict[str, str]) -> dict[Key, Counter[str]]:
    """(language, group, source) -> pairs per audit verdict ('unaudited' when the audit lacks one)."""
    out: dict[Key, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if row.pair and row.insecure:  # one count per pair
            for group in ("all", row.cwe):
                out[(row.lang, group, row.source)][audit.get(row.pair, "unaudited")] += 1
    return out


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion hits/n (stays inside [0, 1] and is not empty at 0/n
    or n/n, unlike the normal approximation)."""
    p, z2 = hits / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def cell(a: int, b: int) -> str:
    """'rate (a/b) [Wilson 95% interval]': on held-out sets of 4-14 pairs the interval is the point."""
    if not b:
        return "-"
    low, high = wilson_interval(a, b)
    return f"{100 * a / b:.0f}% ({a}/{b}) [{100 * low:.0f}-{100 * high:.0f}]"


def excluded_cell(verdicts: Counter[str]) -> str:
    bad = {v: n for v, n in sorted(verdicts.items()) if v != "ok" and n}
    detail = ", ".join(f"{SHORT[v]} {n}" for v, n in bad.items())
    return f"{sum(bad.values())} ({detail})" if bad else ("0" if verdicts else "-")


def print_tables(groups: dict[Key, Counts], by_cwe: bool,
                 verdicts: dict[Key, Counter[str]] | None = None) -> None:
    checked = LABEL_CHECKED if verdicts is not None else ()
    for lang in sorted({k[0] for k in groups}):
        cwes = sorted({k[1] for k in groups if k[0] == lang and k[1] != "all"})
        print(f"\n### {lang}")
        header = ["group"]
        for s in SOURCES:
            header += [f"{s} recall", f"{s} FPR"]
            if s in checked:
                header += [f"{s}{LABEL_OK} recall", f"{s}{LABEL_OK} FPR", f"{s} excluded"]
        header += ["unp", "nonfunc"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for group in ["all", *(cwes if by_cwe else [])]:
            cells = [group]
            unp = nonfunc = 0
            for source in SOURCES:
                tp, ni, fp, ns, u, nf = groups.get((lang, group, source), [0, 0, 0, 0, 0, 0])
                cells += [cell(tp, ni), cell(fp, ns)]
                if source in checked:
                    otp, oni, ofp, ons, _, _ = groups.get((lang, group, source + LABEL_OK), [0] * 6)
                    cells += [cell(otp, oni), cell(ofp, ons),
                              excluded_cell((verdicts or {}).get((lang, group, source), Counter()))]
                unp += u
                nonfunc += nf
            if all(c == "-" for c in cells[1:]):
                continue
            print("| " + " | ".join([*cells, str(unp), str(nonfunc)]) + " |")
    if checked:
        print("\nexcluded = pairs not audited `ok` (benchmarks/oracle_label_audit.yaml): fi = fix-invisible, "
              "inv = insecure-not-vulnerable, ssv = secure-still-vulnerable")


def print_audit_summary(verdicts: dict[Key, Counter[str]]) -> None:
    columns = ["ok", *SHORT]
    if all(c["unaudited"] == sum(c.values()) for c in verdicts.values()):
        return  # none of the judged pairs is audited
    print("\n### label audit: pairs per verdict\n| source | language | pairs | " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(columns) + 3))
    for (lang, group, source), c in sorted(verdicts.items(), key=lambda kv: (kv[0][2], kv[0][0])):
        if group == "all" and c["unaudited"] < sum(c.values()):  # sources the audit covers in part or whole
            print(f"| {source} | {lang} | {sum(c.values())} | " + " | ".join(str(c[v]) for v in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("TREEPLAY_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--by-cwe", action="store_true", help="also print per-CWE rows")
    parser.add_argument("--only", choices=SOURCES, help="judge only this source (e.g. tuning while writing rules)")
    parser.add_argument("--languages", default="", help="comma-separated subset, e.g. py,java")
    parser.add_argument("--dump", type=Path, help="write per-row verdicts of the tuning rows (JSON lines)")
    parser.add_argument("--audit", type=Path, default=AUDIT, help="label audit file (see the module doc)")
    args = parser.parse_args()
    audit = load_audit(args.audit, args.data)  # before judging: a broken audit fails at once
    rows = safecoder_rows(args.data) + securityeval_rows(args.data) + fixture_rows()
    if args.only:
        rows = [r for r in rows if r.source == args.only]
    if args.languages:
        wanted = set(args.languages.split(","))
        rows = [r for r in rows if r.lang in wanted]
    items = [(r.code, r.lang, Task(id=f"r{i}", language=r.lang, cwe=(r.cwe,), instruction="", prefix=""))
             for i, r in enumerate(rows)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=args.workers))
    start = time.perf_counter()
    verdicts = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()
    nonfunctional = [getattr(v, "functional", None) == "nonfunctional" for v in verdicts]
    print(f"judged {len(rows)} snippets in {elapsed:.1f}s ({len(rows) / elapsed:.1f}/s)")
    verdict_table = verdict_counts(rows, audit)
    print_tables(tally(rows, [v.status for v in verdicts], nonfunctional, audit), args.by_cwe, verdict_table)
    print_audit_summary(verdict_table)
    if args.dump:
        with args.dump.open("w") as fh:
            for r, v in zip(rows, verdicts, strict=True):
                if r.source == "tuning":
                    fh.write(json.dumps({"lang": r.lang, "cwe": r.cwe, "insecure": r.insecure, "status": v.status,
                                         "rules": sorted({f.rule for f in v.findings}), "code": r.code}) + "\n")


if __name__ == "__main__":
    main()
