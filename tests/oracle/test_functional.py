"""Static functional sanity (treeplay.oracle.functional) through the real oracle: hallucinated
imports and undefined names are `nonfunctional`, runnable code is `ok`."""

from __future__ import annotations

import sys

import pytest

from treeplay.oracle import Oracle, OracleConfig
from treeplay.oracle.functional import check_python, outside_context, signatures
from treeplay.tasks.records import Task


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    instance = Oracle(OracleConfig(use_cache=False))
    yield instance
    instance.close()


def test_python_unknown_import_and_undefined_name() -> None:
    assert check_python("import json\n\ndef f(s):\n    return json.loads(s)\n") is None
    assert check_python("import fastsecurejson\n\ndef f(s):\n    return fastsecurejson.loads(s)\n") == (
        "line 1: import of unknown module 'fastsecurejson'")
    assert check_python("from flask_safe_utils import clean\n\nclean(input())\n") == (
        "line 1: import of unknown module 'flask_safe_utils'")
    assert check_python("import os\n\ndef f(p):\n    return sanitize_path(p)\n") == "line 4: undefined name 'sanitize_path'"
    # a partial function (no imports of its own) is not expected to define its helpers
    assert check_python("def f(self, p):\n    return sanitize_path(p)\n") is None
    # optional dependency with a fallback
    assert check_python("try:\n    import ujson as json\nexcept ImportError:\n    import json\n") is None


def test_an_import_of_a_widely_used_pypi_module_is_the_tasks_environment() -> None:
    """boto3, psycopg2 and tensorflow are not installed here (checked below) but are among PyPI's
    15,000 most-downloaded distributions: importing them is not a hallucination. A project-local
    module (fludrsa, from the Flud project a SafeCoder task comes from), an invented one and a
    generic name a project would use for its own helpers (`utils`) stay unknown."""
    from treeplay.oracle.functional import importable, known_pypi_module

    assert not any(importable(m) for m in ("boto3", "psycopg2", "tensorflow"))
    assert check_python("import boto3\n\ndef f(b):\n    return boto3.client('s3').list_objects(Bucket=b)\n") is None
    assert check_python("import psycopg2\nimport tensorflow as tf\n\ndef f():\n    return psycopg2, tf\n") is None
    assert check_python("from dateutil import parser\n\ndef f(s):\n    return parser.parse(s)\n") is None
    assert check_python("import fludrsa\n\ndef f():\n    return fludrsa.FludRSA.generate(1024)\n") == (
        "line 1: import of unknown module 'fludrsa'")
    assert check_python("from utils import safe_join\n\ndef f(p):\n    return safe_join('/srv', p)\n") == (
        "line 1: import of unknown module 'utils'")
    assert known_pypi_module("yaml") and known_pypi_module("PIL") and known_pypi_module("socketio")
    assert not known_pypi_module("flask_safe_utils") and not known_pypi_module("config")


STUB_REASON = "no implementation (only imports, pass, ..., docstrings or raise NotImplementedError)"


def test_python_programs_that_do_nothing_are_nonfunctional() -> None:
    """Both 'secure' root samples that TSP's round 2 chose over real programs in the 2026-11-26
    experiment (runs/experiment, task sec-new-desc.train:129): a stub and a bare return."""
    assert check_python("def get_user_errors_logger_html(submission_id):\n    pass\n") == STUB_REASON
    assert check_python("return '<pre>%s</pre>' % errors_log\n") == "line 1: 'return' outside function"
    assert check_python("") == STUB_REASON
    assert check_python("import os\n\nclass Store:\n    \"\"\"Keeps things.\"\"\"\n\n    def load(self):\n"
                        "        ...\n\n    def save(self, x):\n        raise NotImplementedError('later')\n") == STUB_REASON
    # one real statement anywhere is an implementation
    assert check_python("def f(x):\n    pass\n\ndef g(x):\n    return x + 1\n") is None
    assert check_python("class C:\n    def m(self):\n        pass\n    limit = 3\n") is None
    assert check_python("def f(x):\n    if x:\n        pass\n") is None
    # a NotImplementedError raised only under a condition is code
    assert check_python("def f(x):\n    if not x:\n        raise NotImplementedError\n") is None


def test_python_compiler_errors_the_parser_lets_through() -> None:
    assert check_python("for x in range(3):\n    pass\nbreak\n") == "line 3: 'break' outside loop"
    assert check_python("def f():\n    x = 1\n\nyield 2\n") == "line 4: 'yield' outside function"
    assert check_python("def f():\n    return 1 is 1\n") is None  # a SyntaxWarning is not an error


def test_signatures() -> None:
    assert signatures("def f(a, b=1):\n    pass\nasync def g( x ):\n    pass\n") == {"f": "a,b=1", "g": "x"}


def test_oracle_verdict_carries_functional_status(oracle: Oracle) -> None:
    ok, hallucinated, c_bad, c_ok, js_ok, go = oracle.judge_many([
        ("import json\n\ndef f(s):\n    return json.loads(s)\n", "py", None),
        ("import yaml_secure_loader\n\ndef f(s):\n    return yaml_secure_loader.load(s)\n", "py", None),
        ("#include <stdio.h>\nint main(void) { undefined_call(1); return missing_var; }\n", "c", None),
        ("#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n", "c", None),
        ("function f(a) { return a + 1; }\n", "js", None),
        ("package main\n\nfunc main() {}\n", "go", None),
    ])
    assert (ok.functional, ok.functional_error) == ("ok", None)
    assert hallucinated.functional == "nonfunctional"
    assert hallucinated.functional_error == "line 1: import of unknown module 'yaml_secure_loader'"
    assert c_bad.functional == "nonfunctional" and "missing_var" in (c_bad.functional_error or "")
    assert c_ok.functional == "ok"
    assert js_ok.functional == "unchecked"  # eslint's parse check only (node --check rejects fragments)
    assert go.functional == "unchecked"
    assert oracle.judge("def f(:\n", "py").functional == "unchecked"
    stub = oracle.judge("def get_user_errors_logger_html(submission_id):\n    pass\n", "py")
    assert (stub.status, stub.functional, stub.functional_error) == ("secure", "nonfunctional", STUB_REASON)


def test_task_signature_dropped_is_nonfunctional(oracle: Oracle) -> None:
    task = Task(id="t", language="py", cwe=("CWE-22",), instruction="", prefix="import os\n\ndef read(path, mode):\n")
    kept = oracle.judge("import os\n\ndef read(path, mode):\n    return open(path, mode).read()\n", "py", task=task)
    renamed = oracle.judge("import os\n\ndef load(path):\n    return open(path).read()\n", "py", task=task)
    changed = oracle.judge("import os\n\ndef read(path):\n    return open(path).read()\n", "py", task=task)
    assert kept.functional == "ok"
    assert (renamed.functional, renamed.functional_error) == ("nonfunctional", "task function 'read' is not defined")
    assert changed.functional_error == "task function 'read' changed its parameters"


def test_module_the_task_prefix_imports_is_not_a_hallucination(oracle: Oracle) -> None:
    # a project's own module (MySQLdb, this test's first example, is now a known PyPI module)
    task = Task(id="t", language="py", cwe=("CWE-89",), instruction="", prefix="import acme_dbtools\n\ndef get(db, uid):\n")
    code = "import acme_dbtools\n\ndef get(db, uid):\n    return db.cursor().execute('SELECT 1')\n"
    assert oracle.judge(code, "py").functional == "nonfunctional"  # neither installed nor on PyPI's top list
    assert oracle.judge(code, "py", task=task).functional == "ok"
    other = code.replace("return", "import fakesql_helper\n    return")
    assert oracle.judge(other, "py", task=task).functional_error == "line 4: import of unknown module 'fakesql_helper'"


def test_the_launching_scripts_directory_is_not_importable(tmp_path, monkeypatch) -> None:
    """sys.path[0] is the directory of the script that started treeplay (or the cwd under -m); the
    sandboxed program never sees it, so a module there is not importable for it, and where
    treeplay was launched from does not change the oracle's fingerprint."""
    from treeplay.oracle.functional import functional_fingerprint, importable

    (tmp_path / "only_next_to_the_script.py").write_text("x = 1\n")
    uncached = functional_fingerprint.__wrapped__  # the function is lru-cached
    before = uncached("py")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    assert not importable("only_next_to_the_script")
    assert importable("yaml") and importable("json")
    assert uncached("py") == before


def test_the_fingerprint_hashes_module_names_not_path_strings(tmp_path, monkeypatch) -> None:
    """The same modules reached through two directories (a clone elsewhere, a worktree's src on
    PYTHONPATH) give the same fingerprint; one more importable module changes it."""
    from treeplay.oracle.functional import functional_fingerprint

    uncached = functional_fingerprint.__wrapped__  # the function is lru-cached
    for name in ("clone_a", "clone_b"):
        (tmp_path / name / "pkg_only_here").mkdir(parents=True)
        (tmp_path / name / "pkg_only_here" / "__init__.py").write_text("")
    rest = sys.path[1:]
    monkeypatch.setattr(sys, "path", [sys.path[0], str(tmp_path / "clone_a"), *rest])
    seen_from_a = uncached("py")
    monkeypatch.setattr(sys, "path", [sys.path[0], str(tmp_path / "clone_b"), *rest])
    assert uncached("py") == seen_from_a
    (tmp_path / "clone_b" / "another_module.py").write_text("x = 1\n")
    assert uncached("py") != seen_from_a
    monkeypatch.setattr(sys, "path", [sys.path[0], *rest])
    assert uncached("py") != seen_from_a  # pkg_only_here is gone


FLASK_TASK = Task(id="t", language="py", cwe=("CWE-79",), instruction="", golden='''
  user = db.get(username)
  if user is None:
    return apology("User not found.")
  return render_template("user.html", user=escape(user))
''', prefix="@app.route('/users/<username>')\ndef show(username):\n")


@pytest.mark.parametrize(("completion", "expected"), [
    # jsonify: used by neither the prefix (app) nor the golden code (db, apology, render_template, escape)
    ("  return jsonify({'error': 'no user'}), 404\n",
     ["line 3: name 'jsonify' is not in the task's context (prefix or golden code)"]),
    # names the golden code uses are the file's context: fine
    ("  return apology(escape(db.get(username)))\n", []),
    # builtins are defined; a Python 2 name is not
    ("  return str(len(username))\n", []),
    ("  return unicode(username)\n", ["line 3: name 'unicode' is not in the task's context (prefix or golden code)"]),
    # a local definition is a definition
    ("  def encrypt_password(p):\n    return p[::-1]\n  return encrypt_password(username)\n", []),
    # an invented helper, and `os` the task never shows, each named once per use
    ("  p = os.path.join('/u', username)\n  return encrypt_password(p)\n",
     ["line 3: name 'os' is not in the task's context (prefix or golden code)",
      "line 4: name 'encrypt_password' is not in the task's context (prefix or golden code)"]),
])  # fmt: skip
def test_a_partial_program_may_use_only_names_its_task_shows(completion: str, expected: list[str]) -> None:
    assert outside_context(FLASK_TASK.prefix + completion, FLASK_TASK) == expected


def test_context_rule_leaves_whole_programs_tasks_without_golden_and_star_imports_alone() -> None:
    body = "  return jsonify(username)\n"
    # a module-level import makes it self-contained: check_python's own undefined-name check applies
    assert outside_context("from flask import Flask\n" + FLASK_TASK.prefix + body, FLASK_TASK) == []
    bare = Task(id="t", language="py", cwe=("CWE-79",), instruction="", prefix=FLASK_TASK.prefix)
    assert outside_context(FLASK_TASK.prefix + body, bare) == []  # no golden code: no evidence either way
    assert outside_context("def f():\n    from flask import *\n    return jsonify(1)\n", FLASK_TASK) == []


def test_an_indented_method_body_is_checked_dedented() -> None:
    task = Task(id="t", language="py", cwe=("CWE-117",), instruction="", prefix="    def variables(self, form):\n",
                golden="        if not form.validate():\n            return self.render('v.html')\n")  # fmt: skip
    code = task.prefix + "        if not validate_form(form):\n            return self.render('v.html')\n"
    assert outside_context(code, task) == [
        "line 2: name 'validate_form' is not in the task's context (prefix or golden code)"]


def test_the_oracle_marks_a_branch_outside_its_tasks_context_nonfunctional(oracle: Oracle) -> None:
    code = FLASK_TASK.prefix + "  return jsonify({'user': escape(db.get(username))})\n"
    verdict = oracle.judge(code, "py", task=FLASK_TASK)
    assert (verdict.functional, verdict.functional_error) == (
        "nonfunctional", "line 3: name 'jsonify' is not in the task's context (prefix or golden code)")
    fine = oracle.judge(FLASK_TASK.prefix + "  return apology(escape(db.get(username)))\n", "py", task=FLASK_TASK)
    assert fine.functional == "ok"
    assert oracle.judge(code, "py").functional == "ok"  # without a task there is no context to check
