"""Turn a snippet into the text analyzers see.

Generated and dataset snippets are often partial: an indented method body cut out of a class, a
Go function without a `package` clause, a JavaScript class method. Before calling such code
unparseable we try repairs that keep the code's meaning and shift lines by a known offset, so
findings map back to the judged code's own line numbers.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

PY_WRAPPER = "class _TreeplayWrapper:\n"
GO_PACKAGE = "package treeplaysnippet\n"
JS_CLASS_WRAPPER = "class _TreeplayWrapper {\n"


@dataclass(frozen=True)
class Prepared:
    """A snippet ready for analysis. `line_offset` = analysed line - original line."""

    language: str
    original: str
    text: str
    line_offset: int = 0
    repair: str = ""  # "", "dedent", "wrap-class", "py2-print", "go-package", "cut-tail", ...
    parse_error: str | None = None  # set when the code cannot be parsed (Python only, here)
    # "cut-tail" (Python): the code parses only after its tail was cut/closed (a completion stopped by
    # the token limit). `cut_error` is the original parse error; the oracle reports such a program as
    # `unparseable` unless a finding in the part that parses makes it `vulnerable` (never `secure`).
    cut_error: str | None = None

    def original_line(self, analysed_line: int) -> int:
        """Map a line of `text` back to the judged code (clamped into its range)."""
        n_lines = max(1, self.original.count("\n") + 1)
        return min(max(1, analysed_line - self.line_offset), n_lines)


_PY2_PRINT = re.compile(r"^(\s*)print(?!\s*\()\s+(?P<rest>[^=].*?)\s*$", re.MULTILINE)
_PY2_EXCEPT = re.compile(r"^(\s*except\s+(?:[\w.]+(?:\s*\([^)]*\))?|\([^)]*\)))\s*,\s*(\w+)\s*:", re.MULTILINE)
_PY2_PRINT_BARE = re.compile(r"^(\s*)print\s*$", re.MULTILINE)
_PY2_UR_PREFIX = re.compile(r"""(^|[^\w"'])[uU][rR](["'])""")  # ur"..." is Python 2 only


def _py2_to_py3(code: str) -> str:
    """Line-preserving fixes for the Python 2 constructs common in old repositories."""
    code = _PY2_PRINT.sub(lambda m: f"{m.group(1)}print({m.group('rest')})", code)
    code = _PY2_PRINT_BARE.sub(lambda m: f"{m.group(1)}print()", code)
    code = _PY2_EXCEPT.sub(lambda m: f"{m.group(1)} as {m.group(2)}:", code)
    code = _PY2_UR_PREFIX.sub(lambda m: f"{m.group(1)}r{m.group(2)}", code)
    return code.replace("<>", "!=")


def _parses(code: str) -> str | None:
    """None when `code` parses as Python 3, else the error message."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. null bytes
        return str(exc)
    return None


def prepare_python(code: str, *, repair: bool = True) -> Prepared:
    error = _parses(code)
    if error is None:
        return Prepared("py", code, code)
    if not repair:
        return Prepared("py", code, code, parse_error=error)
    # Python 2 read a tab as "advance to the next multiple of 8": expanding tabs keeps the meaning of
    # snippets that mix tabs and spaces (Python 3 rejects them as inconsistent).
    dedented = textwrap.dedent(code.expandtabs(8)) if code[:1] in (" ", "\t") else code.expandtabs(8)
    candidates: list[tuple[str, str, int]] = [
        ("dedent", dedented, 0),
        ("wrap-class", PY_WRAPPER + textwrap.indent(dedented, "    "), 1),
    ]
    py3 = _py2_to_py3(dedented)
    if py3 != dedented:
        candidates += [("py2", py3, 0), ("py2+wrap-class", PY_WRAPPER + textwrap.indent(py3, "    "), 1)]
    for name, text, offset in candidates:
        if text != code and _parses(text) is None:
            return Prepared("py", code, text, line_offset=offset, repair=name)
    cut = _py_cut_tail(dedented)
    if cut is not None:
        return Prepared("py", code, cut, repair="cut-tail", cut_error=error)
    return Prepared("py", code, code, parse_error=error)


PY_CUT_MAX_LINES = 40  # at most this many trailing lines are dropped to find a prefix that parses
_PY_BLOCK_OPENER = re.compile(r":\s*(#.*)?$")
_PY_HANDLER = re.compile(r"^(except\b|finally\s*:|else\s*:)")


def _py_close_tail(text: str) -> str:
    """`text` with what a truncation left open closed: an unterminated triple-quoted string, a block
    header with no body (`...`), `try:` blocks with no handler (`except BaseException: raise`). Lines are
    appended, never changed; the fillers are ones no rule flags (`pass` in a handler is bandit B110)."""
    for quote in ('"""', "'''"):
        if text.count(quote) % 2:
            text += quote
            break
    lines = text.split("\n")
    last = next((line for line in reversed(lines) if line.strip()), "")
    indent = len(last) - len(last.lstrip())
    if _PY_BLOCK_OPENER.search(last):
        text += "\n" + " " * (indent + 4) + "..."
    open_tries: list[int] = []
    for line in lines:
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        col = len(line) - len(stripped)
        while open_tries and (open_tries[-1] > col or (open_tries[-1] == col and not _PY_HANDLER.match(stripped))):
            open_tries.pop()
        if open_tries and open_tries[-1] == col and _PY_HANDLER.match(stripped):
            open_tries.pop()
        if re.match(r"try\s*:", stripped):
            open_tries.append(col)
    for col in reversed(open_tries):
        text += "\n" + " " * col + "except BaseException:\n" + " " * (col + 4) + "raise"
    return text + "\n"


def _py_cut_tail(code: str) -> str | None:
    """The longest prefix of `code` (whole lines, at most PY_CUT_MAX_LINES dropped) that parses once
    `_py_close_tail` closed it, or None. Line numbers of the kept lines are unchanged."""
    lines = code.rstrip().split("\n")
    for drop in range(min(len(lines) - 1, PY_CUT_MAX_LINES) + 1):
        kept = "\n".join(lines[: len(lines) - drop])
        if not kept.strip():
            break
        text = _py_close_tail(kept)
        if _parses(text) is None:
            return text
    return None


_GO_PACKAGE_RE = re.compile(r"^\s*package\s+\w+", re.MULTILINE)
_JS_METHOD_START = re.compile(r"^\s*(?:static\s+|async\s+|get\s+|set\s+)*[A-Za-z_$][\w$]*\s*\([^()]*\)\s*\{")


_GO_TOP_LEVEL = re.compile(r"^(func|type|var|const|import|package)\b|^(//|/\*|\)|\}|$)")


def _go_first_code_line(code: str) -> str:
    return next((line.strip() for line in code.splitlines() if line.strip()), "")


def prepare_go(code: str) -> Prepared:
    """Add a `package` clause when missing; wrap bare statements (a function body cut out of its
    function, as in SafeCoder's Go rows) in a function. Both keep lines (offset 1 or 2)."""
    if _GO_PACKAGE_RE.search(code):
        return Prepared("go", code, code)
    if not _GO_TOP_LEVEL.match(_go_first_code_line(code)):
        text = f"{GO_PACKAGE}func _treeplayFragment() {{\n{code}\n}}\n"
        return Prepared("go", code, text, line_offset=2, repair="go-package+func-body")
    return Prepared("go", code, GO_PACKAGE + code, line_offset=1, repair="go-package")


def prepare_js(code: str) -> Prepared:
    """Wrap a bare class method (`name(args) { ... }`) in a class; anything else as is."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    if _JS_METHOD_START.match(first) and not re.match(
        r"^\s*(if|for|while|switch|catch|function|return)\b", first
    ):
        return Prepared("js", code, JS_CLASS_WRAPPER + code + "\n}\n", line_offset=1, repair="wrap-class")
    return Prepared("js", code, code)


_JS_OPENER_FOR = {")": "_treeplay(", "]": "[", "}": "{"}
_JS_CLOSER_FOR = {"(": ")", "[": "]", "{": "}"}


def _js_unbalanced(code: str) -> tuple[list[str], list[str]]:
    """(closers with no opener, in order; openers never closed, innermost last), skipping strings,
    template literals and comments. Regex literals are not recognised (rare in fragments)."""
    leading: list[str] = []
    stack: list[str] = []
    i, n = 0, len(code)
    while i < n:
        ch = code[i]
        if ch in "'\"`":
            i += 1
            while i < n and code[i] != ch:
                i += 2 if code[i] == "\\" else 1
        elif code.startswith("//", i):
            i = code.find("\n", i)
            i = n if i < 0 else i
        elif code.startswith("/*", i):
            i = code.find("*/", i + 2)
            i = n if i < 0 else i + 1
        elif ch in _JS_CLOSER_FOR:
            stack.append(ch)
        elif ch in _JS_OPENER_FOR:
            if stack and _JS_CLOSER_FOR[stack[-1]] == ch:
                stack.pop()
            elif not stack:
                leading.append(ch)
        i += 1
    return leading, stack


def js_repair_candidates(code: str) -> list[tuple[str, str, int]]:
    """Rewrites of a JavaScript fragment that may parse where the fragment does not, as
    (name, text, line offset). The eslint worker lints the first candidate that parses (only when the
    fragment itself does not); every candidate keeps the fragment's lines, shifted by the offset.

    Covers what SafeCoder/generated fragments look like: object-literal members (`name: function(){}`,
    `name() {}`), bare statements with `return`, a method chain starting with `.then(...)`, and
    fragments cut inside a call or block (closers appended, missing openers prepended on one line).
    """
    leading, unclosed = _js_unbalanced(code)
    first = next((line.strip() for line in code.splitlines() if line.strip()), "")
    head = "".join(_JS_OPENER_FOR[c] for c in reversed(leading))
    if first.startswith("."):
        head = "_treeplayChain" + head
    tail = "".join(_JS_CLOSER_FOR[c] for c in reversed(unclosed))
    balanced = (f"{head}\n{code}\n{tail}\n", 1) if (head or tail) else (code, 0)
    body, offset = balanced
    candidates = [
        ("object-members", f"({{\n{code}\n}})\n", 1),
        ("class-body", f"{JS_CLASS_WRAPPER}{code}\n}}\n", 1),
        ("function-body", f"async function _treeplayFragment() {{\n{code}\n}}\n", 1),
    ]
    if leading and set(leading) == {"}"}:  # `}, function (a) {` : the tail of an argument list
        arr = f"{'[{' * len(leading)}\n{code}\n{tail}{']' * len(leading)}\n"
        candidates += [("balance-array", arr, 1),
                       ("balance-array+function-body", f"async function _treeplayFragment() {{\n{arr}}}\n", 2)]
    if offset:
        candidates += [
            ("balance", body, offset),
            ("balance+function-body", f"async function _treeplayFragment() {{\n{body}}}\n", offset + 1),
            ("balance+object-members", f"({{\n{body}}})\n", offset + 1),
        ]
    return candidates


_JAVA_TYPE = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s*)*(?:(?:public|private|protected|abstract|final|static|"
                        r"sealed|strictfp)\s+)*(?:class|interface|enum|record|@interface)\s+\w+", re.MULTILINE)
_JAVA_HEADER = re.compile(r"^\s*(?:package|import)\s+[\w.]+(?:\.\*)?\s*;\s*$", re.MULTILINE)


def prepare_java(code: str) -> Prepared:
    """A method or statement fragment (SafeCoder rows are single methods) goes inside a class."""
    if _JAVA_TYPE.search(code) or _JAVA_HEADER.search(code):
        return Prepared("java", code, code)
    return Prepared("java", code, "class TreeplaySnippet {\n" + code + "\n}\n", line_offset=1, repair="wrap-class")


def prepare(code: str, language: str, *, repair: bool = True) -> Prepared:
    if language == "py":
        return prepare_python(code, repair=repair)
    if language == "go" and repair:
        return prepare_go(code)
    if language == "js" and repair:
        return prepare_js(code)
    if language == "java" and repair:
        return prepare_java(code)
    return Prepared(language, code, code)
