"""The oracle's speed measures must not change a verdict: the whole-file prefilters of
rules/python_taint.yaml and rules/python.yaml, the OCaml runtime setting of semgrep-core, the size-balanced pool split and
the snippet scratch directory (docs/oracle.md "Speed")."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from treeplay.oracle.analyzers.base import Target
from treeplay.oracle.analyzers.semgrep import OCAML_RUNTIME, SemgrepAnalyzer, _semgrep_env
from treeplay.oracle.config import RULES_DIR
from treeplay.oracle.core import scratch_dir, split_by_size

PREFILTER_MARK = "(?s)\\A(?="  # how a whole-file prefilter regex of the Python rule files starts

# Edge cases of the prefilters' reasoning: escapes semgrep does / does not turn into "<", implicit
# string concatenation, aliased imports of the sinks, a `safe_load` file the old substring prefilter
# let through.
EDGE_CASES = '''\
from pickle import loads as unpickle
import yaml as y
from re import compile as rc
import xml.etree.ElementTree as ET


def html_hex_escape(x):
    return "\\x3cb>%s" % x


def html_concat(x):
    return "<" "b>%s" % x


def html_newline_escape(x):
    return "<\\nb>%s" % x


def html_plain(x):
    return "<b>%s" % x


def html_unicode_escape(x):
    return "\\u003cb>%s" % x


def html_fstring(x):
    return f"<td>{x}</td>"


def pickle_alias(data):
    return unpickle(data)


def yaml_alias(text):
    return y.load(text)


def yaml_safe(text):
    return y.safe_load(text)


def regex_alias(pattern):
    return rc(pattern)


def xml_parse(doc):
    return ET.fromstring(doc)


def mongo_where(db):
    return db.users.find({"$where": request.args["q"]})
'''

# (rule, line) pairs written by hand from the snippet above: what the rules must (still) flag.
EXPECTED_EDGE_FINDINGS = {
    ("py3-html-built-from-param", 12), ("py3-html-built-from-param", 16), ("py3-html-built-from-param", 20),
    ("py3-html-built-from-param", 28), ("py3-deserialize-input", 32), ("py3-deserialize-input", 36),
    ("py3-regex-from-param", 44), ("py3-xml-parse-input", 48), ("py3-nosql-query-input", 52),
}



def _edge_cases_one_per_file() -> tuple[list[str], list[set[tuple[str, int]]]]:
    """EDGE_CASES split into one file per function (each with the imports): a whole-file prefilter
    only drops a file that lacks its words, which the combined file never does. The function then
    sits at lines 7-8; the expected findings are EXPECTED_EDGE_FINDINGS moved there."""
    header, *functions = EDGE_CASES.split("\n\n\n")
    texts = [f"{header}\n\n\n{function}" for function in functions]
    expected = [{(rule, line - 4 * k) for rule, line in EXPECTED_EDGE_FINDINGS if 4 * k + 7 <= line <= 4 * k + 8}
                for k in range(len(functions))]
    return texts, expected


# py3-ssrf-param's prefilter, one file per case: aliased imports, a session-like name that ends in
# `Client`, and one where `http` does not end the name (no word for the prefilter, no sink either).
SSRF_CASES = [
    'import requests as rq\nfrom flask import request\n\n\ndef proxy():\n    return rq.get(request.args["u"])\n',
    'from urllib.request import urlopen as fetch\nfrom flask import request\n\n\ndef proxy():\n'
    '    return fetch(request.args["u"])\n',
    'from flask import request\n\n\ndef proxy(httpClient):\n    return httpClient.get(request.args["u"])\n',
    'from flask import request\n\n\ndef proxy(http_pool):\n    return http_pool.get(request.args["u"])\n',
]
SSRF_EXPECTED = [{("py3-ssrf-param", 6)}, {("py3-ssrf-param", 6)}, {("py3-ssrf-param", 5)}, set()]


# python.yaml's prefiltered rules, one file per case (a prefilter sees the whole file): what each
# prefilter's reasoning rests on. Implicitly concatenated literals are joined by semgrep, escapes
# are not decoded; the called name / key / compared name may be spelled in any case; `re` may be
# imported under another name; a header may be set on a response called `R` or on a `Headers()`.
V2_EDGE_CASES = [
    'def sql_case(cur, name):\n    cur.Execute("SELECT * FROM t WHERE n = \'%s\'" % name)\n',
    'def sql_helper(name):\n    return run_query("SELECT * FROM t WHERE n = " + name)\n',
    'def sql_alias(ex, name):\n    return ex("SELECT * FROM t WHERE n = " + name)\n',
    'import re as rx\n\n\ndef redos_alias(text):\n    return rx.match("(a+)+$", text)\n',
    'def redos_other_module(regex, text):\n    return regex.match("(a+)+$", text)\n',
    'def mongo_concat(db, q):\n    return db.users.find({"$wh" "ere": "this.name == " + q})\n',
    'def mongo_escaped(db, q):\n    return db.users.find({"\\x24where": "this.name == " + q})\n',
    'API_KEY = "AKIAABCDEFGHIJKLMN12"\n',
    'settings["Secret_Key"] = "abcdefghijklmnop1234"\n',
    'settings["api_\\x6bey"] = "abcdefghijklmnop1234"\n',
    'def check(user_PWD):\n    return user_PWD == "hunter22"\n',
    'def check():\n    return "pass" "word" == "abcd"\n',
    'from flask import request\n\n\ndef view(R):\n    R["X-Name"] = request.args["n"]\n',
    'from werkzeug.datastructures import Headers\n\n\ndef view(request):\n    h = Headers()\n'
    '    h.add("X-Name", request.args["n"])\n    return h\n',
    'from flask import request\n\n\ndef view(out):\n    out["X-Name"] = request.args["n"]\n',
]
# Written by hand from the cases above: (rule, line) each case must (still) give.
V2_EXPECTED = [
    {("py-sql-string-built-query", 2)}, {("py-sql-string-built-query", 2)}, set(),
    {("py-redos-nested-quantifier", 5)}, set(), {("py-mongo-where", 2)}, set(),
    {("py-hardcoded-secret-assignment", 1)}, {("py-hardcoded-secret-assignment", 1)}, set(),
    {("py-hardcoded-password-compare", 2)}, set(),
    {("py-header-injection", 5)}, {("py-header-injection", 6)}, set(),
]
V2_PREFILTERED = {"py-sql-string-built-query", "py-redos-nested-quantifier", "py-hardcoded-secret-assignment",
                  "py-hardcoded-password-compare", "py-mongo-where", "py-header-injection"}


def _is_prefilter(item: Any) -> bool:
    return isinstance(item, dict) and str(item.get("pattern-regex", "")).startswith(PREFILTER_MARK)


def _without_prefilters(rule: dict[str, Any]) -> dict[str, Any]:
    """The rule with every whole-file prefilter `pattern-regex` removed (what it was before): in the
    taint sinks' `patterns` and in a search rule's top-level `patterns`."""
    rule = copy.deepcopy(rule)
    for sink in rule.get("pattern-sinks", []):
        if isinstance(sink, dict) and "patterns" in sink:
            sink["patterns"] = [p for p in sink["patterns"] if not _is_prefilter(p)]
    if "patterns" in rule:
        rule["patterns"] = [p for p in rule["patterns"] if not _is_prefilter(p)]
    return rule


def _findings(rules_dir: Path, texts: list[str], workdir: Path) -> list[set[tuple[str, int]]]:
    targets = []
    for i, text in enumerate(texts):
        folder = workdir / f"s{i}"
        folder.mkdir()
        (folder / "snippet.py").write_text(text, encoding="utf-8")
        targets.append(Target(index=i, language="py", text=text, path=folder / "snippet.py"))
    results = SemgrepAnalyzer(rules_dir=rules_dir).analyze(targets, workdir)
    assert all(r.error is None for r in results), [r.error for r in results]
    return [{(f.rule, f.line) for f in r.findings} for r in results]


def _with_and_without(rule_file: str, texts: list[str], tmp_path: Path,
                      rules: list[dict[str, Any]]) -> tuple[list[set[tuple[str, int]]], list[set[tuple[str, int]]]]:
    """Findings of `rules` on `texts` with the shipped rule file, and with its prefilters removed."""
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / rule_file).write_text(yaml.safe_dump({"rules": [_without_prefilters(r) for r in rules]}))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ids = {r["id"] for r in rules}
    with_prefilters = [{f for f in found if f[0] in ids} for found in _findings(RULES_DIR, texts, tmp_path / "a")]
    without = [{f for f in found if f[0] in ids} for found in _findings(plain_dir, texts, tmp_path / "b")]
    return with_prefilters, without


@pytest.fixture(scope="module")
def taint_rules() -> list[dict[str, Any]]:
    return list(yaml.safe_load((RULES_DIR / "python_taint.yaml").read_text())["rules"])


@pytest.fixture(scope="module")
def v2_rules() -> list[dict[str, Any]]:
    return list(yaml.safe_load((RULES_DIR / "python.yaml").read_text())["rules"])


def test_prefiltered_taint_rules_are_the_expected_six(taint_rules: list[dict[str, Any]]) -> None:
    prefiltered = {r["id"] for r in taint_rules if _without_prefilters(r) != r}
    assert prefiltered == {"py3-html-built-from-param", "py3-deserialize-input", "py3-xml-parse-input",
                           "py3-nosql-query-input", "py3-regex-from-param", "py3-ssrf-param"}


def test_prefilters_change_no_finding(taint_rules: list[dict[str, Any]], fixtures_dir: Path,
                                      tmp_path: Path) -> None:
    """Each taint rule with and without its prefilter, on the twin fixtures and the edge cases."""
    pairs = yaml.safe_load((fixtures_dir / "oracle" / "python_taint.yaml").read_text())
    singles, singles_expected = _edge_cases_one_per_file()
    texts = [EDGE_CASES, *SSRF_CASES, *singles] + [p[k] for p in pairs for k in ("vulnerable", "secure")]
    with_prefilters, without = _with_and_without("python_taint.yaml", texts, tmp_path, taint_rules)
    assert with_prefilters == without
    assert with_prefilters[0] == EXPECTED_EDGE_FINDINGS
    ssrf = [{f for f in found if f[0] == "py3-ssrf-param"} for found in with_prefilters[1:1 + len(SSRF_CASES)]]
    assert ssrf == SSRF_EXPECTED
    start = 1 + len(SSRF_CASES)
    assert with_prefilters[start:start + len(singles)] == singles_expected


def test_v2_prefiltered_rules_are_the_expected_six(v2_rules: list[dict[str, Any]]) -> None:
    assert {r["id"] for r in v2_rules if _without_prefilters(r) != r} == V2_PREFILTERED


def test_v2_prefilters_change_no_finding(v2_rules: list[dict[str, Any]], fixtures_dir: Path, tmp_path: Path) -> None:
    """python.yaml with and without its prefilters, on both Python fixture files' twins (each a file
    of its own) and the one-case-per-file edge cases."""
    texts = list(V2_EDGE_CASES)
    for name in ("python.yaml", "python_taint.yaml"):
        pairs = yaml.safe_load((fixtures_dir / "oracle" / name).read_text())
        texts += [p[k] for p in pairs for k in ("vulnerable", "secure")]
    with_prefilters, without = _with_and_without("python.yaml", texts, tmp_path, v2_rules)
    assert with_prefilters == without
    edge = [{f for f in found if f[0] in V2_PREFILTERED} for found in with_prefilters[:len(V2_EDGE_CASES)]]
    assert edge == V2_EXPECTED


def test_semgrep_env_sets_the_ocaml_minor_heap_unless_the_user_did(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCAMLRUNPARAM", raising=False)
    assert _semgrep_env()["OCAMLRUNPARAM"] == OCAML_RUNTIME == "s=2M"
    monkeypatch.setenv("OCAMLRUNPARAM", "b")
    assert _semgrep_env()["OCAMLRUNPARAM"] == "b"


def test_split_by_size_balances_text_not_counts() -> None:
    key = ("h", "py")
    work = [((f"h{i}", "py"), "x" * n) for i, n in enumerate([3000, 100, 100, 100, 2000, 900])]
    chunks = split_by_size(work, 2)
    # longest first, each to the lighter chunk (+400 per snippet): 3000 -> A (3400); 2000 -> B (2400);
    # 900 -> B (3700); then the three 100s -> A (3900), B (4200), A (4400).
    assert [[len(code) for _, code in chunk] for chunk in chunks] == [[3000, 100, 100], [2000, 900, 100]]
    assert sorted(k for chunk in chunks for k, _ in chunk) == sorted(k for k, _ in work)
    assert split_by_size([(key, "a")], 3) == [[(key, "a")], [], []]


def test_scratch_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TREEPLAY_ORACLE_TMP", str(tmp_path))
    assert scratch_dir() == str(tmp_path)
    monkeypatch.delenv("TREEPLAY_ORACLE_TMP")
    assert scratch_dir() in ("/dev/shm", None)


def test_scratch_dir_skips_a_small_dev_shm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TREEPLAY_ORACLE_TMP", raising=False)
    small = os.statvfs_result((4096, 4096, 16384, 16384, 16384, 0, 0, 0, 0, 255))  # 64 MiB, all free
    monkeypatch.setattr(os, "statvfs", lambda path: small)
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    monkeypatch.setattr(os.path, "isdir", lambda path: True)
    assert scratch_dir() is None
