"""The oracle on real model output for SafeCoder TRAIN tasks (issue #16): a tuning set labelled by hand.

    nice -n 19 .venv/bin/python benchmarks/oracle_realout.py sample --runs /work/main/runs   # once
    nice -n 19 .venv/bin/python benchmarks/oracle_realout.py measure [--by-cwe] [--dump FILE]

`sample` collects the whole programs the model wrote in the self-play stage of the experiment runs
(`<runs>/experiment*/seed-*/selfplay/round-*/data/trees.jsonl`, branches of the "root" node: task prefix
+ sampled completion; Python), drops identical programs (the first occurrence in sorted file order is
kept), and draws a seeded sample spread over the tasks' CWEs: per CWE max(8, 2 x its tasks) programs,
round-robin over its tasks, each task's programs in a seeded random order; the whole sample is then
shuffled (seeded), so auditing it in file order audits a random subset at every point. It writes the
programs (no oracle label, verdict or finding: the audit is blind) to PROGRAMS and one `pending` entry
per program to the audit file. Train tasks only: this set may be used to write rules.

`measure` judges the audited programs with the installed oracle (task = the program's task CWE and
prefix) and prints, per CWE and overall, the hand audit's counts and the oracle's recall (audited
`vulnerable` judged vulnerable) and FPR (audited `secure` judged vulnerable), both for a finding of the
task's CWE (like for like: `treeplay.oracle.cwe.matches`) and for any finding. `unparseable` programs
count as not flagged (and are counted); `incomplete`/`unsupported` ones are excluded from the rates and
counted. `not-judgeable` programs are counted and not rated.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml
from oracle_fidelity import cell  # this directory is on sys.path

from treeplay.oracle.cwe import matches
from treeplay.tasks.records import Task

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "benchmarks" / "oracle_realout_programs.jsonl"
AUDIT = REPO / "benchmarks" / "oracle_realout_audit.yaml"
TREES_GLOB = "experiment*/seed-*/selfplay/round-*/data/trees.jsonl"
VERDICTS = ("vulnerable", "secure", "not-judgeable")
PENDING = "pending"
ENTRY_FIELDS = ("id", "task", "cwe", "verdict", "reason")
SEED = 16


class RealoutError(ValueError):
    """The programs or audit file is malformed, or they disagree."""


def program_id(program: str) -> str:
    return hashlib.sha256(program.encode()).hexdigest()[:12]


def collect(runs: Path) -> dict[str, dict[str, Any]]:
    """Program id -> record, for every distinct Python root-branch program of the self-play trees."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(runs.glob(TREES_GLOB)):
        where = str(path.parent.parent.relative_to(runs))
        for number, line in enumerate(path.read_text().splitlines(), 1):
            tree = json.loads(line)
            task = tree.get("task") or {}
            if task.get("language") != "py" or not task.get("cwe"):
                continue
            for index, branch in enumerate(tree["branches"]):
                if branch["node_id"] != "root":
                    continue
                program = branch["prefix"] + branch["completion"]
                pid = program_id(program)
                if pid in found:
                    continue
                found[pid] = {"id": pid, "task": tree["task_id"], "cwe": task["cwe"][0],
                              "source": f"{where}:{number}:{index}", "finish_reason": branch["finish_reason"],
                              "prefix": task["prefix"], "program": program}
    return found


def draw(found: dict[str, dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The seeded sample: per CWE max(8, 2 x tasks), round-robin over its tasks, then shuffled."""
    by_cwe: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for pid in sorted(found):
        by_cwe[found[pid]["cwe"]][found[pid]["task"]].append(pid)
    picked: list[str] = []
    for cwe in sorted(by_cwe):
        queues = []
        for task in sorted(by_cwe[cwe]):
            ids = by_cwe[cwe][task]
            random.Random(f"{seed}:{task}").shuffle(ids)
            queues.append(ids)
        quota = max(8, 2 * len(queues))
        taken: list[str] = []
        while len(taken) < quota and any(queues):
            for queue in queues:
                if queue and len(taken) < quota:
                    taken.append(queue.pop(0))
        picked += taken
    random.Random(seed).shuffle(picked)
    return [found[pid] for pid in picked]


def write_sample(sample: list[dict[str, Any]], programs: Path, audit: Path) -> None:
    with programs.open("w") as fh:
        for record in sample:
            fh.write(json.dumps(record) + "\n")
    header = audit.read_text().split("\nprograms:")[0]
    lines = [header, "programs:"]
    for r in sample:
        lines.append(f"  - {{id: \"{r['id']}\", task: \"{r['task']}\", cwe: {r['cwe']}, verdict: {PENDING},\n"
                     f"     reason: \"\"}}")
    audit.write_text("\n".join(lines) + "\n")


def load_programs(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        if program_id(record["program"]) != record["id"]:
            raise RealoutError(f"{path}:{number}: field 'id': {record['id']!r} is not the program's sha256 prefix")
        out[record["id"]] = record
    return out


def load_audit(path: Path, programs: dict[str, dict[str, Any]],
               error: type[ValueError] = RealoutError) -> dict[str, str]:
    """Program id -> verdict (`pending` included), every entry checked against the programs file;
    a malformed entry raises `error` naming the file, the entry's line and the field."""
    text = path.read_text()
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("programs"), list):
        raise error(f"{path}: expected a mapping with a 'programs' list at the top level")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    node = next(v for k, v in root.value if k.value == "programs")
    verdicts: dict[str, str] = {}
    for i, (item, entry) in enumerate(zip(node.value, data["programs"], strict=True)):
        where = f"{path}:{item.start_mark.line + 1}: programs[{i}]"
        if not isinstance(entry, dict) or set(entry) != set(ENTRY_FIELDS):
            raise error(f"{where} field 'fields': expected exactly {', '.join(ENTRY_FIELDS)}")
        record = programs.get(entry["id"])
        if record is None:
            raise error(f"{where} field 'id': {entry['id']!r} is not in the programs file")
        if entry["id"] in verdicts:
            raise error(f"{where} field 'id': {entry['id']} is audited twice")
        for field in ("task", "cwe"):
            if entry[field] != record[field]:
                raise error(f"{where} field '{field}': {entry[field]!r} but the program has {record[field]!r}")
        if entry["verdict"] not in (*VERDICTS, PENDING):
            raise error(f"{where} field 'verdict': {entry['verdict']!r} is not one of "
                               f"{', '.join(VERDICTS)} (or {PENDING})")
        if entry["verdict"] != PENDING and not str(entry["reason"] or "").strip():
            raise error(f"{where} field 'reason': a one-line reason is required")
        verdicts[entry["id"]] = entry["verdict"]
    return verdicts


Counts = Counter[str]


def tally(records: list[dict[str, Any]], verdicts: dict[str, str], judged: list[Any]) -> dict[str, Counts]:
    """CWE ('all' too) -> counts: audit verdicts, oracle statuses, flags (like for like and any)."""
    groups: dict[str, Counts] = defaultdict(Counter)
    for record, verdict in zip(records, judged, strict=True):
        audit = verdicts[record["id"]]
        any_flag = verdict.status == "vulnerable"
        cwe_flag = any_flag and any(matches(f.cwe, (record["cwe"],)) for f in verdict.findings)
        for group in ("all", record["cwe"]):
            c = groups[group]
            c[audit] += 1
            c[f"status:{verdict.status}"] += 1
            if audit in ("vulnerable", "secure") and verdict.status in ("incomplete", "unsupported"):
                c["unjudged"] += 1
            elif audit in ("vulnerable", "secure"):
                c[f"n:{audit}"] += 1
                c[f"cwe:{audit}"] += cwe_flag
                c[f"any:{audit}"] += any_flag
    return dict(groups)


def print_table(groups: dict[str, Counts], by_cwe: bool) -> None:
    header = ["CWE", "programs", "vuln", "secure", "not-judgeable", "recall (task CWE)", "FPR (task CWE)",
              "recall (any finding)", "FPR (any finding)", "unparseable", "incomplete"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for group in ["all", *(sorted(g for g in groups if g != "all") if by_cwe else [])]:
        c = groups[group]
        nv, ns = c["n:vulnerable"], c["n:secure"]
        cells = [group, str(c["vulnerable"] + c["secure"] + c["not-judgeable"]), str(c["vulnerable"]),
                 str(c["secure"]), str(c["not-judgeable"]), cell(c["cwe:vulnerable"], nv), cell(c["cwe:secure"], ns),
                 cell(c["any:vulnerable"], nv), cell(c["any:secure"], ns), str(c["status:unparseable"]),
                 str(c["status:incomplete"] + c["status:unsupported"])]
        print("| " + " | ".join(cells) + " |")


def measure(args: argparse.Namespace) -> None:
    from treeplay.oracle import Oracle, OracleConfig

    programs = load_programs(args.programs)
    verdicts = load_audit(args.audit, programs)  # before judging: a broken audit fails at once
    records = [programs[pid] for pid, v in verdicts.items() if v != PENDING]
    if not records:
        raise SystemExit(f"{args.audit}: no audited program (all {len(verdicts)} pending)")
    items = [(r["program"], "py", Task(id=r["task"], language="py", cwe=(r["cwe"],), instruction="",
                                       prefix=r["prefix"])) for r in records]
    oracle = Oracle(OracleConfig(use_cache=False, workers=args.workers))
    start = time.perf_counter()
    judged = oracle.judge_many(items)
    elapsed = time.perf_counter() - start
    oracle.close()
    print(f"judged {len(records)} audited programs ({len(verdicts) - len(records)} pending) in {elapsed:.1f}s")
    print_table(tally(records, verdicts, judged), args.by_cwe)
    if args.dump:
        with args.dump.open("w") as fh:
            for r, v in zip(records, judged, strict=True):
                fh.write(json.dumps({"id": r["id"], "cwe": r["cwe"], "audit": verdicts[r["id"]], "status": v.status,
                                     "findings": sorted({f"{f.rule} {f.cwe} L{f.line}" for f in v.findings})}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--runs", type=Path, required=True, help="directory holding the experiment run dirs")
    s.add_argument("--seed", type=int, default=SEED)
    m = sub.add_parser("measure")
    m.add_argument("--by-cwe", action="store_true")
    m.add_argument("--workers", type=int, default=1)
    m.add_argument("--dump", type=Path, help="per-program verdicts and findings (JSON lines), for reading misses")
    for p in (s, m):
        p.add_argument("--programs", type=Path, default=PROGRAMS)
        p.add_argument("--audit", type=Path, default=AUDIT)
    args = parser.parse_args()
    if args.cmd == "sample":
        found = collect(args.runs)
        sample = draw(found, args.seed)
        write_sample(sample, args.programs, args.audit)
        print(f"{len(found)} distinct programs; sampled {len(sample)}: "
              + ", ".join(f"{c} {n}" for c, n in sorted(Counter(r["cwe"] for r in sample).items())))
        return
    measure(args)


if __name__ == "__main__":
    main()
