"""Real analyzers on real vulnerable snippets and their fixed twins (tests/fixtures/oracle/*.yaml)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.cwe import matches
from treeplay.oracle.prepare import js_repair_candidates, prepare_python
from treeplay.oracle.records import Verdict
from treeplay.tasks.records import Task

FIXTURE_LANG = {"python": "py", "python_taint": "py", "c": "c", "javascript": "js", "go": "go", "java": "java",
                "ruby": "rb"}


def load_pairs(fixtures_dir: Path) -> list[tuple[str, dict]]:
    pairs = []
    for stem, language in FIXTURE_LANG.items():
        for pair in yaml.safe_load((fixtures_dir / "oracle" / f"{stem}.yaml").read_text()):
            pairs.append((pair.get("language", language), pair))
    return pairs


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    cache = tmp_path_factory.mktemp("oracle-cache") / "verdicts.sqlite"
    instance = Oracle(OracleConfig(cache_path=cache))
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def pair_verdicts(oracle: Oracle, fixtures_dir: Path) -> list[tuple[str, dict, Verdict, Verdict]]:
    """All fixture pairs judged in ONE batch (semgrep, eslint... start once)."""
    pairs = load_pairs(fixtures_dir)
    items = []
    for language, pair in pairs:
        # a low-severity rule counts only for a task of its CWE: such pairs say `task_cwe: true`
        task = Task(id=pair["id"], language=language, cwe=(pair["cwe"],), instruction="", prefix="") \
            if pair.get("task_cwe") else None
        items += [(pair["vulnerable"], language, task), (pair["secure"], language, task)]
    verdicts = oracle.judge_many(items)
    return [(lang, pair, verdicts[2 * i], verdicts[2 * i + 1]) for i, (lang, pair) in enumerate(pairs)]


def test_fixture_set_covers_four_languages_with_40_pairs(fixtures_dir: Path) -> None:
    pairs = load_pairs(fixtures_dir)
    assert len(pairs) >= 40
    assert {lang for lang, _ in pairs} >= {"py", "c", "js", "go"}


@pytest.mark.parametrize(("language", "minimum"), [("py", 8), ("c", 8), ("js", 8), ("go", 8), ("java", 3), ("rb", 4)])
def test_vulnerable_flagged_with_cwe_and_line_and_fixed_twin_secure(pair_verdicts: list, language: str,
                                                                     minimum: int) -> None:
    checked = 0
    for lang, pair, vuln, secure in pair_verdicts:
        if lang != language and not (language == "c" and lang == "cpp"):
            continue
        checked += 1
        assert vuln.status == "vulnerable", (pair["id"], vuln)
        hits = [f for f in vuln.findings if matches(f.cwe, (pair["cwe"],)) and f.line <= pair["line"] <= f.end_line]
        assert hits, (pair["id"], pair["cwe"], pair["line"], vuln.findings)
        assert secure.status == "secure", (pair["id"], secure.findings)
    assert checked >= minimum


def test_every_v3_taint_rule_has_a_twin_pair_it_flags(pair_verdicts: list, fixtures_dir: Path) -> None:
    """rules/python_taint.yaml: each rule flags the vulnerable twin of the pair named after it."""
    from treeplay.oracle.config import RULES_DIR

    rule_ids = {r["id"] for r in yaml.safe_load((RULES_DIR / "python_taint.yaml").read_text())["rules"]}
    assert len(rule_ids) == 11
    taint_ids = {p["id"] for p in yaml.safe_load((fixtures_dir / "oracle" / "python_taint.yaml").read_text())}
    flagged_by: dict[str, set[str]] = {}
    for _, pair, vuln, secure in pair_verdicts:
        if pair["id"] in taint_ids:
            flagged_by[pair["id"]] = {f.rule for f in vuln.findings}
            assert not [f for f in secure.findings if f.rule.startswith("py3-")], (pair["id"], secure.findings)
    for rule in rule_ids:
        assert rule in flagged_by, f"no twin pair named {rule}"
        assert rule in flagged_by[rule], (rule, flagged_by[rule])
    # sources beyond request objects: a parameter (py3-shell-command-param) and the environment
    assert "py3-shell-command-param" in flagged_by["py3-env-command"]


# issue #16, 2026-11-30: the taint classes the other languages lacked (CWE-113, 117, 943 in JS and Go;
# 113, 117, 918, 502, 1333, 89 in Java; 918, 113, 117, 1333, 79, 611 in Ruby)
ROUND_2026_11_30 = {
    "javascript": ["js-header-injection", "js-log-injection", "js-nosql-injection"],
    "go": ["go-log-injection", "go-header-injection", "go-nosql-where"],
    "java": ["java-header-injection", "java-log-injection", "java-ssrf", "java-deserialization",
             "java-regex-from-input", "java-sql-tainted"],
    "ruby": ["rb-ssrf", "rb-header-injection", "rb-log-injection", "rb-regex-from-input", "rb-xss-render", "rb-xxe"],
}


RULE_FILES = ("c", "go", "java", "javascript", "python", "ruby")


def _rule_ids(stem: str) -> set[str]:
    from treeplay.oracle.config import RULES_DIR

    return {r["id"] for r in yaml.safe_load((RULES_DIR / f"{stem}.yaml").read_text())["rules"]}


def _twins_by_id(pair_verdicts: list) -> dict[str, tuple[Verdict, Verdict]]:
    return {pair["id"]: (vuln, secure) for _, pair, vuln, secure in pair_verdicts}


@pytest.mark.parametrize("stem", sorted(ROUND_2026_11_30))
def test_each_new_taint_rule_flags_its_own_twin_and_not_the_fix(pair_verdicts: list, stem: str) -> None:
    in_file = _rule_ids(stem)
    by_id = _twins_by_id(pair_verdicts)
    for rule in ROUND_2026_11_30[stem]:
        assert rule in in_file, f"{rule} is not in rules/{stem}.yaml"
        assert rule in by_id, f"no twin pair named {rule}"
        vuln, secure = by_id[rule]
        assert rule in {f.rule for f in vuln.findings}, (rule, vuln.findings)
        assert rule not in {f.rule for f in secure.findings}, (rule, secure.findings)


# Rules of the six language files that have no own twin pair, on purpose: each is a known gap of the
# rule (the rule is left as is), kept here so that the gap stays visible.
RULES_WITHOUT_TWIN: dict[str, str] = {
    # none since oracle v11: go-ssrf, js-ssrf (allow-list fixes flagged) and py-os-command-tainted
    # (argument-list fix flagged) were listed here until their rules were fixed (docs/oracle.md)
}


def test_rules_without_twin_are_rules() -> None:
    all_ids = set().union(*(_rule_ids(stem) for stem in RULE_FILES))
    assert set(RULES_WITHOUT_TWIN) <= all_ids


@pytest.mark.parametrize("stem", RULE_FILES)
def test_every_rule_flags_its_own_twin_and_not_the_fix(pair_verdicts: list, stem: str) -> None:
    """Each rule of rules/<stem>.yaml has a pair named after it (or `<id>-twin`) whose vulnerable side
    it flags and whose fixed side it does not (that side being `secure` is checked for every pair above)."""
    rule_ids = _rule_ids(stem)
    by_id = _twins_by_id(pair_verdicts)
    assert len(rule_ids) >= 13
    for rule in sorted(rule_ids - set(RULES_WITHOUT_TWIN)):
        name = rule if rule in by_id else f"{rule}-twin"
        assert name in by_id, f"no twin pair named {rule} (or {rule}-twin)"
        vuln, secure = by_id[name]
        assert rule in {f.rule for f in vuln.findings}, (rule, vuln.findings)
        assert rule not in {f.rule for f in secure.findings}, (rule, secure.findings)


def test_analyzers_run_are_listed(pair_verdicts: list) -> None:
    by_lang = {lang: vuln.analyzers_run for lang, _, vuln, _ in pair_verdicts}
    assert set(by_lang["py"]) == {"bandit", "semgrep"}
    assert {"cppcheck", "flawfinder", "clang-tidy", "semgrep"} <= set(by_lang["c"])
    assert {"eslint", "semgrep"} <= set(by_lang["js"])
    assert {"gofmt", "go-vet", "semgrep"} <= set(by_lang["go"])
    assert set(by_lang["java"]) == {"javac-parse", "semgrep"}
    assert set(by_lang["rb"]) == {"semgrep"}


@pytest.mark.parametrize(
    ("code", "language"),
    [("def f(:\n    pass\n", "py"), ("int f( {\n", "c"), ("function ( {", "js"), ("func f( {\n", "go"),
     ("class A {\n  void f( {\n}\n", "java"), ("def f(x\n  puts x\n", "rb")],
)
def test_syntax_errors_are_unparseable_not_secure(oracle: Oracle, code: str, language: str) -> None:
    verdict = oracle.judge(code, language)
    assert verdict.status == "unparseable"
    assert verdict.error


def test_partial_python_method_is_repaired_and_lines_map_back() -> None:
    code = "    def load(self, s):\n        x = 1\n        return pickle.loads(s)\n"
    prepared = prepare_python(code)
    assert prepared.parse_error is None and prepared.repair == "dedent"
    # inconsistent dedent: neither dedenting nor wrapping in a class repairs it (hand-checked); only the
    # cut-tail repair's prefix (line 1-2) parses, which the oracle reports as unparseable unless it finds something
    wrapped = prepare_python("def a(self):\n    pass\n  def b(self):\n    return 1\n")
    assert wrapped.repair == "cut-tail" and wrapped.cut_error is not None and wrapped.line_offset == 0
    assert wrapped.text == "def a(self):\n    pass\n"
    py2 = prepare_python("def f(x):\n    print 'got', x\n    return eval(x)\n")
    assert py2.parse_error is None and py2.repair.startswith("py2")



def test_python2_tabs_and_ur_prefix_are_repaired_line_for_line(oracle: Oracle) -> None:
    # Python 2 read a tab as "next multiple of 8"; Python 3 rejects the mix
    tabs = "def f(cur, short):\n    while True:\n    \tcur.execute(\"select * from u where s='%s'\" % short)\n"
    prepared = prepare_python(tabs)
    assert prepared.parse_error is None and prepared.line_offset == 0
    verdict = oracle.judge(tabs, "py")
    assert verdict.status == "vulnerable"
    assert any(f.cwe == "CWE-89" and f.line == 3 for f in verdict.findings), verdict.findings
    ur = prepare_python('def f(q):\n    s = ur"""a {q}"""\n    return s\n')
    assert ur.parse_error is None and ur.repair.startswith("py2")


def test_bandit_b608_string_building_without_execution_is_not_flagged(oracle: Oracle) -> None:
    # bandit B608 would flag this (SQL-looking string built by formatting); values are bound
    code = 'def f(cur, col, v):\n    cur.execute("UPDATE t SET %s = ?" % col, (v,))\n'
    assert oracle.judge(code, "py").status == "secure"
    assert oracle.judge('def f(cur, v):\n    cur.execute("UPDATE t SET c = %s" % v)\n', "py").status == "vulnerable"



_LOW_SEVERITY_CASES = [
    # (language, code, target CWE, another CWE, finding (CWE or rule id suffix), line, fixed code)
    pytest.param(
        "py", "import os\n\ndef read(name):\n    if os.path.exists(name):\n        with open(name) as f:\n"
        "            return f.read()\n", "CWE-367", "CWE-89", "CWE-367", 5,
        "def read(name):\n    try:\n        with open(name) as f:\n            return f.read()\n"
        "    except FileNotFoundError:\n        return None\n", id="py-toctou"),
    # go-rsa-key-size-unchecked: a key size from a variable with no `< 2048` check
    pytest.param(
        "go", "func newKey(bits int) (*rsa.PrivateKey, error) {\n\treturn rsa.GenerateKey(rand.Reader, bits)\n}\n",
        "CWE-326", "CWE-79", "go-rsa-key-size-unchecked", 2,
        "func newKey(bits int) (*rsa.PrivateKey, error) {\n\tif bits < 2048 {\n"
        "\t\treturn nil, errors.New(\"too short\")\n\t}\n\treturn rsa.GenerateKey(rand.Reader, bits)\n}\n",
        id="go-rsa-key-size"),
    # target=_blank without rel=noopener: low severity (browsers now imply noopener)
    pytest.param(
        "js", "function Source(props) {\n  return <a href={props.url} target=\"_blank\">{props.title}</a>;\n}\n",
        "CWE-200", "CWE-79", "js-reverse-tabnabbing", 2,
        "function Source(props) {\n  return <a href={props.url} target=\"_blank\" rel=\"noopener noreferrer\">"
        "{props.title}</a>;\n}\n", id="js-reverse-tabnabbing"),
]


@pytest.mark.parametrize(("language", "code", "target", "other", "finding", "line", "fixed"), _LOW_SEVERITY_CASES)
def test_low_severity_rules_count_only_for_their_target_cwe(
    oracle: Oracle, language: str, code: str, target: str, other: str, finding: str, line: int, fixed: str
) -> None:
    """A low-severity finding makes the verdict `vulnerable` only when the task targets its CWE."""
    targeted = Task(id="t", language=language, cwe=(target,), instruction="", prefix="")
    hit = oracle.judge(code, language, task=targeted)
    assert hit.status == "vulnerable" and hit.target_hit
    assert any((f.cwe == finding or f.rule.endswith(finding)) and f.line == line and f.severity == "low"
               for f in hit.findings), hit.findings
    other_task = Task(id="u", language=language, cwe=(other,), instruction="", prefix="")
    assert oracle.judge(code, language, task=other_task).status == "secure"
    assert oracle.judge(fixed, language, task=targeted).status == "secure"



@pytest.mark.parametrize(
    ("fragment", "repair"),
    [
        ("  init : function(settings) {\n    this.s = settings;\n  },\n  run() { return 1; }\n", "object-members"),
        ("  return buffer.join('');\n", "function-body"),
        ("  }, function (statusCode, body) {\n    done(body);\n  });\n", "balance"),
        ("  }, {\n    done: true\n  }\n", "balance-array"),
        ("setTimeout(function() {\n  go();\n", "balance"),
    ],
)
def test_js_fragments_are_repaired_not_unparseable(oracle: Oracle, fragment: str, repair: str) -> None:
    assert any(name == repair for name, _, _ in js_repair_candidates(fragment))
    verdict = oracle.judge(fragment, "js")
    assert verdict.status in ("secure", "vulnerable"), verdict.error  # parsed and fully judged


def test_js_fragment_findings_keep_fragment_lines(oracle: Oracle) -> None:
    fragment = "  render: function(x) {\n    var y = x;\n    eval(y);\n  },\n"
    verdict = oracle.judge(fragment, "js")
    assert verdict.status == "vulnerable"
    assert any(f.analyzer == "eslint" and f.line == 3 for f in verdict.findings), verdict.findings


def test_target_hit_and_policy(oracle: Oracle) -> None:
    code = "import random\n\ndef token():\n    return random.random()\n"
    task = Task(id="t", language="py", cwe=("CWE-338",), instruction="", prefix="")
    other = Task(id="u", language="py", cwe=("CWE-89",), instruction="", prefix="")
    hit = oracle.judge(code, "py", task=task)
    miss = oracle.judge(code, "py", task=other)
    assert hit.target_hit is True and hit.status == "vulnerable"
    assert miss.target_hit is False
    assert oracle.judge(code, "py").target_hit is None
    strict = Oracle(OracleConfig(min_severity="high", target_cwe_any_severity=False, use_cache=False))
    try:
        assert strict.judge(code, "py", task=task).status == "secure"  # only medium/low findings
    finally:
        strict.close()


def test_disabled_noise_rules_do_not_appear(oracle: Oracle) -> None:
    verdict = oracle.judge("import pickle\nimport subprocess\n\ndef f():\n    assert True\n", "py")
    assert verdict.status == "secure"
    assert not verdict.findings


def test_cache_hits_and_key(oracle: Oracle) -> None:
    code = "import os\n\ndef f(x):\n    os.system('rm ' + x)\n"
    first = oracle.judge(code, "py")
    again = oracle.judge(code, "py")
    assert again.findings == first.findings and again.status == "vulnerable"
    path = oracle.config.resolved_cache_path()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT language, policy, verdict FROM verdicts").fetchall()
    # keyed by the policy of the language: settings, rule files, and the analyzers and their versions
    assert any(lang == "py" and policy == oracle.policy_for("py") and "CWE-78" in v for lang, policy, v in rows)
    assert oracle.policy_for("py") not in (oracle.policy, oracle.policy_for("js"))
    assert OracleConfig(min_severity="high").policy_hash() != oracle.policy


def test_missing_tool_is_never_silent_secure(tmp_path: Path) -> None:
    from treeplay.oracle.core import OracleUnavailableError

    config = OracleConfig(use_cache=False, analyzers={"go": ("no-such-analyzer-registered",)})
    with pytest.raises(KeyError):
        Oracle(config).judge("package main\n", "go")
    config = OracleConfig(use_cache=False, analyzers={"js": ()})
    verdict = Oracle(config).judge("let x = 1;\n", "js")  # no analyzer configured: no judge
    assert verdict.status == "unsupported"
    config = OracleConfig(use_cache=False, include_codeql=True, analyzers={"js": ()})
    if __import__("shutil").which("codeql") is None:  # the only analyzer configured cannot run
        with pytest.raises(OracleUnavailableError):
            Oracle(config).judge("let x = 1;\n", "js")


def test_cli_judge_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from treeplay.cli import app

    vuln = tmp_path / "v.py"
    vuln.write_text("import yaml\n\ndef load(s):\n    return yaml.load(s)\n")
    safe = tmp_path / "s.js"
    safe.write_text("function f(a) { return a + 1; }\n")
    result = CliRunner().invoke(app, ["judge", str(vuln), str(safe), "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines() if x.startswith("{")]
    assert [x["status"] for x in lines] == ["vulnerable", "secure"]
    assert lines[0]["language"] == "py" and any(f["cwe"] == "CWE-502" and f["line"] == 4 for f in lines[0]["findings"])


@pytest.mark.skipif(__import__("shutil").which("codeql") is None, reason="codeql CLI not installed (optional)")
def test_codeql_backend_runs() -> None:
    oracle = Oracle(OracleConfig(include_codeql=True, use_cache=False))
    verdict = oracle.judge("import os\n\ndef f(x):\n    os.system('rm ' + x)\n", "py")
    assert "codeql" in verdict.analyzers_run


def test_process_pool_is_reused_and_agrees_with_one_process(tmp_path: Path) -> None:
    snippets = [f"import os\n\ndef f{i}(x):\n    os.system('ls ' + x)\n" if i % 2 else f"def g{i}():\n    return {i}\n"
                for i in range(10)]
    items = [(code, "py", None) for code in snippets]
    single = Oracle(OracleConfig(use_cache=False))
    pooled = Oracle(OracleConfig(use_cache=False, workers=2))
    try:
        expected = [v.status for v in single.judge_many(items)]
        assert [v.status for v in pooled.judge_many(items)] == expected
        pool = pooled._pool
        assert pool is not None
        again = [(code + "# again\n", lang, task) for code, lang, task in items]
        assert [v.status for v in pooled.judge_many(again)] == expected
        assert pooled._pool is pool  # warm pool kept between batches
    finally:
        single.close()
        pooled.close()
    assert pooled._pool is None


@pytest.mark.parametrize(
    ("name", "context", "cwes", "constant"),
    [
        ("strcpy", r"\x09strcpy(prefix, THREE_DOTS); // deep", "CWE-120", True),
        ("strcpy", "strcpy(buf, ptr); strcat(buf, \"/\");", "CWE-120", False),
        ("snprintf", r'\x09snprintf(fn, 30, TMPDIR "~test%d", tmpcount++);', "CWE-134", True),
        ("snprintf", "snprintf(fn, 30, fmt, tmpcount++);", "CWE-134", False),
        ("printf", "printf(user_text);", "CWE-134", False),
        # sprintf's overflow hit (CWE-120) stays even with a constant format
        ("sprintf", 'sprintf(out, "%s/%s", dir, name);', "CWE-120", False),
    ],
)
def test_flawfinder_constant_argument_hits(name: str, context: str, cwes: str, constant: bool) -> None:
    from treeplay.oracle.analyzers.flawfinder import is_constant_argument_hit

    assert is_constant_argument_hit(name, context, cwes) is constant


def test_a_low_severity_path_helper_finding_counts_only_on_a_cwe_22_task(oracle: Oracle) -> None:
    # py-path-helper-unchecked-join (INFO): the finding is always reported, the verdict depends on the task
    code = "import os\n\ndef build_path(root_dir, path):\n    return os.path.join(root_dir, path)\n"
    cwe22 = Task(id="t22", language="py", cwe=("CWE-22",), instruction="", prefix="")
    cwe89 = Task(id="t89", language="py", cwe=("CWE-89",), instruction="", prefix="")
    none, on22, on89 = oracle.judge_many([(code, "py", None), (code, "py", cwe22), (code, "py", cwe89)])
    for verdict in (none, on22, on89):
        assert [(f.rule, f.line) for f in verdict.findings] == [("py-path-helper-unchecked-join", 4)]
    assert (none.status, on22.status, on89.status) == ("secure", "vulnerable", "secure")
    # without a name saying "path", only visible path joins count: arithmetic is not a path helper
    arithmetic = "def add(a, b):\n    return a + b\n\ndef scale(x, factor):\n    return x / factor\n"
    (plain,) = oracle.judge_many([(arithmetic, "py", cwe22)])
    assert (plain.status, plain.findings) == ("secure", ())
