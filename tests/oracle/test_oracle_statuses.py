"""issue 14 items 2, 5, 6: `unsupported` and `incomplete` verdicts, and what the cache key holds.

Fake analyzers stand in for a tool that fails, times out on one file or is missing; bandit (real)
runs next to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle import core as oracle_core
from treeplay.oracle.analyzers import AnalysisResult, Target, ToolError, create_analyzer
from treeplay.oracle.analyzers.golang import GofmtAnalyzer
from treeplay.oracle.analyzers.java import JavacParseAnalyzer
from treeplay.oracle.analyzers.semgrep import SemgrepAnalyzer
from treeplay.oracle.records import STATUS_KIND, is_unjudged

SAFE = "def add(a, b):\n    return a + b\n"
VULN = "import os\n\ndef run(x):\n    os.system('ls ' + x)\n"


class _Failing:
    name = "boom"
    languages = frozenset({"py"})

    def unavailable_reason(self) -> str | None:
        return None

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        raise ToolError("boom exited with 2: crashed")


class _Missing(_Failing):
    name = "ghost"

    def unavailable_reason(self) -> str | None:
        return "ghost is not installed"


class _TimesOutPerFile(_Failing):
    name = "slow"

    def analyze(self, targets: Sequence[Target], workdir: Path) -> list[AnalysisResult]:
        return [AnalysisResult(error="Timeout: rule r timed out") for _ in targets]


FAKES = {"boom": _Failing, "ghost": _Missing, "slow": _TimesOutPerFile}


@pytest.fixture
def fake_analyzers(monkeypatch: pytest.MonkeyPatch) -> None:
    def create(name: str, *, timeout_s: float = 300.0) -> object:
        return FAKES[name]() if name in FAKES else create_analyzer(name, timeout_s=timeout_s)

    monkeypatch.setattr(oracle_core, "create_analyzer", create)


@pytest.mark.parametrize(
    ("fake", "error"),
    [("boom", "boom: boom exited with 2: crashed"), ("ghost", "ghost: unavailable: ghost is not installed"),
     ("slow", "slow: Timeout: rule r timed out")],
)
def test_failed_missing_or_timed_out_analyzer_is_incomplete_never_secure(
    fake_analyzers: None, fake: str, error: str
) -> None:
    oracle = Oracle(OracleConfig(use_cache=False, analyzers={"py": ("bandit", fake)}))
    try:
        verdict = oracle.judge(SAFE, "py")
        assert verdict.status == "incomplete"
        assert verdict.failed_analyzers == (fake,)
        assert verdict.analyzers_run == ("bandit",)
        assert verdict.error == error
        # another analyzer found something: vulnerable, still naming the failed one
        found = oracle.judge(VULN, "py")
        assert found.status == "vulnerable"
        assert found.failed_analyzers == (fake,)
    finally:
        oracle.close()


def test_incomplete_verdicts_are_not_cached(fake_analyzers: None, tmp_path: Path) -> None:
    config = OracleConfig(cache_path=tmp_path / "v.sqlite", analyzers={"py": ("bandit", "slow")})
    oracle = Oracle(config)
    try:
        assert oracle.judge(SAFE, "py").status == "incomplete"
        cache = oracle._open_cache()
        assert cache is not None
        key = (oracle_core.code_hash(SAFE), "py")
        assert cache.get_many([key], oracle.policy_for("py")) == {}
    finally:
        oracle.close()


def test_language_without_judge_is_unsupported_not_an_exception() -> None:
    oracle = Oracle(OracleConfig(use_cache=False))
    try:
        verdicts = oracle.judge_many([("IDENTIFICATION DIVISION.\n", "cobol", None), (SAFE, "py", None)])
    finally:
        oracle.close()
    assert [v.status for v in verdicts] == ["unsupported", "secure"]
    assert verdicts[0].error is not None and verdicts[0].error.startswith("oracle: no judge for language 'cobol'")
    assert verdicts[0].findings == () and verdicts[0].analyzers_run == ()


def test_status_table_marks_unjudged_statuses() -> None:
    assert is_unjudged("incomplete") and is_unjudged("unsupported")
    assert not is_unjudged("secure") and not is_unjudged("vulnerable") and not is_unjudged("unparseable")
    assert STATUS_KIND["unparseable"] == "unparseable"
    with pytest.raises(ValueError, match="unknown verdict status 'maybe'"):
        is_unjudged("maybe")


def test_semgrep_per_file_timeout_and_parse_error_fail_that_file(tmp_path: Path) -> None:
    targets = [Target(i, "py", SAFE, tmp_path / f"s{i}" / "snippet.py") for i in range(3)]
    for t in targets:
        t.path.parent.mkdir()
        t.path.write_text(SAFE)
    output = {  # the shape semgrep-core -json prints (copied from a real run, paths replaced)
        "errors": [
            {"error_type": ["PartialParsing", [{"path": str(targets[0].path)}]], "severity": "warn",
             "message": "`x =` was unexpected", "location": {"path": str(targets[0].path)}},
            {"error_type": "Timeout", "severity": "warn", "message": "rule py-sql timed out",
             "location": {"path": str(targets[2].path)}},
        ],
        "results": [],
    }
    results = [AnalysisResult() for _ in targets]
    SemgrepAnalyzer()._collect(output, targets, tmp_path, results, [0, 1, 2])
    assert results[0].error == "PartialParsing: `x =` was unexpected"
    assert results[1].error is None
    assert results[2].error == "Timeout: rule py-sql timed out"
    with pytest.raises(ToolError, match="semgrep rule error: bad pattern"):
        SemgrepAnalyzer()._collect({"errors": [{"error_type": "Rule parse error", "message": "bad pattern"}]},
                                   targets, tmp_path, results, [0, 1, 2])


def test_cache_key_changes_with_tool_versions_and_missing_tools(
    fake_analyzers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = OracleConfig(use_cache=False, analyzers={"py": ("bandit",)})
    before = Oracle(config).policy_for("py")
    monkeypatch.setattr(oracle_core, "analyzer_version", lambda name: "99.0-upgraded")
    upgraded = Oracle(config).policy_for("py")
    assert upgraded != before
    with_missing = Oracle(OracleConfig(use_cache=False, analyzers={"py": ("bandit", "ghost")}))
    with_present = Oracle(OracleConfig(use_cache=False, analyzers={"py": ("bandit", "boom")}))
    assert with_missing.policy_for("py") != with_present.policy_for("py")


def test_rule_file_edit_changes_policy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from treeplay.oracle import config as config_module

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "python.yaml").write_text("rules: []\n")
    monkeypatch.setattr(config_module, "RULES_DIR", rules)
    first = OracleConfig().policy_hash()
    (rules / "python.yaml").write_text("rules: [] # edited\n")
    edited = OracleConfig().policy_hash()
    assert edited != first
    # every rule file of a language counts: the v3 taint rules and a new language's rules too
    (rules / "python_taint.yaml").write_text("rules: []\n")
    with_taint = OracleConfig().policy_hash()
    assert with_taint != edited
    (rules / "ruby.yaml").write_text("rules: []\n")
    assert OracleConfig().policy_hash() != with_taint


def test_cache_key_follows_the_functional_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # merge of oracle3: what the functional check sees (installed modules, compiler) is in the key
    config = OracleConfig(use_cache=False, analyzers={"py": ("bandit",), "go": ("gofmt",)})
    before = {lang: Oracle(config).policy_for(lang) for lang in ("py", "go")}
    monkeypatch.setattr(oracle_core, "functional_fingerprint", lambda language: f"{language}:new module installed")
    after = Oracle(config)
    assert after.policy_for("py") != before["py"]
    assert after.policy_for("go") == before["go"]  # Go has no functional check of its own


def test_semgrep_syntax_error_is_unparseable_only_where_semgrep_is_the_parse_check(tmp_path: Path) -> None:
    # Ruby's parse check is semgrep's parser: a syntax error is `unparseable`; in Java (javac parses)
    # the same error is a failure of semgrep's analysis (`incomplete`)
    targets = [Target(0, "rb", "def f(\n", tmp_path / "s0" / "snippet.rb"),
               Target(1, "java", "class A {", tmp_path / "s1" / "snippet.java")]
    for t in targets:
        t.path.parent.mkdir()
        t.path.write_text(t.text)
    output = {"errors": [
        {"error_type": "Syntax error", "severity": "error", "message": "unexpected end of input",
         "location": {"path": str(t.path), "start": {"line": 2, "col": 1}}} for t in targets], "results": []}
    results = [AnalysisResult() for _ in targets]
    SemgrepAnalyzer()._collect(output, targets, tmp_path, results, [0, 1])
    assert results[0].parse_error == "line 2: Syntax error: unexpected end of input" and results[0].error is None
    assert results[1].error == "Syntax error: unexpected end of input" and results[1].parse_error is None


def test_no_analyzer_can_run_fails_early(fake_analyzers: None) -> None:
    oracle = Oracle(OracleConfig(use_cache=False, analyzers={"py": ("ghost",)}))
    with pytest.raises(oracle_core.OracleUnavailableError, match="no analyzer can run for language 'py'"):
        oracle.judge(SAFE, "py")


def test_js_fragment_semgrep_cannot_parse_gets_eslints_rewrites() -> None:
    # semgrep's parse error on the raw fragment is a failure; the rewrite eslint also lints parses,
    # so semgrep judges it and its finding keeps the fragment's line
    oracle = Oracle(OracleConfig(use_cache=False, analyzers={"js": ("semgrep",)}))
    try:
        fragment = "  render: function(x) {\n    var y = x;\n    eval(y);\n  },\n"
        verdict = oracle.judge(fragment, "js")
        assert verdict.failed_analyzers == () and verdict.analyzers_run == ("semgrep",)
        assert [(f.analyzer, f.line) for f in verdict.findings] == [("semgrep", 3)]
        hopeless = oracle.judge("let x = ;\n  }, ) (\n", "js")
        assert hopeless.status == "incomplete"  # no rewrite parses: semgrep's judgement is missing
        assert hopeless.failed_analyzers == ("semgrep",)
    finally:
        oracle.close()


@pytest.mark.parametrize(("analyzer", "language", "broken", "error"), [
    (GofmtAnalyzer, "go", "package p\n\nfunc f( {\n}\n", "line 3: expected ')', found '{'"),
    (JavacParseAnalyzer, "java", "class A {\n  int x = 1;\n  void f( {\n}\n", "line 3: illegal start of type"),
])  # fmt: skip
def test_compiler_parse_checks_mark_only_the_broken_file(tmp_path: Path, analyzer: type, language: str,
                                                         broken: str, error: str) -> None:  # fmt: skip
    # gofmt / javac report file:line diagnostics; the first one of a file becomes its parse error
    good = {"go": "package p\n\nfunc g() int { return 1 }\n", "java": "class B {\n  int g() { return 1; }\n}\n"}
    ext = {"go": "go", "java": "java"}[language]
    targets = [Target(0, language, good[language], tmp_path / "s0" / f"A.{ext}"),
               Target(1, language, broken, tmp_path / "s1" / f"A.{ext}")]  # fmt: skip
    for t in targets:
        t.path.parent.mkdir()
        t.path.write_text(t.text)
    tool = analyzer()
    if tool.unavailable_reason():
        pytest.skip(tool.unavailable_reason())
    results = tool.analyze(targets, tmp_path)
    assert results[0].parse_error is None
    assert results[1].parse_error == error  # the file's first diagnostic (javac and gofmt report more)
