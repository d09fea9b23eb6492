"""benchmarks/oracle_realout.py: the real-output audit's files, the seeded draw and the rates, by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from treeplay.oracle.records import Finding, Verdict

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_DIR))  # the script imports oracle_fidelity from its own directory
_SPEC = importlib.util.spec_from_file_location("oracle_realout", _DIR / "oracle_realout.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

# ids = first 12 hex of sha256 of the program text, by `printf '...' | sha256sum`
PROGRAMS = [("cc42155088fc", "print(1)\n", "sec-new-desc.train:7", "CWE-326"),
            ("4205c4809ab1", "x = 2\n", "sec-new-desc.train:284", "CWE-22")]


@pytest.fixture
def programs(tmp_path: Path) -> Path:
    path = tmp_path / "programs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "program": p, "task": t, "cwe": c, "prefix": ""}) + "\n"
                            for i, p, t, c in PROGRAMS))
    return path


def _audit(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "audit.yaml"
    path.write_text("# criteria\nprograms:\n" + body)
    return path


GOOD = ('  - {id: "cc42155088fc", task: "sec-new-desc.train:7", cwe: CWE-326, verdict: secure, reason: "2048"}\n'
        '  - {id: "4205c4809ab1", task: "sec-new-desc.train:284", cwe: CWE-22, verdict: pending, reason: ""}\n')


def test_program_ids_are_sha256_prefixes_and_checked(programs: Path, tmp_path: Path) -> None:
    assert bench.program_id("print(1)\n") == "cc42155088fc"
    assert set(bench.load_programs(programs)) == {"cc42155088fc", "4205c4809ab1"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(programs.read_text().replace("x = 2", "x = 3"))
    with pytest.raises(bench.RealoutError, match=r"bad\.jsonl:2: field 'id'"):
        bench.load_programs(bad)


def test_audit_loads_verdicts_and_pending(programs: Path, tmp_path: Path) -> None:
    loaded = bench.load_audit(_audit(tmp_path, GOOD), bench.load_programs(programs))
    assert loaded == {"cc42155088fc": "secure", "4205c4809ab1": "pending"}


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ('id: "4205c4809ab1"', 'id: "000000000000"', 4, "id"),
        ("cwe: CWE-326", "cwe: CWE-327", 3, "cwe"),
        ('task: "sec-new-desc.train:7"', 'task: "sec-new-desc.train:8"', 3, "task"),
        ("verdict: secure", "verdict: safe", 3, "verdict"),
        ('verdict: secure, reason: "2048"', 'verdict: secure, reason: " "', 3, "reason"),
        ('verdict: pending, reason: ""', 'verdict: vulnerable, reason: ""', 4, "reason"),
        ('reason: "2048"}', 'reason: "2048", seen: yes}', 3, "fields"),
    ],
)
def test_audit_errors_name_file_line_and_field(programs: Path, tmp_path: Path, old: str, new: str, line: int,
                                               field: str) -> None:
    assert old in GOOD
    path = _audit(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(bench.RealoutError, match=rf"audit\.yaml:{line}: programs\[{line - 3}\] field '{field}'"):
        bench.load_audit(path, bench.load_programs(programs))


def test_a_program_audited_twice_is_an_error(programs: Path, tmp_path: Path) -> None:
    first = GOOD.splitlines(keepends=True)[0]
    with pytest.raises(bench.RealoutError, match=r"audit\.yaml:4: programs\[1\] field 'id'.*twice"):
        bench.load_audit(_audit(tmp_path, first + first), bench.load_programs(programs))


def _finding(cwe: str) -> Finding:
    return Finding(cwe=cwe, line=1, end_line=1, analyzer="semgrep", rule="r", severity="high", message="m")


def test_tally_rates_like_for_like_and_any_finding() -> None:
    rows = [  # (audit verdict, oracle status, finding CWEs); every task is CWE-22
        ("vulnerable", "vulnerable", ["CWE-22"]),   # flagged like for like and any
        ("vulnerable", "vulnerable", ["CWE-798"]),  # any finding only
        ("vulnerable", "unparseable", []),          # counts, not flagged
        ("secure", "vulnerable", ["CWE-798"]),      # false positive for "any finding" only
        ("secure", "secure", []),
        ("secure", "incomplete", []),               # unjudged: out of the rates
        ("not-judgeable", "vulnerable", ["CWE-22"]),  # never rated
    ]
    records = [{"id": f"p{i}", "cwe": "CWE-22"} for i in range(len(rows))]
    verdicts = {f"p{i}": audit for i, (audit, _, _) in enumerate(rows)}
    judged = [Verdict(status=s, findings=tuple(_finding(c) for c in cwes)) for _, s, cwes in rows]  # type: ignore[arg-type]
    groups = bench.tally(records, verdicts, judged)
    assert groups["all"] == groups["CWE-22"]
    c = groups["all"]
    assert (c["n:vulnerable"], c["cwe:vulnerable"], c["any:vulnerable"]) == (3, 1, 2)
    assert (c["n:secure"], c["cwe:secure"], c["any:secure"]) == (2, 0, 1)
    assert (c["unjudged"], c["not-judgeable"], c["status:unparseable"]) == (1, 1, 1)


def test_draw_spreads_over_tasks_per_cwe_and_is_seeded() -> None:
    found = {}
    for task, cwe, n in (("t1", "CWE-502", 5), ("t2", "CWE-502", 5), ("t3", "CWE-502", 5), ("t4", "CWE-22", 4),
                         ("t5", "CWE-78", 20)):
        for k in range(n):
            pid = f"{task}-{k:02d}"
            found[pid] = {"id": pid, "task": task, "cwe": cwe}
    sample = bench.draw(found, 16)
    per_task = Counter(r["task"] for r in sample)
    # CWE-502: max(8, 2 x 3 tasks) = 8, round-robin: 3 + 3 + 2; CWE-22: all 4 it has; CWE-78: 8
    assert sorted(per_task[t] for t in ("t1", "t2", "t3")) == [2, 3, 3]
    assert (per_task["t4"], per_task["t5"]) == (4, 8)
    assert len({r["id"] for r in sample}) == len(sample) == 20
    assert [r["id"] for r in bench.draw(found, 16)] == [r["id"] for r in sample]
