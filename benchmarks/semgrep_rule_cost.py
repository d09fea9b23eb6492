"""CPU cost of each Python semgrep rule on the speed benchmark's 200 SafeCoder-train snippets.

    nice -n 15 .venv/bin/python benchmarks/semgrep_rule_cost.py [--data ../shared/data] [--rounds 3]
        [--rules-dir src/treeplay/oracle/rules] [--top 20]

Every rule of `python.yaml` + `python_taint.yaml` runs alone in one semgrep-core call over the
snippets (prepared as the oracle prepares them, flags as `analyzers/semgrep.py` passes them). A
rule's cost is that call's CPU seconds (user + sys, the minimum over `--rounds`) minus start-up
(a rule semgrep-core's prefilter skips everywhere) minus the parsing of the files the rule ran on
(parsing all files = a rule without prefilter that matches nothing, minus start-up; charged by the
share of bytes): what the rule adds to the one call with all rules, where every file is parsed once.
CPU, not wall: the per-rule wall times of `-json_time` grow with machine load. Also printed: on how
many files each rule got past semgrep-core's prefilter (match time > 0 in `-json_time`; a rule run
on every file has no usable prefilter) and the CPU of one call with all rules.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from oracle_speed import python_snippets  # this directory is on sys.path

from treeplay.oracle.analyzers.semgrep import SemgrepAnalyzer, _semgrep_env
from treeplay.oracle.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
# Parses every file (no identifier for semgrep's prefilter to require) and matches next to nothing.
PARSE_ALL: dict[str, Any] = {"id": "parse-all", "languages": ["python"], "severity": "INFO", "message": "-",
                             "pattern": "$F(1, 2, 3, 4, 5, 6, 7, 8, 9)"}
# Skipped on every file by semgrep-core's prefilter: start-up and rule parsing only.
START_UP: dict[str, Any] = {"id": "start-up", "languages": ["python"], "severity": "INFO", "message": "-",
                            "pattern": "treeplay_never_called_anywhere(...)"}


def write_targets(snippets: list[str], root: Path) -> Path:
    listing = []
    for i, code in enumerate(snippets):
        folder = root / f"s{i}"
        folder.mkdir()
        (folder / "snippet.py").write_text(prepare(code, "py").text, encoding="utf-8")
        listing.append(["CodeTarget", {"path": {"fpath": str(folder / "snippet.py"), "ppath": f"/s{i}/snippet.py"},
                                       "analyzer": "python", "products": ["sast"]}])
    targets = root / "targets.json"
    targets.write_text(json.dumps(["Targets", listing]), encoding="utf-8")
    return targets


def run_core(core: str, rules: list[dict[str, Any]], targets: Path) -> tuple[float, dict[str, Any]]:
    """(CPU s of one semgrep-core call, its JSON output with `-json_time`)."""
    rules_file = targets.parent / "rules.json"
    rules_file.write_text(json.dumps({"rules": rules}), encoding="utf-8")
    cmd = [core, "-json", "-json_time", "-rules", str(rules_file), "-targets", str(targets), "-timeout", "20",
           "-timeout_threshold", "3", "-max_memory", "0", "-fast", "-j", "1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=targets.parent, env=_semgrep_env())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, json.loads(proc.stdout[proc.stdout.find("{"):])


def files_run(output: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per rule id: (files, bytes) semgrep-core ran it on (match time > 0: past its prefilter)."""
    timing = output["time"]
    ids = [r if isinstance(r, str) else r.get("id", "") for r in timing["rules"]]
    counts = dict.fromkeys(ids, (0, 0))
    for target in timing["targets"]:
        for rule_id, seconds in zip(ids, target["match_times"], strict=True):
            if seconds > 0:
                files, size = counts[rule_id]
                counts[rule_id] = (files + 1, size + int(target["num_bytes"]))
    return counts


def cheapest(core: str, rules: list[dict[str, Any]], targets: Path, rounds: int) -> tuple[float, dict[str, Any]]:
    return min((run_core(core, rules, targets) for _ in range(rounds)), key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rules-dir", type=Path, default=REPO / "src" / "treeplay" / "oracle" / "rules")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    core = SemgrepAnalyzer()._core()
    if core is None:
        raise SystemExit("semgrep-core not found (pip install semgrep)")
    rules: list[dict[str, Any]] = []
    for name in ("python.yaml", "python_taint.yaml"):
        rules += yaml.safe_load((args.rules_dir / name).read_text(encoding="utf-8"))["rules"]
    with tempfile.TemporaryDirectory(prefix="treeplay-rule-cost-") as tmp:
        targets = write_targets(python_snippets(args.data, args.n), Path(tmp))
        all_cpu = cheapest(core, rules, targets, args.rounds)[0]
        start_up = cheapest(core, [START_UP], targets, args.rounds)[0]
        parse_cpu, parse_output = cheapest(core, [PARSE_ALL], targets, args.rounds)
        all_files, all_bytes = files_run(parse_output)[PARSE_ALL["id"]]
        parse_cpu -= start_up
        cost, ran = {}, {}
        for rule in rules:
            cpu, output = cheapest(core, [rule], targets, args.rounds)
            ran[rule["id"]] = files_run(output)[rule["id"]]
            cost[rule["id"]] = cpu - start_up - parse_cpu * ran[rule["id"]][1] / max(all_bytes, 1)
    print(f"{len(rules)} rules, {args.n} snippets, {args.rounds} rounds (min CPU s): all rules in one call "
          f"{all_cpu:.2f} s = start-up {start_up:.2f} + parsing {parse_cpu:.2f} ({all_files} files) + rules; "
          f"sum of the per-rule costs {sum(cost.values()):.2f} s")
    for rule_id, seconds in sorted(cost.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{1000 * seconds:7.0f} ms  {ran[rule_id][0]:4d} files  {rule_id}")


if __name__ == "__main__":
    main()
