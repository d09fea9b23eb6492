"""Oracle fidelity on labelled secure/insecure code: recall and false-positive rate.

    flock /tmp/treeplay-cpu.lock .venv/bin/python benchmarks/oracle_fidelity.py [--data ../shared/data]

Sources: SafeCoder rows (func_src_before = insecure, func_src_after = secure; partial functions),
SecurityEval `Insecure_code` (insecure only: recall), and tests/fixtures/oracle/*.yaml (own pairs).
Each snippet is judged with its row's CWE as the task CWE (so the policy's "matches the task's CWE"
clause applies). recall = insecure judged vulnerable; FPR = secure judged vulnerable; unparseable
snippets count as not flagged and are reported separately. The `target` columns count only findings
matching the row's CWE (`Verdict.target_hit`): how well the oracle sees *the* weakness the pair is
about, ignoring other (often real) findings in the same function.

SafeCoder is reported per file (`safecoder-train` = sec-new-desc.train.jsonl, `safecoder-val` =
sec-new-desc.val.jsonl) so rule tuning on one can be checked on the other.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import yaml

from treeplay.oracle import Oracle, OracleConfig
from treeplay.tasks.records import Task, normalise_cwe

REPO = Path(__file__).resolve().parents[1]
EXT_LANG = {"py": "py", "js": "js", "jsx": "js", "go": "go", "c": "c", "cc": "cpp", "cpp": "cpp"}
FIXTURE_LANG = {"python": "py", "c": "c", "javascript": "js", "go": "go"}

Row = tuple[str, str, str, str, bool]  # source, language, cwe, code, insecure


def safecoder_rows(data: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted((data / "safecoder").glob("*.jsonl")):
        split = "safecoder-val" if ".val." in path.name else "safecoder-train"
        for line in path.read_text().splitlines():
            r = json.loads(line)
            lang = EXT_LANG.get(r["file_name"].rsplit(".", 1)[-1])
            if lang is None:
                continue
            cwe = normalise_cwe(r["vul_type"])
            rows.append((split, lang, cwe, r["func_src_before"], True))
            rows.append((split, lang, cwe, r["func_src_after"], False))
    return rows


def securityeval_rows(data: Path) -> list[Row]:
    path = data / "securityeval" / "securityeval-121.json"
    if not path.exists():
        return []
    out: list[Row] = []
    for r in json.loads(path.read_text()):
        cwe = normalise_cwe(r["ID"].split("_")[0])
        out.append(("securityeval", "py", cwe, r["Insecure_code"], True))
    return out


def fixture_rows() -> list[Row]:
    out: list[Row] = []
    for stem, lang in FIXTURE_LANG.items():
        for p in yaml.safe_load((REPO / "tests/fixtures/oracle" / f"{stem}.yaml").read_text()):
            language = p.get("language", lang)
            out.append(("own", language, p["cwe"], p["vulnerable"], True))
            out.append(("own", language, p["cwe"], p["secure"], False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--by-cwe", action="store_true", help="also print the per-CWE table")
    args = parser.parse_args()
    rows = safecoder_rows(args.data) + securityeval_rows(args.data) + fixture_rows()
    items = [(code, lang, Task(id=f"r{i}", language=lang, cwe=(cwe,), instruction="", prefix=""))
             for i, (_, lang, cwe, code, _) in enumerate(rows)]
    oracle = Oracle(OracleConfig(use_cache=False, workers=args.workers))
    start = time.perf_counter()
    verdicts = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()

    # tp, n_ins, fp, n_sec, unparseable, tp on target CWE, fp on target CWE
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, 0])
    for (source, lang, cwe, _, insecure), v in zip(rows, verdicts, strict=True):
        keys = [(source, lang), (source, f"{lang}:{cwe}")]
        if source.startswith("safecoder-"):
            keys += [("safecoder-all", lang)]
        for key in keys:
            g = groups[key]
            flagged = v.status == "vulnerable"
            on_target = bool(v.target_hit)
            if insecure:
                g[0] += flagged
                g[1] += 1
                g[5] += on_target
            else:
                g[2] += flagged
                g[3] += 1
                g[6] += on_target
            g[4] += v.status == "unparseable"

    def pct(a: int, b: int) -> str:
        return f"{100 * a / b:5.1f}% ({a}/{b})" if b else "     -"

    print(f"judged {len(rows)} snippets in {elapsed:.1f}s ({len(rows) / elapsed:.1f}/s)")
    print(f"{'source':15} {'group':12} {'recall':>16} {'FPR':>16} {'unparseable':>11} "
          f"{'target recall':>16} {'target FPR':>16}")
    for (source, group), (tp, n_ins, fp, n_sec, unp, ttp, tfp) in sorted(groups.items()):
        if ":" in group and not args.by_cwe:
            continue
        print(f"{source:15} {group:12} {pct(tp, n_ins):>16} {pct(fp, n_sec):>16} {unp:>11} "
              f"{pct(ttp, n_ins):>16} {pct(tfp, n_sec):>16}")


if __name__ == "__main__":
    main()
