"""benchmarks/oracle_fidelity.py: loading the label audit and the label-consistent figures, by hand."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "oracle_fidelity.py"
_SPEC = importlib.util.spec_from_file_location("oracle_fidelity", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

# three SafeCoder-shaped val rows; sha = first 12 hex of sha256(before + "\0" + after), by `sha256sum`
VAL = [
    ("db.py", "cwe-089", 'q = "SELECT " + x', 'q = "SELECT ?"', "62e40de67ca1"),
    ("run.py", "cwe-78", "os.system(c)", "subprocess.run([c])", "99a42c967baa"),
    ("pw.py", "cwe-327", "h = md5(p)", "h = sha256(p)", "d073da2ddc0c"),
]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "safecoder").mkdir()
    lines = [json.dumps({"file_name": f, "vul_type": c, "func_src_before": b, "func_src_after": a})
             for f, c, b, a, _ in VAL]
    (tmp_path / "safecoder" / "sec-new-desc.val.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _audit(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "audit.yaml"
    path.write_text("# criteria\npairs:\n" + body)
    return path


GOOD = """\
  - {split: val, line: 1, sha: "62e40de67ca1", file: db.py, cwe: CWE-89, verdict: ok, reason: "concat -> ?"}
  - split: val
    line: 3
    sha: "d073da2ddc0c"
    file: pw.py
    cwe: CWE-327
    verdict: fix-invisible
    reason: "for the test"
"""


def test_a_good_audit_maps_each_pair_to_its_verdict(tmp_path: Path, data: Path) -> None:
    audit = bench.load_audit(_audit(tmp_path, GOOD), data)
    assert audit == {"val:1": "ok", "val:3": "fix-invisible"}


def test_an_audit_of_a_row_that_does_not_exist_names_file_line_and_field(tmp_path: Path, data: Path) -> None:
    body = GOOD + '  - {split: val, line: 9, sha: "62e40de67ca1", file: db.py, cwe: CWE-89, verdict: ok, reason: x}\n'
    path = _audit(tmp_path, body)
    with pytest.raises(bench.AuditError) as err:
        bench.load_audit(path, data)
    # the entry starts on line 11 of the audit file (2 header lines + 8 of GOOD)
    assert str(err.value).startswith(f"{path}:11: pairs[2] field 'line': 9:")
    assert "has no such line (3 lines)" in str(err.value)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("verdict: ok", "verdict: wrong-label", "verdict"),          # not one of the four verdicts
    ('sha: "62e40de67ca1"', 'sha: "62e40de67ca2"', "sha"),       # the row's code changed: stale
    ("file: db.py", "file: other.py", "file"),
    ("cwe: CWE-89", "cwe: CWE-79", "cwe"),
    ('reason: "concat -> ?"', 'reason: "  "', "reason"),
    ('reason: "concat -> ?"', 'note: "concat -> ?"', "fields"),  # a missing / unknown field
    ("split: val, line: 1", "split: test, line: 1", "split"),
    ("line: 1,", "line: one,", "line"),
])
def test_a_malformed_entry_names_file_line_and_field(tmp_path: Path, data: Path, old: str, new: str,
                                                      field: str) -> None:
    assert old in GOOD
    path = _audit(tmp_path, GOOD.replace(old, new))
    with pytest.raises(bench.AuditError, match=rf"^{path}:3: pairs\[0\] field '{field}': "):
        bench.load_audit(path, data)


def test_a_pair_audited_twice_is_an_error(tmp_path: Path, data: Path) -> None:
    path = _audit(tmp_path, GOOD + GOOD.splitlines(keepends=True)[0])
    with pytest.raises(bench.AuditError, match=rf"^{path}:11: pairs\[2\] field 'line': val:1 is audited twice"):
        bench.load_audit(path, data)


def test_an_audit_without_a_pairs_list_is_an_error(tmp_path: Path, data: Path) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text("pairs: {a: 1}\n")
    with pytest.raises(bench.AuditError, match="'pairs' list"):
        bench.load_audit(path, data)


def _pair(source: str, pair: str, cwe: str = "CWE-89") -> list[object]:
    return [bench.Row(source, "py", cwe, "v", True, pair), bench.Row(source, "py", cwe, "s", False, pair)]


def test_label_consistent_figures_keep_only_pairs_audited_ok() -> None:
    rows = (_pair("held-out", "val:1") + _pair("held-out", "val:2") + _pair("held-out", "val:3")
            + _pair("held-out", "val:4") + _pair("held-out", "val:5", "CWE-78") + _pair("tuning", "train:1"))
    statuses = ["vulnerable", "secure",       # val:1 ok: caught, clean
                "secure", "vulnerable",       # val:2 fix-invisible: missed, false positive
                "vulnerable", "vulnerable",   # val:3 ok: caught, false positive
                "unparseable", "secure",      # val:4 not in the audit
                "secure", "secure",           # val:5 (CWE-78) secure-still-vulnerable: missed
                "vulnerable", "secure"]       # train:1 ok, but tuning is not a label-checked source
    audit = {"val:1": "ok", "val:2": "fix-invisible", "val:3": "ok", "val:5": "secure-still-vulnerable",
             "train:1": "ok"}
    groups = bench.tally(rows, statuses, [False] * len(rows), audit)
    # raw held-out: tp 2 of 5 insecure, fp 2 of 5 secure, 1 unparseable
    assert groups[("py", "all", "held-out")] == [2, 5, 2, 5, 1, 0]
    # label-ok: val:1 and val:3 only -> recall 2/2, FPR 1/2
    assert groups[("py", "all", "held-out label-ok")] == [2, 2, 1, 2, 0, 0]
    assert groups[("py", "CWE-89", "held-out label-ok")] == [2, 2, 1, 2, 0, 0]
    assert ("py", "CWE-78", "held-out label-ok") not in groups
    assert ("py", "all", "tuning label-ok") not in groups
    assert groups[("py", "all", "tuning")] == [1, 1, 0, 1, 0, 0]
    counts = bench.verdict_counts(rows, audit)
    assert counts[("py", "all", "held-out")] == Counter(
        {"ok": 2, "fix-invisible": 1, "unaudited": 1, "secure-still-vulnerable": 1})
    assert counts[("py", "CWE-78", "held-out")] == Counter({"secure-still-vulnerable": 1})
    assert bench.excluded_cell(counts[("py", "all", "held-out")]) == "3 (fi 1, ssv 1, unaudited 1)"
    assert bench.excluded_cell(Counter({"ok": 4})) == "0"
    assert bench.excluded_cell(Counter()) == "-"


def test_the_table_puts_label_ok_columns_next_to_the_raw_held_out_ones(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _pair("held-out", "val:1") + _pair("held-out", "val:2")
    audit = {"val:1": "ok", "val:2": "insecure-not-vulnerable"}
    statuses = ["vulnerable", "secure", "secure", "vulnerable"]
    groups = bench.tally(rows, statuses, [False] * 4, audit)
    bench.print_tables(groups, False, bench.verdict_counts(rows, audit))
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| group"))
    assert header.startswith("| group | tuning recall | tuning FPR | held-out recall | held-out FPR | "
                             "held-out label-ok recall | held-out label-ok FPR | held-out excluded | seen recall")
    row = next(line for line in lines if line.startswith("| all"))
    # Wilson 95% intervals, by hand: 1/2 -> 0.5 -/+ 0.405 = [9, 91]; 1/1 -> [0.206, 1]; 0/1 -> [0, 0.794]
    assert row == ("| all | - | - | 50% (1/2) [9-91] | 50% (1/2) [9-91] | 100% (1/1) [21-100] | 0% (0/1) [0-79] "
                   "| 1 (inv 1) | - | - | - | - | 0 | 0 |")


def test_wilson_interval_of_the_small_held_out_sets() -> None:
    # by hand (z = 1.96, z^2/n = 0.9604 for n = 4): 1/4 -> centre 0.3725, half 0.3269 -> [0.046, 0.699]
    low, high = bench.wilson_interval(1, 4)
    assert low == pytest.approx(0.0456, abs=5e-4) and high == pytest.approx(0.6994, abs=5e-4)
    low, high = bench.wilson_interval(4, 4)  # even 4 of 4 cannot show recall >= 70%: low end 0.51
    assert low == pytest.approx(0.5101, abs=5e-4) and high == 1.0
    assert bench.wilson_interval(0, 4) == (0.0, pytest.approx(0.4899, abs=5e-4))


def test_the_audit_summary_counts_pairs_per_verdict_and_skips_unaudited_sources(
        capsys: pytest.CaptureFixture[str]) -> None:
    rows = (_pair("held-out", "val:1") + _pair("held-out", "val:2") + _pair("tuning", "train:1")
            + _pair("tuning", "train:2") + _pair("tuning", "train:3") + _pair("own", ""))
    audit = {"val:1": "ok", "val:2": "secure-still-vulnerable", "train:2": "fix-invisible"}
    bench.print_audit_summary(bench.verdict_counts(rows, audit))
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert table == [
        "| source | language | pairs | ok | fix-invisible | insecure-not-vulnerable | secure-still-vulnerable | unaudited |",
        "| held-out | py | 2 | 1 | 0 | 0 | 1 | 0 |",
        "| tuning | py | 3 | 0 | 1 | 0 | 0 | 2 |",
    ]
    capsys.readouterr()
    bench.print_audit_summary(bench.verdict_counts(_pair("tuning", "train:1"), {}))
    assert capsys.readouterr().out == ""
