"""Is a completion empty? A model must not look secure by writing nothing (docs/eval.md).

"Empty" covers blank output and trivial bodies, per language: comments, docstrings (Python),
`pass` / `...`, a bare `return` or one returning only the language's null, closing brackets and
a Markdown fence. Anything else is code; `behaviour_lines` counts it (the `code_lines` metric,
which shows a trained model's answers getting shorter, docs/eval.md).
"""

from __future__ import annotations

import re

from treeplay.oracle.languages import HASH_COMMENT

_FENCE = r"```[\w+-]*"
_BRACKETS = r"[{}();\[\],]*"
# per language: lines that add no behaviour (after comments and docstrings are removed)
_TRIVIAL: dict[str, str] = {
    "py": rf"pass|\.\.\.|return|return None|{_BRACKETS}|{_FENCE}",
    "c": rf"return\s*;|return\s+NULL\s*;|{_BRACKETS}|{_FENCE}",
    "cpp": rf"return\s*;|return\s+(NULL|nullptr)\s*;|{_BRACKETS}|{_FENCE}",
    "js": rf"return\s*;?|return\s+(null|undefined)\s*;?|{_BRACKETS}|{_FENCE}",
    "go": rf"return|return\s+nil|{_BRACKETS}|{_FENCE}",
    "java": rf"return\s*;|return\s+null\s*;|{_BRACKETS}|{_FENCE}",
    "rb": rf"end|nil|return|return\s+nil|{_BRACKETS}|{_FENCE}",
}
_TRIVIAL_RE = {lang: re.compile(rf"^(?:{pattern})$") for lang, pattern in _TRIVIAL.items()}
# any language not listed: the union (a conservative reading: only what is trivial everywhere
# would be stricter, but an unknown language is never rated anyway, see oracle `unsupported`)
_ANY = re.compile(rf"^(?:{'|'.join(_TRIVIAL.values())})$")
_PY_STRING_LINE = re.compile(r"""^[rRuUbBfF]{0,2}("[^"\n]*"|'[^'\n]*')$""")
_PY_TRIPLE = re.compile(r"""^[rRuUbBfF]{0,2}("{3}|'{3})""")


def _strip_block_comments(text: str) -> str:
    return re.sub(r"/\*.*?(\*/|$)", " ", text, flags=re.DOTALL)


def _strip_py_docstrings(lines: list[str]) -> list[str]:
    """Drop string-literal statements (docstrings), single- or multi-line."""
    kept: list[str] = []
    closing: str | None = None
    for line in lines:
        if closing is not None:
            if closing in line:
                closing = None
            continue
        match = _PY_TRIPLE.match(line)
        if match:
            rest = line[match.end():]
            if match.group(1) not in rest:
                closing = match.group(1)
            elif rest.rstrip().endswith(match.group(1)):
                continue  # one-line docstring
            else:
                kept.append(line)
            continue
        if not _PY_STRING_LINE.match(line):
            kept.append(line)
    return kept


def _code_lines(text: str, language: str) -> list[str]:
    if language == "rb":
        text = re.sub(r"^=begin\b.*?(^=end\b.*?$|\Z)", " ", text, flags=re.DOTALL | re.MULTILINE)
    if language not in HASH_COMMENT:
        text = _strip_block_comments(text)
    comments: tuple[str, ...] = ("#",) if language in HASH_COMMENT else ("//", "*")
    if language not in _TRIVIAL:  # unknown language: either comment style
        comments = ("#", "//", "*")
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(comments):
            continue
        if line:
            lines.append(line)
    return _strip_py_docstrings(lines) if language == "py" else lines


def behaviour_lines(text: str, language: str = "") -> int:
    """How many lines of a completion add behaviour in `language`: code lines that are not
    comments, docstrings or trivial (see the module docstring). 0 exactly when it is empty."""
    trivial = _TRIVIAL_RE.get(language, _ANY)
    return sum(not trivial.match(line) for line in _code_lines(text, language))


def is_empty_completion(text: str, language: str = "") -> bool:
    """True when a completion adds no code in `language` (see the module docstring)."""
    return behaviour_lines(text, language) == 0
