"""benchmarks/arm_audit.py: the blind two-arm audit's files, pairing and per-task differences, by hand."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from treeplay.eval.evaluate import bench_slug

_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(_DIR))
_SPEC = importlib.util.spec_from_file_location("arm_audit", _DIR / "arm_audit.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

BENCH = "safecoder:train@py"
# (task, arm, program, stored oracle verdict) for sample 0; every task's CWE is CWE-22
GENERATIONS = [
    ("A", "sft", 'print("a sft")\n', {"status": "vulnerable", "findings": [{"cwe": "CWE-22"}]}),
    ("A", "tsp", 'print("a tsp")\n', {"status": "secure", "findings": []}),
    ("B", "sft", 'print("b sft")\n', {"status": "secure", "findings": []}),
    ("B", "tsp", 'print("b tsp")\n', {"status": "vulnerable", "findings": [{"cwe": "CWE-89"}]}),  # other CWE
    ("C", "sft", 'print("c sft")\n', {"status": "unparseable", "findings": []}),
    ("C", "tsp", 'print("c tsp")\n', {"status": "secure", "findings": []}),  # an oracle miss
]
AUDIT = {  # the hand audit of each program
    'print("a sft")\n': "vulnerable", 'print("a tsp")\n': "secure", 'print("b sft")\n': "secure",
    'print("b tsp")\n': "secure", 'print("c sft")\n': "not-judgeable", 'print("c tsp")\n': "vulnerable",
}


def _write_run(root: Path) -> Path:
    run = root / "run"
    for arm in ("sft", "tsp"):
        out = run / "seed-0" / arm / "eval" / bench_slug(BENCH)
        out.mkdir(parents=True)
        rows = [{"task_id": t, "cwe": ["CWE-22"], "sample_index": 0, "program": p, "verdict": v}
                for t, a, p, v in GENERATIONS if a == arm]
        (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _args(root: Path, run: Path, **extra: Any) -> argparse.Namespace:
    return argparse.Namespace(run=run, bench=BENCH, arms="sft,tsp", programs=root / "programs.jsonl",
                              key=root / "key.jsonl", audit=root / "audit.yaml", append=False, rejudge=False,
                              **extra)


def _sample(root: Path, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    run = _write_run(root)
    args = _args(root, run)
    args.audit.write_text("# criteria\nprograms:\n")
    monkeypatch.setattr(bench, "instructions", lambda _bench: {"A": "do a"})
    entries, key = bench.collect(run, 0, ["sft", "tsp"], BENCH)
    assert bench.write_sample(entries, key, 13, args) == 6
    return args


def _fill(args: argparse.Namespace) -> None:
    programs = bench.load_programs(args.programs)
    text = args.audit.read_text()
    for pid, record in programs.items():
        text = text.replace(f'id: "{pid}", task: "{record["task"]}", cwe: CWE-22, verdict: pending,\n     reason: ""',
                            f'id: "{pid}", task: "{record["task"]}", cwe: CWE-22, verdict: {AUDIT[record["program"]]},\n'
                            f'     reason: "by hand"')
    args.audit.write_text(text)


def test_entry_ids_and_the_sealed_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # by `printf 'A\0print("a sft")\n' | sha256sum`
    assert bench.entry_id("A", 'print("a sft")\n') == "2636e2979842"
    assert bench.entry_id("A", 'print("a tsp")\n') == "8345d0a6b808"
    args = _sample(tmp_path, monkeypatch)
    programs = [json.loads(line) for line in args.programs.read_text().splitlines()]
    assert all(set(p) == {"id", "task", "cwe", "program", "instruction"} for p in programs)  # no arm, no verdict
    assert {p["task"]: p["instruction"] for p in programs}["A"] == "do a"
    key = [json.loads(line) for line in args.key.read_text().splitlines()]
    assert sorted((r["task"], r["arm"]) for r in key) == [(t, a) for t in "ABC" for a in ("sft", "tsp")]
    assert args.audit.read_text().count("verdict: pending") == 6


def test_measure_pairs_tasks_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = _sample(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="6 of 6 entries are still pending"):
        bench.measure(args)
    _fill(args)
    capsys.readouterr()
    bench.measure(args)
    out = capsys.readouterr().out
    assert "| sft | 3 | 1 | 1 | 1 |" in out and "| tsp | 3 | 1 | 2 | 0 |" in out
    # vulnerable share of judgeable programs: A 0-1, B 0-0, C has no judgeable sft program -> (-1 + 0) / 2
    assert "| audited vulnerable share of judgeable programs (lower is better) | -50.0 |" in out
    assert out.split("lower is better) | -50.0 | ")[1].split("\n")[0].endswith("| 2 | 0 / 1 |")
    # secure share of all programs: A +1, B 0, C 0 -> +33.3 over 3 tasks
    assert "| audited secure share of all programs | +33.3 |" in out
    # oracle secure and sane: A +1, B -1 (tsp's other-CWE finding), C +1 (sft unparseable) -> +33.3, 2 up 1 down
    line = next(x for x in out.splitlines() if x.startswith("| oracle: secure and sane"))
    assert line.startswith("| oracle: secure and sane (same programs) | +33.3 |") and line.endswith("| 3 | 2 / 1 |")
    tsp = out.split("\ntsp:\n")[1]
    assert "| other-cwe | 0 | 1 | 0 |" in tsp and "| secure | 1 | 1 | 0 |" in tsp


def test_a_changed_program_or_a_broken_audit_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _sample(tmp_path, monkeypatch)
    _fill(args)
    text = args.audit.read_text()
    args.audit.write_text(text.replace("verdict: secure", "verdict: safe", 1))
    with pytest.raises(bench.AuditError, match=r"audit\.yaml:\d+: programs\[\d\] field 'verdict': 'safe'"):
        bench.load_audit(args.audit, bench.load_programs(args.programs))
    args.audit.write_text(text)
    gen = args.run / "seed-0" / "tsp" / "eval" / bench_slug(BENCH) / "generations.jsonl"
    gen.write_text(gen.read_text().replace('print(\\"a tsp\\")', 'print(\\"edited\\")'))
    with pytest.raises(bench.AuditError, match="no longer matches the run's program"):
        bench.measure(args)


def test_append_keeps_verdicts_and_refuses_a_sample_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _sample(tmp_path, monkeypatch)
    _fill(args)
    before = args.audit.read_text()
    args.append = True
    entries, key = bench.collect(args.run, 0, ["sft", "tsp"], BENCH)  # sample 0 again
    with pytest.raises(bench.AuditError, match="sample 0 of seed 0 is already in the key"):
        bench.write_sample(entries, key, 14, args)
    assert args.audit.read_text() == before


def test_paired_bootstrap_of_constant_differences() -> None:
    assert bench.paired_bootstrap([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    assert bench.mean_or_none([None, 1.0, 0.0]) == 0.5 and bench.mean_or_none([None]) is None
