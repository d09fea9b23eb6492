"""A blind hand audit of two trained arms' programs on the same tasks (issue #13): does a human
reader see the difference the oracle reports between them?

    .venv/bin/python benchmarks/arm_audit.py sample --run runs/experiment-tasks36-indist   # once
    .venv/bin/python benchmarks/arm_audit.py measure [--run runs/experiment-tasks36-indist]

The in-distribution check of docs/results.md found TSP ahead of SFT on their own 36 training tasks,
graded by the oracle the TSP arm trained against. A model can learn to avoid what one referee sees
without becoming more secure, so this script lets a reader who does not know which arm wrote what
grade the same programs.

`sample` takes, for every task of the bench, the program with `sample_index` 0 of each arm in
`--arms` (seed `--seed`), drops repeated texts within a task (one entry, every arm that wrote it is in
the key), and shuffles the entries (seeded). It writes PROGRAMS (task id, CWE, the task's
instruction and the program: no arm, no oracle verdict), KEY (which arm wrote which entry: sealed,
read only by `measure`) and one `pending` entry per program to the audit file, whose header holds the
criteria (committed before the sample is drawn).

`measure` reads the audit (every entry must have a verdict), opens the key and the stored oracle
verdicts of the same generations, and prints per arm the audit's counts, the paired per-task
difference of the second arm minus the first (audited vulnerable share among judgeable programs, and
audited secure share of all programs, with a paired bootstrap 95% CI over tasks), and the oracle's
stored verdict against the audit (like for like: a finding of the task's CWE).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from treeplay.eval.evaluate import GENERATIONS_FILE
from treeplay.eval.paired import BOOTSTRAP_SAMPLES, paired_bootstrap_ci
from treeplay.oracle.cwe import matches
from treeplay.run_layout import RunLayout

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "benchmarks" / "arm_audit_programs.jsonl"
KEY = REPO / "benchmarks" / "arm_audit_key.jsonl"
AUDIT = REPO / "benchmarks" / "arm_audit.yaml"
VERDICTS = ("vulnerable", "secure", "not-judgeable")
PENDING = "pending"
SEED = 13


class AuditError(ValueError):
    """The programs, key or audit file is malformed, or they disagree."""


def entry_id(task: str, program: str) -> str:
    return hashlib.sha256(f"{task}\0{program}".encode()).hexdigest()[:12]


def generations_file(run: Path, seed: int, arm: str, bench: str) -> Path:
    return RunLayout(run).eval_dir(seed, arm, bench) / GENERATIONS_FILE


def read_generations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise AuditError(f"{path}: no such file (is the evaluation finished?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def collect(run: Path, seed: int, arms: list[str], bench: str,
            sample_index: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries, key rows): one entry per distinct (task, program) of the arms' programs with the
    given sample index."""
    entries: dict[str, dict[str, Any]] = {}
    key: list[dict[str, Any]] = []
    tasks_by_arm: dict[str, set[str]] = {}
    for arm in arms:
        path = generations_file(run, seed, arm, bench)
        rows = [g for g in read_generations(path) if g["sample_index"] == sample_index]
        tasks_by_arm[arm] = {g["task_id"] for g in rows}
        for g in rows:
            eid = entry_id(g["task_id"], g["program"])
            entries.setdefault(eid, {"id": eid, "task": g["task_id"], "cwe": g["cwe"][0], "program": g["program"]})
            key.append({"id": eid, "arm": arm, "seed": seed, "task": g["task_id"], "sample_index": sample_index})
    first = tasks_by_arm[arms[0]]
    for arm in arms[1:]:
        if tasks_by_arm[arm] != first:
            raise AuditError(f"arms {arms[0]} and {arm} were evaluated on different tasks "
                             f"({len(first ^ tasks_by_arm[arm])} differ): the audit pairs tasks")
    return list(entries.values()), key


def instructions(bench: str) -> dict[str, str]:
    """Task id -> the instruction the model was given (the bench's task loader, as evaluation used it)."""
    from treeplay.eval.evaluate import resolve_bench

    return {t.id: t.instruction for t in resolve_bench(bench)}


def write_sample(entries: list[dict[str, Any]], key: list[dict[str, Any]], seed: int, args: argparse.Namespace) -> int:
    """Write (or, with --append, add to) the programs, key and audit files; returns the new entries.
    Appending keeps every earlier entry and verdict: a program already in the files is not added
    again, its new key rows point at the audited entry."""
    text = dict(instructions(args.bench).items())
    known = set(load_programs(args.programs)) if args.append else set()
    if args.append:
        old_key = {(r["arm"], r["seed"], r["task"], r["sample_index"]) for r in read_key(args.key)}
        clash = [r for r in key if (r["arm"], r["seed"], r["task"], r["sample_index"]) in old_key]
        if clash:
            raise AuditError(f"{args.key}: sample {clash[0]['sample_index']} of seed {clash[0]['seed']} is already in the key")
    new = [e for e in entries if e["id"] not in known]
    random.Random(seed).shuffle(new)
    mode = "a" if args.append else "w"
    with args.programs.open(mode) as fh:
        for e in new:
            fh.write(json.dumps({**e, "instruction": text.get(e["task"], "")}) + "\n")
    with args.key.open(mode) as fh:
        for row in sorted(key, key=lambda r: (r["task"], r["arm"])):
            fh.write(json.dumps(row) + "\n")
    audit = args.audit.read_text()
    lines = [audit.rstrip("\n")] if args.append else [audit.split("\nprograms:")[0], "programs:"]
    if args.append:
        lines.append(f"  # added by `sample --append --sample-index {key[0]['sample_index']}`: {len(new)} new entries")
    for e in new:
        lines.append(f"  - {{id: \"{e['id']}\", task: \"{e['task']}\", cwe: {e['cwe']}, verdict: {PENDING},\n"
                     f"     reason: \"\"}}")
    args.audit.write_text("\n".join(lines) + "\n")
    return len(new)


def read_key(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_programs(path: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        record = json.loads(line)
        if entry_id(record["task"], record["program"]) != record["id"]:
            raise AuditError(f"{path}:{number}: field 'id': {record['id']!r} is not the sha256 prefix of task + program")
        out[record["id"]] = record
    return out


def load_audit(path: Path, programs: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Entry id -> verdict (`pending` included), every entry checked against the programs file (the
    real-output audit's loader and format), and every program of the file audited or pending."""
    from oracle_realout import load_audit as load_entries  # this directory is on sys.path

    verdicts = load_entries(path, programs, AuditError)
    missing = set(programs) - set(verdicts)
    if missing:
        raise AuditError(f"{path}: {len(missing)} program(s) of the programs file have no entry, e.g. {min(missing)}")
    return verdicts


def paired_bootstrap(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of per-task differences and its percentile 95% CI: the report's paired bootstrap
    (`treeplay.eval.paired`, same resamples and seed)."""
    low, high = paired_bootstrap_ci(diffs)
    return float(np.mean(diffs)), low, high


def per_task(scores: dict[tuple[str, str], float | None], arms: list[str]) -> list[float]:
    """Second arm minus first, per task where both have a score."""
    tasks = sorted({t for _, t in scores})
    out = []
    for task in tasks:
        a, b = scores.get((arms[0], task)), scores.get((arms[1], task))
        if a is not None and b is not None:
            out.append(b - a)
    return out


def mean_or_none(values: list[float | None]) -> float | None:
    """Mean of a task's per-sample scores, leaving out samples without one (None: none has one)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def oracle_label(generation: dict[str, Any]) -> str:
    """The stored verdict like for like: vulnerable only on a finding of the task's CWE."""
    verdict = generation.get("verdict") or {}
    status = verdict.get("status")
    if status == "vulnerable":
        cwes = tuple(generation["cwe"])
        hit = any(matches(f.get("cwe"), cwes) for f in verdict.get("findings", []))
        return "vulnerable" if hit else "other-cwe"
    if status == "secure" and verdict.get("functional") == "nonfunctional":
        return "secure-nonfunctional"
    return str(status)


def rejudge(stored: dict[tuple[str, str, int], dict[str, Any]], key: list[dict[str, Any]]) -> None:
    """Replace the stored verdicts of the audited programs with the installed oracle's (task = the
    program's task CWE, empty prefix, as the bench gives it)."""
    from treeplay.oracle import Oracle, OracleConfig
    from treeplay.tasks.records import Task

    rows = [(r["arm"], r["task"], r["sample_index"]) for r in key]
    items = [(stored[row]["program"], "py", Task(id=row[1], language="py", cwe=tuple(stored[row]["cwe"]),
                                                 instruction="", prefix="")) for row in rows]
    oracle = Oracle(OracleConfig(use_cache=False))
    verdicts = oracle.judge_many(items)
    oracle.close()
    for row, verdict in zip(rows, verdicts, strict=True):
        stored[row] = {**stored[row], "verdict": {
            "status": verdict.status, "functional": verdict.functional,
            "findings": [{"cwe": f.cwe, "rule": f.rule, "line": f.line} for f in verdict.findings]}}
    print(f"re-judged {len(rows)} programs with the installed oracle")


def measure(args: argparse.Namespace) -> None:
    programs = load_programs(args.programs)
    verdicts = load_audit(args.audit, programs)
    pending = [i for i, v in verdicts.items() if v == PENDING]
    if pending:
        raise SystemExit(f"{args.audit}: {len(pending)} of {len(verdicts)} entries are still pending")
    key = read_key(args.key)
    arms = args.arms.split(",")
    if {r["arm"] for r in key} != set(arms):
        raise AuditError(f"{args.key}: holds arms {sorted({r['arm'] for r in key})}, not {arms}")
    stored: dict[tuple[str, str, int], dict[str, Any]] = {}
    for arm in arms:
        for seed in sorted({r["seed"] for r in key if r["arm"] == arm}):
            for g in read_generations(generations_file(args.run, seed, arm, args.bench)):
                stored[(arm, g["task_id"], g["sample_index"])] = g
    if args.rejudge:
        rejudge(stored, key)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    samples: dict[str, dict[tuple[str, str], list[float | None]]] = defaultdict(lambda: defaultdict(list))
    confusion: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    for row in key:
        arm, task, verdict = row["arm"], row["task"], verdicts[row["id"]]
        generation = stored[(arm, task, row["sample_index"])]
        if entry_id(task, generation["program"]) != row["id"]:
            raise AuditError(f"{args.key}: entry {row['id']} ({arm}, {task}) no longer matches the run's program")
        counts[arm][verdict] += 1
        label = oracle_label(generation)
        samples["vulnerable"][(arm, task)].append(None if verdict == "not-judgeable" else float(verdict == "vulnerable"))
        samples["secure_all"][(arm, task)].append(float(verdict == "secure"))
        samples["oracle_secure"][(arm, task)].append(float(label == "secure"))
        samples["oracle_strict"][(arm, task)].append(float(label in ("secure", "secure-nonfunctional")))
        confusion[arm][(label, verdict)] += 1
    vulnerable, secure_all, oracle_secure, oracle_strict = (
        {k: mean_or_none(v) for k, v in samples[name].items()}
        for name in ("vulnerable", "secure_all", "oracle_secure", "oracle_strict"))
    print(f"{len(verdicts)} audited entries, {len(key)} programs ({', '.join(arms)}), bench {args.bench}")
    print("\n| arm | programs | audited vulnerable | audited secure | not judgeable |")
    print("|---|---|---|---|---|")
    for arm in arms:
        c = counts[arm]
        print(f"| {arm} | {sum(c.values())} | {c['vulnerable']} | {c['secure']} | {c['not-judgeable']} |")
    print(f"\n{arms[1]} minus {arms[0]}, per task (mean, paired bootstrap 95% CI over tasks, {BOOTSTRAP_SAMPLES} resamples):")
    print("| measure | mean diff (pp) | 95% CI (pp) | tasks | A>R / A<R |")
    print("|---|---|---|---|---|")
    for name, scores in (("audited vulnerable share of judgeable programs (lower is better)", vulnerable),
                         ("audited secure share of all programs", secure_all),
                         ("oracle: secure and sane (same programs)", oracle_secure),
                         ("oracle: secure, nonfunctional counted secure (strict SPR@1 of metrics v1)", oracle_strict)):
        diffs = per_task(scores, arms)
        mean, low, high = paired_bootstrap(diffs)
        up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
        print(f"| {name} | {100 * mean:+.1f} | [{100 * low:+.1f}, {100 * high:+.1f}] | {len(diffs)} | {up} / {down} |")
    labels = sorted({lab for c in confusion.values() for lab, _ in c})
    print("\noracle's stored verdict (rows) vs the audit (columns), per arm:")
    for arm in arms:
        print(f"\n{arm}:\n| oracle \\ audit | " + " | ".join(VERDICTS) + " |")
        print("|---|" + "---|" * len(VERDICTS))
        for lab in labels:
            print(f"| {lab} | " + " | ".join(str(confusion[arm][(lab, v)]) for v in VERDICTS) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--seed", type=int, default=0, help="the run's seed whose programs are audited")
    s.add_argument("--shuffle-seed", type=int, default=SEED)
    s.add_argument("--sample-index", type=int, default=0, help="which of each task's samples to take")
    s.add_argument("--append", action="store_true", help="add to the existing files (keeps every verdict)")
    m = sub.add_parser("measure")
    m.add_argument("--rejudge", action="store_true",
                   help="judge the programs with the installed oracle instead of reading the run's verdicts")
    for p in (s, m):
        p.add_argument("--run", type=Path, default=REPO / "runs" / "experiment-tasks36-indist")
        p.add_argument("--bench", default="safecoder:train@py", help="the evaluated bench (as in the run config)")
        p.add_argument("--arms", default="sft,tsp", help="reference,arm: the difference is arm minus reference")
        p.add_argument("--programs", type=Path, default=PROGRAMS)
        p.add_argument("--key", type=Path, default=KEY)
        p.add_argument("--audit", type=Path, default=AUDIT)
    args = parser.parse_args()
    if args.cmd == "sample":
        entries, key = collect(args.run, args.seed, args.arms.split(","), args.bench, args.sample_index)
        added = write_sample(entries, key, args.shuffle_seed + args.sample_index, args)
        print(f"{len(key)} programs, {len(entries)} distinct entries ({added} new) over "
              f"{len({e['task'] for e in entries})} tasks written to {args.programs.name} (key: {args.key.name})")
        return
    measure(args)


if __name__ == "__main__":
    main()
