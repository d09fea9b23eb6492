"""The `Task` record: the unit every later stage consumes."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

LANGUAGES = ("py", "c", "cpp", "js", "go", "java", "rb")

EXTENSION_TO_LANGUAGE = {
    "py": "py",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "js": "js",
    "jsx": "js",
    "mjs": "js",
    "ts": "js",
    "go": "go",
    "java": "java",
    "rb": "rb",
}

LANGUAGE_NAMES = {
    "py": "Python",
    "c": "C",
    "cpp": "C++",
    "js": "JavaScript",
    "go": "Go",
    "java": "Java",
    "rb": "Ruby",
}

SPLITS = ("train", "val", "eval", "heldout-cwe")

_CWE_RE = re.compile(r"^\s*(?:cwe)?[\s_-]*0*(\d+)\s*$", re.IGNORECASE)


def normalise_cwe(value: str | int) -> str:
    """'cwe-079', 'CWE_79', '79', 79 -> 'CWE-79'. Raises ValueError on anything else."""
    match = _CWE_RE.match(str(value))
    if not match:
        raise ValueError(f"not a CWE identifier: {value!r}")
    return f"CWE-{int(match.group(1))}"


def language_from_filename(name: str) -> str:
    """Language code from a file name's extension; ValueError for an unknown one."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in EXTENSION_TO_LANGUAGE:
        raise ValueError(f"unknown source extension {ext!r} in {name!r}")
    return EXTENSION_TO_LANGUAGE[ext]


@dataclass(frozen=True)
class AnnotatedNode:
    """A risk node annotated by an external LLM (the reference implementation's GPT-4o nodes)."""

    line: str  # the code line text as the annotator wrote it
    cwe: str | None
    description: str = ""


@dataclass(frozen=True)
class Task:
    """One vulnerability-prone coding task.

    The model sees `instruction` and must continue the code `prefix`; a solution is
    `prefix + completion`. `golden` / `vulnerable` are reference completions (continuations of
    `prefix`), `changed_spans` are half-open character spans in `golden` that differ from
    `vulnerable`.
    """

    id: str
    language: str
    cwe: tuple[str, ...]
    instruction: str
    prefix: str
    golden: str | None = None
    vulnerable: str | None = None
    changed_spans: tuple[tuple[int, int], ...] = ()
    tests: str | None = None
    source: str = ""
    split: tuple[str, ...] = ()
    annotated_nodes: tuple[AnnotatedNode, ...] = ()
    # Free-form extras a loader keeps (e.g. HumanEval's `test`/`entry_point`, CWEval file names).
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"task {self.id!r}: unknown language {self.language!r} (expected one of {LANGUAGES})")
        for start, end in self.changed_spans:
            if not (0 <= start <= end <= len(self.golden or "")):
                raise ValueError(f"task {self.id!r}: changed span ({start}, {end}) outside golden")

    @property
    def primary_cwe(self) -> str | None:
        return self.cwe[0] if self.cwe else None

    @property
    def golden_solution(self) -> str | None:
        """The full secure reference program (prefix + golden), or None."""
        return None if self.golden is None else self.prefix + self.golden

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "cwe": list(self.cwe),
            "instruction": self.instruction,
            "prefix": self.prefix,
            "golden": self.golden,
            "vulnerable": self.vulnerable,
            "changed_spans": [list(s) for s in self.changed_spans],
            "tests": self.tests,
            "source": self.source,
            "split": list(self.split),
            "annotated_nodes": [
                {"line": n.line, "cwe": n.cwe, "description": n.description} for n in self.annotated_nodes
            ],
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Inverse of `to_dict`. Raises KeyError/TypeError/ValueError naming the bad field."""
        required = ("id", "language", "instruction", "prefix")
        for name in required:
            if name not in data:
                raise KeyError(name)
        cwe_raw = data.get("cwe") or []
        cwes = [cwe_raw] if isinstance(cwe_raw, str) else list(cwe_raw)
        return cls(
            id=str(data["id"]),
            language=str(data["language"]),
            cwe=tuple(normalise_cwe(c) for c in cwes),
            instruction=str(data["instruction"]),
            prefix=str(data["prefix"]),
            golden=data.get("golden"),
            vulnerable=data.get("vulnerable"),
            changed_spans=tuple((int(s[0]), int(s[1])) for s in data.get("changed_spans") or ()),
            tests=data.get("tests"),
            source=str(data.get("source", "")),
            split=tuple(data.get("split") or ()),
            annotated_nodes=tuple(
                AnnotatedNode(line=n["line"], cwe=n.get("cwe"), description=n.get("description", ""))
                for n in data.get("annotated_nodes") or ()
            ),
            meta=dict(data.get("meta") or {}),
        )


def align_prefix_to_line(task: Task) -> Task:
    """`task` with the indentation after the prefix's last newline moved into the completions.

    A prefix ending in indentation (a docstring line then ``"\\n    "``, as SecurityEval and sec-eval
    prompts do) ends on a whitespace token that BPE tokenizers rarely produce before code, so models
    continue it with one space too many (``"     with ..."``, an IndentationError). Ending the
    prefix at the line boundary lets the model write the indentation itself. `golden` and
    `vulnerable` get the moved whitespace prepended and `changed_spans` shift by its length, so
    every reference program (`prefix + golden`) is unchanged.
    """
    cut = task.prefix.rfind("\n") + 1
    tail = task.prefix[cut:]
    if not tail or tail.strip(" \t"):
        return task
    shift = len(tail)
    return dataclasses.replace(
        task,
        prefix=task.prefix[:cut],
        golden=None if task.golden is None else tail + task.golden,
        vulnerable=None if task.vulnerable is None else tail + task.vulnerable,
        changed_spans=tuple((start + shift, end + shift) for start, end in task.changed_spans),
    )
