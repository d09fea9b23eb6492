"""Language-aware stop rules: where a sampled continuation of a code prefix should end.

A rule looks at the code prefix once and then, given the completion text so far, returns the
character index in the completion where the code ends (or None to keep going):
- closing markdown fence (a line starting with ```), for every format: code ends before it;
- Python: the first non-blank line indented at or left of the enclosing ``def`` (dedent);
- Ruby: the ``end`` line at the indentation of the enclosing ``def`` (kept);
- C, C++, JavaScript, Go, Java: the ``}`` that closes the enclosing function body (brace depth,
  ignoring braces in strings and comments), kept;
- user stop strings: code ends before the first occurrence.

`cut_tokens` then maps a character cut onto a token boundary so that token ids, log-probs and
text stay consistent (text == decode(token_ids)).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BRACE_LANGUAGES = ("c", "cpp", "js", "go", "java")
_FENCE_RE = re.compile(r"^[ \t]*```", re.MULTILINE)
_PY_DEF_RE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]")
_RB_DEF_RE = re.compile(r"^([ \t]*)def[ \t]")
_PY_CONTINUATION_RE = re.compile(r"^[ \t]*[)\]}]")
_TOPLEVEL_CONTINUATION_RE = re.compile(r"^(?:else|elif|except|finally)\b|^[)\]}]")
_CONTROL_WORDS = frozenset(
    ["if", "for", "while", "switch", "catch", "else", "do", "try", "finally", "synchronized", "foreach", "with", "unless", "elif", "class", "struct", "enum", "union", "namespace", "interface", "extern"]
)
_GO_FUNC_RE = re.compile(r"^\s*func\b")


def indent_width(line: str) -> int:
    """Indentation in columns (tabs count as 4)."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4
        else:
            break
    return width


def fence_cut(completion: str, line_start_offset: int = 0) -> int | None:
    """Index of the first line in `completion` that starts with ``` (a closing fence).

    `line_start_offset` is the column of completion[0] in its line (0 when the prefix ended with a
    newline); a fence only counts at the start of a line.
    """
    for match in _FENCE_RE.finditer(completion):
        start = match.start()
        if start == 0 and line_start_offset != 0:
            continue
        return start
    return None


def strip_markdown_fences(text: str) -> str:
    """The code inside the first fenced block of `text` (or `text` minus stray fence lines).

    For whole model responses (e.g. a chat model's answer): an opening ```lang line and
    everything from the closing ``` on are removed.
    """
    lines = text.splitlines(keepends=True)
    opening = next((i for i, line in enumerate(lines) if line.lstrip().startswith("```")), None)
    if opening is None:
        return text
    body = lines[opening + 1 :]
    closing = next((i for i, line in enumerate(body) if line.lstrip().startswith("```")), None)
    if closing is not None:
        body = body[:closing]
    if opening > 0 and closing is None and any(line.strip() for line in lines[:opening]):
        # a stray closing fence after code: keep the code before it
        return "".join(lines[:opening])
    return "".join(body)


# ------------------------------------------------------------------------- Python / Ruby


def _enclosing_def_indent(prefix: str, def_re: re.Pattern[str]) -> int | None:
    """Indent of the innermost `def` whose body the end of `prefix` is still inside, else None."""
    lines = prefix.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        match = def_re.match(lines[i])
        if not match:
            continue
        indent = indent_width(match.group(1))
        for later in lines[i + 1 :]:
            if later.strip() and indent_width(later) <= indent and not _PY_CONTINUATION_RE.match(later):
                break
        else:
            return indent
    return None


def _complete_lines(text: str, first_line_offset: int) -> list[tuple[int, str, bool]]:
    """(start index, line text, starts at column 0 of a real line) for each line of `text` whose
    first non-blank character is already present."""
    out = []
    pos = 0
    for number, line in enumerate(text.split("\n")):
        at_line_start = not (number == 0 and first_line_offset != 0)
        if line.strip():
            out.append((pos, line, at_line_start))
        pos += len(line) + 1
    return out


def python_cut(prefix: str, completion: str) -> int | None:
    """End of the function body in `completion` (start of the first dedented line), or None."""
    partial = prefix.rsplit("\n", 1)[-1]
    base = _enclosing_def_indent(prefix, _PY_DEF_RE)
    seen_body = False
    in_string: str | None = None
    for full_line in prefix.split("\n")[:-1]:  # the prefix may end inside a docstring
        in_string = _track_triple_quotes(full_line, in_string)
    first, newline, _ = completion.partition("\n")
    if partial and newline and not first.strip():
        # the prefix's last line (e.g. the docstring's closing quotes) ends at the completion's
        # first newline; _complete_lines skips that blank remainder, so track its quotes here
        in_string = _track_triple_quotes(partial, in_string)
    for start, line, at_line_start in _complete_lines(completion, len(partial)):
        line_text = partial + line if not at_line_start else line
        if in_string is None and at_line_start:
            indent = indent_width(line)
            if base is not None:
                if indent <= base and not _PY_CONTINUATION_RE.match(line):
                    return start
            else:
                stripped = line.lstrip()
                if indent > 0:
                    seen_body = True
                elif seen_body and not _TOPLEVEL_CONTINUATION_RE.match(stripped) and not stripped.startswith(
                    ("def ", "async def ", "class ", "@", "#")
                ):
                    return start
        in_string = _track_triple_quotes(line_text, in_string)
    return None


def _track_triple_quotes(line: str, in_string: str | None) -> str | None:
    """Which triple quote ('\"\"\"' or "'''") is open after `line`, given the state before it."""
    i = 0
    while i < len(line):
        if in_string is not None:
            end = line.find(in_string, i)
            if end < 0:
                return in_string
            i = end + 3
            in_string = None
            continue
        if line[i] == "#":
            return None
        quote = line[i : i + 3]
        if quote in ('"""', "'''"):
            in_string = quote
            i += 3
            continue
        i += 1
    return in_string


def ruby_cut(prefix: str, completion: str) -> int | None:
    """End of the enclosing Ruby method: after the `end` line at the def's indentation."""
    base = _enclosing_def_indent(prefix, _RB_DEF_RE)
    if base is None:
        return None
    partial = prefix.rsplit("\n", 1)[-1]
    for start, line, at_line_start in _complete_lines(completion, len(partial)):
        if not at_line_start:
            continue
        if indent_width(line) <= base and line.strip() == "end":
            return start + len(line)
        if indent_width(line) < base:
            return start
    return None


# ---------------------------------------------------------------------------- braces


@dataclass
class BraceScanner:
    """Incremental scanner of C-like code tracking strings, comments and a stack of open braces.

    Each stack entry records whether that `{` opened a function body.
    """

    language: str
    stack: list[bool] = field(default_factory=list)
    state: str = "code"  # code | line_comment | block_comment | string
    quote: str = ""
    escape: bool = False
    header: list[str] = field(default_factory=list)  # code since the last ; { } (statement header)
    line_start: bool = True
    preprocessor: bool = False

    def copy(self) -> BraceScanner:
        return BraceScanner(self.language, list(self.stack), self.state, self.quote, self.escape,
                            list(self.header), self.line_start, self.preprocessor)

    def feed(self, text: str, on_close: Callable[[int, bool, int], bool] | None = None) -> int | None:
        """Scan `text`; calls on_close(index, was_function, depth_after) for every `}`; returns the
        index where on_close returned True (scanning stops there), else None."""
        i = 0
        n = len(text)
        while i < n:
            ch = text[i]
            nxt = text[i + 1] if i + 1 < n else ""
            if self.state == "line_comment":
                if ch == "\n":
                    self.state = "code"
                    self.line_start = True
                i += 1
                continue
            if self.state == "block_comment":
                if ch == "*" and nxt == "/":
                    self.state = "code"
                    i += 2
                    continue
                i += 1
                continue
            if self.state == "string":
                if self.escape:
                    self.escape = False
                elif ch == "\\" and self.quote != "`":
                    self.escape = True
                elif ch == self.quote or (ch == "\n" and self.quote in "'\""):
                    self.state = "code"
                i += 1
                continue
            # code
            if self.preprocessor:
                if ch == "\n" and (i == 0 or text[i - 1] != "\\"):
                    self.preprocessor = False
                    self.line_start = True
                i += 1
                continue
            if ch == "\n":
                self.line_start = True
                self.header.append(ch)
                i += 1
                continue
            if self.line_start and ch == "#" and self.language in ("c", "cpp"):
                self.preprocessor = True
                i += 1
                continue
            if not ch.isspace():
                self.line_start = False
            if ch == "/" and nxt == "/":
                self.state = "line_comment"
                i += 2
                continue
            if ch == "/" and nxt == "*":
                self.state = "block_comment"
                i += 2
                continue
            if ch in "\"'`":
                self.state, self.quote = "string", ch
                self.header.append(ch + ch)
                i += 1
                continue
            if ch == "{":
                self.stack.append(self._header_opens_function("".join(self.header)))
                self.header = []
            elif ch == "}":
                was_function = self.stack.pop() if self.stack else False
                self.header = []
                if on_close is not None and on_close(i, was_function, len(self.stack)):
                    return i
            elif ch == ";":
                self.header = []
            else:
                self.header.append(ch)
            i += 1
        return None

    def _header_opens_function(self, header: str) -> bool:
        head = header.strip()
        if not head:
            return False
        if self.language == "go":
            # Go requires the opening brace on the signature's line
            return bool(_GO_FUNC_RE.match(head.split("\n")[-1]))
        if head.endswith("=>") or re.search(r"\bfunction\b", head):
            return True
        first_word = re.match(r"[A-Za-z_]+", head.split("\n")[-1].strip() or head)
        words = set(re.findall(r"[A-Za-z_]+", head.split("(")[0]))
        if words & _CONTROL_WORDS or (first_word and first_word.group(0) in _CONTROL_WORDS):
            return False
        # a function header ends with ")" possibly followed by qualifiers / throws clauses
        return bool(re.search(r"\)\s*(?:const|noexcept|override|final|throws\s+[\w.,\s]+)?\s*$", head))

    def function_depth(self) -> int | None:
        """Depth (1-based stack index) of the outermost open function body, or None."""
        for index, is_function in enumerate(self.stack):
            if is_function:
                return index + 1
        return None


def brace_cut(prefix_scanner: BraceScanner, completion: str) -> int | None:
    """End of the enclosing (or first) function body in `completion`: index just after its `}`."""
    scanner = prefix_scanner.copy()
    open_function = scanner.function_depth()
    target: dict[str, int | None] = {"depth": None if open_function is None else open_function - 1}

    def on_close(index: int, was_function: bool, depth_after: int) -> bool:
        if target["depth"] is not None:
            return depth_after <= target["depth"]
        return was_function and scanner.function_depth() is None

    hit = scanner.feed(completion, on_close)
    return None if hit is None else hit + 1


# ---------------------------------------------------------------------------- combined


@dataclass
class StopRule:
    """Stop rule for continuations of one code prefix; `find(completion)` -> cut index or None."""

    language: str
    prefix: str
    stop_strings: Sequence[str] = ()
    fences: bool = True
    _scanner: BraceScanner | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.language in BRACE_LANGUAGES:
            self._scanner = BraceScanner(self.language)
            self._scanner.feed(self.prefix)

    @property
    def is_noop(self) -> bool:
        """True when no rule can ever fire (no language rule, no fences, no stop strings)."""
        return (
            not self.fences
            and not any(self.stop_strings)
            and self.language not in ("py", "rb")
            and self._scanner is None
        )

    def find(self, completion: str) -> int | None:
        cuts: list[int] = []
        partial_len = len(self.prefix.rsplit("\n", 1)[-1])
        if self.fences:
            cut = fence_cut(completion, partial_len)
            if cut is not None:
                cuts.append(cut)
        for stop in self.stop_strings:
            if stop:
                index = completion.find(stop)
                if index >= 0:
                    cuts.append(index)
        code = completion[: min(cuts)] if cuts else completion
        language_cut: int | None = None
        if self.language == "py":
            language_cut = python_cut(self.prefix, code)
        elif self.language == "rb":
            language_cut = ruby_cut(self.prefix, code)
        elif self._scanner is not None:
            language_cut = brace_cut(self._scanner, code)
        if language_cut is not None:
            cuts.append(language_cut)
        return min(cuts) if cuts else None


def token_boundaries(decoded_prefixes: Sequence[str], text: str) -> list[int]:
    """Character boundaries (len of decode(ids[:k]) for k = 0..n) that are true prefixes of `text`;
    -1 where a partial multi-byte character makes a prefix not align."""
    return [len(s) if text.startswith(s) else -1 for s in decoded_prefixes]


def token_ends(decode: Callable[[Sequence[int]], str], ids: Sequence[int]) -> tuple[int, ...]:
    """Where each token of `ids` ends in `decode(ids)`: len(decode(ids[:k])) for k = 1..n, -1 where
    that prefix does not align (a partial multi-byte character)."""
    return tuple(token_boundaries([decode(ids[:k]) for k in range(1, len(ids) + 1)], decode(ids)))


def cut_tokens(decoded_prefixes: Sequence[str], cut: int) -> int:
    """Number of tokens to keep for a character cut.

    `decoded_prefixes[k]` is decode(ids[:k]) for k = 0..n. Prefer the smallest boundary >= cut
    when the extra characters are only whitespace (e.g. the newline after a closing brace); else
    the largest boundary <= cut.
    """
    full = decoded_prefixes[-1]
    bounds = token_boundaries(decoded_prefixes, full)
    for k, b in enumerate(bounds):
        if b >= cut and b >= 0:
            if full[cut:b].strip() == "":
                return k
            break
    best = 0
    for k, b in enumerate(bounds):
        if 0 <= b <= cut:
            best = k
    return best
