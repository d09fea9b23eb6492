"""Functional sanity for programs without tests: is this code even able to run?

SafeCoder-style tasks carry no tests, so a hallucinated program (an import of a module that does
not exist, a call of a name defined nowhere) would otherwise be judged `secure` and become a
"chosen" example. Each check is cheap and static; none runs the code:

- Python: every module-level import must be importable by the sandbox's interpreter (the running
  one: `treeplay.oracle.sandbox` mounts it) or be a known PyPI module (`known_pypi_module`: an
  import name of the 15,000 most-downloaded distributions, `data/pypi_top.txt`, or
  `IMPORT_ALIASES`), since `import boto3` for an S3 task is the task's environment, not a
  hallucination; pyflakes undefined names count only for
  self-contained programs (code with its own module-level imports: a partial function cut from a
  file cannot be expected to define its helpers). The program must compile (the compiler's own
  errors, which `ast.parse` lets through: `return` outside a function, `break` outside a loop...)
  and must do something: a program of only imports, `pass`, `...`, docstrings and
  `raise NotImplementedError` bodies is secure by doing nothing, never a chosen example.
- C/C++: `gcc/g++ -fsyntax-only` for self-contained programs (code with its own `#include`s).
- JavaScript: no extra check. `node --check` rejects the fragments the eslint worker repairs (64 of
  the 226 SafeCoder JS snippets), and eslint's parse check already makes broken scripts
  `unparseable`; `check_js` is kept for callers with whole scripts.
- Go: `go vet` already type-checks each snippet (the `go-vet` analyzer); its type errors are
  reported there, not repeated here.
- Task signature (apply_signature): the task prefix's function definitions must survive; an
  unknown module or undefined name the task prefix itself uses is excused.
- Task context (outside_context, Python, v10): a partial program may rely on its file's unseen
  imports and helpers, but only on names the task shows (in its prefix or golden code); a name the
  task never uses (`jsonify`, an invented `encrypt_password`) makes it `nonfunctional`. On the TSP
  trees of three 36-task training seeds this marked 90 of 463 `secure` branches (docs/oracle.md).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from treeplay.oracle.records import Verdict

if TYPE_CHECKING:
    from treeplay.tasks.records import Task

_TIMEOUT_S = 20.0


@lru_cache(maxsize=4096)
def importable(module: str) -> bool:
    """A top-level module the sandbox's Python can import (find_spec runs no module code)."""
    if module in sys.stdlib_module_names or module in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(module, sandbox_path()) is not None
    except (ImportError, ValueError):
        return False


PYPI_TOP = Path(__file__).with_name("data") / "pypi_top.txt"
# Import names that differ from their distribution's beyond the affixes scripts/pypi_top_modules.py
# strips (PyYAML -> yaml, beautifulsoup4 -> bs4, ...). Case as imported.
IMPORT_ALIASES = frozenset({
    "Crypto", "Cryptodome", "Levenshtein", "MySQLdb", "OpenSSL", "PIL", "bs4", "cv2", "dns", "docx", "fitz",
    "git", "google", "jwt", "kafka", "ldap", "magic", "nacl", "pptx", "serial", "skimage", "sklearn", "yaml",
    "zmq",
})


@lru_cache(maxsize=1)
def _pypi_top() -> frozenset[str]:
    lines = PYPI_TOP.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def known_pypi_module(module: str) -> bool:
    """A top-level module that a widely used PyPI distribution provides, installed here or not."""
    return module in IMPORT_ALIASES or module.lower() in _pypi_top()


def sandbox_path() -> list[str]:
    """sys.path without its first entry: that is the directory of the script that started this
    process (or the cwd under `python -m`), which the sandboxed program never sees. Keeping it made
    `treeplay run` and `python -m treeplay run` disagree on what is importable, and on the oracle
    fingerprint (so every pipeline stage looked stale)."""
    return [p for p in sys.path[1:] if p]


def importable_top_level() -> list[str]:
    """The top-level modules and packages on the sandbox path, sorted: what `importable` can find,
    by name. The fingerprint hashes these names, not the path strings, so the same environment
    reached through another directory (a clone elsewhere, a worktree on PYTHONPATH) is the same
    oracle; adding or removing a module changes it."""
    return sorted({module.name for module in pkgutil.iter_modules(sandbox_path())})


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, top-level module) of absolute imports anywhere in the program."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _guarded(tree: ast.Module) -> set[int]:
    """Lines of imports inside `try:` (optional dependencies with a fallback are fine)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        lines.add(sub.lineno)
    return lines


def check_python(text: str) -> str | None:
    """None when the program looks runnable, else every reason (with its line), joined by "; "."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None  # the parse check reports this as `unparseable`
    guarded = _guarded(tree)
    reasons = [f"line {line}: import of unknown module {module!r}" for line, module in _imports(tree)
               if line not in guarded and not importable(module) and not known_pypi_module(module)]
    if _self_contained(tree):
        reasons += _undefined_names(tree)
    compile_error = _compile_error(tree)
    if compile_error is not None:
        reasons.append(compile_error)
    if not _does_something(tree.body):
        reasons.append(NO_IMPLEMENTATION)
    return "; ".join(reasons) or None


NO_IMPLEMENTATION = "no implementation (only imports, pass, ..., docstrings or raise NotImplementedError)"


def _self_contained(tree: ast.Module) -> bool:
    """A program with its own module-level imports (not a function cut from a file)."""
    return any(isinstance(n, ast.Import | ast.ImportFrom) for n in tree.body)


def _uses_name(name: str, text: str) -> bool:
    """`name` occurs in `text` as a whole word."""
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def _compile_error(tree: ast.Module) -> str | None:
    """A SyntaxError of the compiler's symbol-table pass, which `ast.parse` does not raise: `return`,
    `yield` or `await` outside a function, `break` outside a loop, `nonlocal` at module level... Compiling
    runs none of the code (constant folding is size-capped by CPython)."""
    try:
        with warnings.catch_warnings():  # SyntaxWarning ("is" with a literal...) is not an error
            warnings.simplefilter("ignore")
            compile(tree, "snippet.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError):
        return None  # not a verdict on the program: the parse check has already accepted it
    return None


def _is_placeholder(stmt: ast.stmt) -> bool:
    """`pass`, `...`, a docstring (any bare constant), an import, `raise NotImplementedError[(...)]`."""
    if isinstance(stmt, ast.Pass | ast.Import | ast.ImportFrom):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        raised = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
    return False


def _does_something(body: list[ast.stmt]) -> bool:
    """Whether any statement, here or inside a def or class, is more than a placeholder."""
    for stmt in body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if _does_something(stmt.body):
                return True
        elif not _is_placeholder(stmt):
            return True
    return False


def _undefined_names(tree: ast.Module) -> list[str]:
    from pyflakes import checker, messages

    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return []  # names may come from the star import
    result = checker.Checker(tree, filename="snippet.py")
    return [f"line {m.lineno}: undefined name {m.message_args[0]!r}"
            for m in sorted(result.messages, key=lambda m: m.lineno) if isinstance(m, messages.UndefinedName)]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None  # tool broken: the check is skipped, never a verdict


def _first_error(output: str) -> str:
    for line in output.splitlines():
        if "error" in line:
            return line.split("/")[-1].strip()[:300]
    return output.strip().splitlines()[0][:300] if output.strip() else "failed"


def check_c(path: Path, language: str) -> str | None:
    """gcc/g++ -fsyntax-only for a self-contained program (one with its own #include lines)."""
    text = path.read_text(encoding="utf-8")
    if not re.search(r"^\s*#\s*include\b", text, re.MULTILINE):
        return None
    compiler = shutil.which("g++" if language == "cpp" else "gcc")
    if compiler is None:
        return None
    proc = _run([compiler, "-fsyntax-only", "-w", path.name], path.parent)
    if proc is None or proc.returncode == 0:
        return None
    return _first_error(proc.stderr)


def check_js(path: Path) -> str | None:
    node = shutil.which("node")
    if node is None:
        return None
    proc = _run([node, "--check", path.name], path.parent)
    if proc is None or proc.returncode == 0:
        return None
    return _first_error(proc.stderr) if "Error" in proc.stderr else None


@lru_cache(maxsize=8)
def functional_fingerprint(language: str) -> str:
    """What the language's check depends on outside this module (part of the verdict cache key):
    Python's version, pyflakes, every installed distribution (the modules `importable` finds) and the
    known PyPI module list;
    the C/C++ compiler's version. Installing a module or a compiler invalidates cached verdicts."""
    if language == "py":
        dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
        listing = "\n".join([sys.version, *importable_top_level(), *dists, *sorted(_pypi_top())])
        return "py:" + hashlib.sha256(listing.encode()).hexdigest()[:16]
    if language in ("c", "cpp"):
        compiler = shutil.which("g++" if language == "cpp" else "gcc")
        proc = _run([compiler, "--version"], Path.cwd()) if compiler else None
        first = proc.stdout.strip().splitlines()[0] if proc is not None and proc.stdout.strip() else "missing"
        return f"{language}:{compiler}:{first}"
    return "unchecked"


def check_file(path: Path, language: str) -> str | None:
    """The reason a prepared snippet file cannot run, or None."""
    if language == "py":
        return check_python(path.read_text(encoding="utf-8"))
    if language in ("c", "cpp"):
        return check_c(path, language)
    return None


_PY_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(([^)]*)\)", re.MULTILINE)


def signatures(code: str) -> dict[str, str]:
    """Python function name -> parameter text (whitespace removed)."""
    return {name: re.sub(r"\s+", "", params) for name, params in _PY_DEF.findall(code)}


_NAMED = re.compile(r"(?:unknown module|undefined name) '([\w.]+)'")


def _excused_by_prefix(verdict: Verdict, prefix: str) -> Verdict:
    """A module or name the task's own prefix already uses is the task's environment, not a
    hallucination of the model (a task importing MySQLdb must not make every branch nonfunctional)."""
    kept = []
    for reason in (verdict.functional_error or "").split("; "):
        match = _NAMED.search(reason)
        if not (match and _uses_name(match.group(1), prefix)):
            kept.append(reason)
    if kept:
        return replace(verdict, functional_error="; ".join(kept))
    return replace(verdict, functional="ok", functional_error=None)


def outside_context(code: str, task: Task) -> list[str]:
    """The names a *partial* Python program (no module-level import: a function cut from a file) uses
    without defining them that the task shows nowhere: neither its prefix nor its golden code uses
    them (whole words). Each as "line N: name 'X' is not in the task's context (prefix or golden
    code)". A partial program cannot be checked against the file it came from, but what the task
    shows is the only evidence of that file: a branch that calls `jsonify` or an invented
    `encrypt_password` helper the task never mentions is not a runnable chosen example. Empty: a
    self-contained program (`check_python` checks its names), a task without golden code, code that
    does not parse even dedented, or a star import."""
    if not task.golden:
        return []
    tree = None
    for text in (code, textwrap.dedent(code)):
        try:
            tree = ast.parse(text)
            break
        except SyntaxError:
            continue
    if tree is None or _self_contained(tree):
        return []
    context = task.prefix + "\n" + task.golden
    reasons = []
    for reason in _undefined_names(tree):
        name = _NAMED.search(reason)
        if name and not _uses_name(name.group(1), context):
            line = reason.split(":", 1)[0]
            reasons.append(f"{line}: name {name.group(1)!r} is not in the task's context (prefix or golden code)")
    return reasons


def apply_signature(verdict: Verdict, code: str, task: Task | None) -> Verdict:
    """`nonfunctional` when the program dropped or changed a function the task's prefix defines, or
    (partial programs) uses a name outside the task's context (`outside_context`)."""
    if task is None or task.language not in ("py", "python") or verdict.status == "unparseable":
        return verdict
    if verdict.functional == "nonfunctional":
        return _excused_by_prefix(verdict, task.prefix)
    if verdict.functional == "ok":
        unknown = outside_context(code, task)
        if unknown:
            return replace(verdict, functional="nonfunctional", functional_error="; ".join(unknown))
    wanted = signatures(task.prefix)
    have = signatures(code)
    for name, params in wanted.items():
        if name not in have:
            return replace(verdict, functional="nonfunctional",
                           functional_error=f"task function {name!r} is not defined")
        if have[name] != params:
            return replace(verdict, functional="nonfunctional",
                           functional_error=f"task function {name!r} changed its parameters")
    return verdict
