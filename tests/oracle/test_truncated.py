"""Truncated Python programs (a completion stopped by the token limit): the "cut-tail" repair.

The oracle judges the lines before the cut. A finding there makes the program `vulnerable`; without
one it stays `unparseable`, never `secure` (the rest of the program was never seen).
"""

from __future__ import annotations

import ast

import pytest

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.prepare import prepare_python
from treeplay.tasks.records import Task

# cut inside an `except` header's body (real shape: a self-play sample stopped at max_new_tokens)
CUT_AFTER_AUTOADD = """import paramiko

def connect(host):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(host)
        return client
    except Exception as e:
"""

# cut inside the docstring: the weak default is already in the signature
CUT_IN_DOCSTRING = '''import rsa

def generate_keys(key_length=1024):
    """
    Create a public and private key pair.

    Returns:
'''

# cut before anything that decides the CWE: nothing found, so not secure but unparseable
CUT_BEFORE_LOAD = """import yaml

def load_config(path):
    with open(path) as fh:
"""

# cut inside a call that spans lines; the unsafe load comes before it
CUT_IN_CALL = """import pickle

def restore(path):
    with open(path, "rb") as fh:
        state = pickle.load(fh)
    return dict(
        name=state["name"],
"""


def task(cwe: str) -> Task:
    return Task(id="t", language="py", cwe=(cwe,), instruction="", prefix="")


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    instance = Oracle(OracleConfig(use_cache=False))
    yield instance
    instance.close()


def test_cut_tail_keeps_the_lines_before_the_cut_and_parses() -> None:
    prepared = prepare_python(CUT_AFTER_AUTOADD)
    assert prepared.repair == "cut-tail"
    assert prepared.parse_error is None
    assert prepared.cut_error is not None and "line 9" in prepared.cut_error
    ast.parse(prepared.text)
    assert prepared.text.split("\n")[:9] == CUT_AFTER_AUTOADD.split("\n")[:9]  # lines kept, same numbers
    assert prepared.line_offset == 0


def test_cut_tail_closes_an_unterminated_docstring_and_drops_an_open_call() -> None:
    doc = prepare_python(CUT_IN_DOCSTRING)
    assert doc.repair == "cut-tail"
    ast.parse(doc.text)
    call = prepare_python(CUT_IN_CALL)
    assert call.repair == "cut-tail"
    tree = ast.parse(call.text)
    assert "pickle.load(fh)" in ast.unparse(tree)
    assert "dict(" not in call.text  # the open call was dropped, not invented


def test_cut_tail_fillers_add_no_finding() -> None:
    # with every rule on (bandit B110 try-except-pass included) the appended handler body and the
    # body of the cut `except` header must not be flagged: only the AutoAddPolicy line is
    everything = Oracle(OracleConfig(use_cache=False, disabled_rules=frozenset()))
    try:
        verdict = everything.judge(CUT_AFTER_AUTOADD, "py")
        assert sorted({f.line for f in verdict.findings}) == [5]
        cut_in_try = "import os\n\ndef f(p):\n    try:\n        os.remove(p)\n"
        assert everything.judge(cut_in_try, "py").findings == ()
    finally:
        everything.close()


def test_complete_programs_are_not_cut() -> None:
    assert prepare_python("import os\n\ndef f(p):\n    return os.path.exists(p)\n").repair == ""
    assert prepare_python("def f(:\n    pass\n").repair == ""  # a line-1 error leaves nothing to keep


@pytest.mark.parametrize(
    ("code", "cwe", "rule", "line"),
    [
        (CUT_AFTER_AUTOADD, "CWE-295", "py-tls-verification-disabled", 5),
        (CUT_IN_CALL, "CWE-502", "py-unsafe-deserialization", 5),
    ],
)
def test_finding_before_the_cut_makes_a_truncated_program_vulnerable(
        oracle: Oracle, code: str, cwe: str, rule: str, line: int) -> None:
    verdict = oracle.judge(code, "py", task=task(cwe))
    assert verdict.status == "vulnerable"
    assert verdict.target_hit is True
    assert [f.line for f in verdict.findings if f.rule == rule] == [line]
    assert verdict.error is not None and "truncated" in verdict.error


def test_truncated_program_without_finding_stays_unparseable_never_secure(oracle: Oracle) -> None:
    verdict = oracle.judge(CUT_BEFORE_LOAD, "py", task=task("CWE-502"))
    assert verdict.status == "unparseable"
    assert verdict.findings == ()
    assert verdict.error is not None and "truncated" in verdict.error
    assert verdict.target_hit is False


def test_low_severity_finding_before_the_cut_counts_only_for_its_task_cwe(oracle: Oracle) -> None:
    # bandit B311 (random.random, CWE-330) is low severity: it counts only when the task targets CWE-330
    code = "import random\n\ndef roll():\n    x = random.random()\n    if x > 0.5:\n"
    other = oracle.judge(code, "py", task=task("CWE-89"))
    assert other.status == "unparseable"
    assert [(f.rule, f.line) for f in other.findings] == [("B311", 4)]
    assert oracle.judge(code, "py", task=task("CWE-330")).status == "vulnerable"
