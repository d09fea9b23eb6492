"""Records of the eval stage: `Generation`, one line of `generations.jsonl`.

Contract (what `treeplay.eval.evaluate` writes and every reader of an eval dir relies on):
- one record per sample: `completion` continues the task's prefix and `program` is
  `task.prefix + completion`; `sample_index` is the sample's index (0..n-1) within its task;
- `verdict` is the oracle's `Verdict` of `program` (None: not judged, e.g. HumanEval) and `tests`
  the sandbox `TestResult` (None: the task has no tests); both are the oracle stage's records;
- on disk the fields appear in the order below and the nested records as `to_jsonable` writes
  them, so `Generation.from_json(...).to_json()` gives back the parsed line, key for key (files
  written before this record existed load and rewrite unchanged);
- every field of a line is required; inside `verdict`/`tests`, a field with a default in its
  dataclass may be missing. A bad line raises `GenerationError` naming the file, the line and the
  field (`verdict.findings[0].line`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar, get_args, get_type_hints

from treeplay.jsonl import read_jsonl_numbered, to_jsonable
from treeplay.oracle.records import (
    STATUS_KIND,
    Finding,
    FunctionalStatus,
    SandboxOutcome,
    Severity,
    TestCaseOutcome,
    TestResult,
    Verdict,
)

T = TypeVar("T")


class GenerationError(ValueError):
    """A generations.jsonl line that is not a `Generation`; names the file, the line and the field."""


@dataclass(frozen=True)
class Generation:
    """One evaluated sample: what was generated for which task, and what the oracle and tests said."""

    task_id: str
    language: str
    cwe: tuple[str, ...]  # the task's CWEs (its primary CWE first)
    bench: str  # the bench name as given (`sec-eval:not-trained`), not its directory slug
    model_id: str
    sample_index: int
    completion: str
    program: str
    finish_reason: str  # "stop" or "length" (the policy's `Completion.finish_reason`)
    n_tokens: int
    verdict: Verdict | None
    tests: TestResult | None

    @property
    def status(self) -> str | None:
        """The oracle's verdict status, None when the sample was not judged."""
        return None if self.verdict is None else self.verdict.status

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this record (one line of generations.jsonl)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, path: Path | str, line: int, obj: Mapping[str, Any]) -> Generation:
        """The record of line `line` of `path` (a parsed JSON object); GenerationError when bad."""
        r = _Reader(path, line, obj, "")
        return cls(
            task_id=r.string("task_id"),
            language=r.string("language"),
            cwe=r.strings("cwe"),
            bench=r.string("bench"),
            model_id=r.string("model_id"),
            sample_index=r.integer("sample_index"),
            completion=r.string("completion"),
            program=r.string("program"),
            finish_reason=r.string("finish_reason"),
            n_tokens=r.integer("n_tokens"),
            verdict=r.nested("verdict", _verdict, optional=True),
            tests=r.nested("tests", _test_result, optional=True),
        )


def read_generations(path: Path | str) -> list[Generation]:
    """Every record of a generations.jsonl (a truncated last line, left by a kill, is dropped)."""
    return list(iter_generations(path))


def iter_generations(path: Path | str) -> Iterator[Generation]:
    for line, obj in read_jsonl_numbered(path, tolerate_truncated_tail=True):
        yield Generation.from_json(path, line, obj)


# ---- reading fields, and the nested oracle records

_ABSENT: Any = object()  # a field that may be missing and is: the dataclass default applies


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were present (the others take their dataclass defaults)."""
    return {name: value for name, value in values.items() if value is not _ABSENT}


class _Reader:
    """Typed access to the fields of one JSON object; errors name the file, the line and the field
    path. With `may_miss`, a missing field reads as `_ABSENT` (its dataclass default applies); values
    keep their JSON type (a float field written as `1` stays `1`), so `to_json` gives back the line."""

    def __init__(self, path: Path | str, line: int, obj: Mapping[str, Any], prefix: str) -> None:
        self.path, self.line, self.obj, self.prefix = path, line, obj, prefix

    def fail(self, name: str, problem: str) -> GenerationError:
        return GenerationError(f"{self.path}:{self.line}: field '{self.prefix}{name}': {problem}")

    def value(self, name: str, check: Callable[[Any], bool], expected: str, *, may_miss: bool = False,
              optional: bool = False) -> Any:  # fmt: skip
        if name not in self.obj:
            if may_miss:
                return _ABSENT
            raise self.fail(name, "missing")
        value = self.obj[name]
        if (value is None and optional) or check(value):
            return value
        raise self.fail(name, f"expected {expected}{' or null' if optional else ''}, got {_kind(value)}")

    def string(self, name: str, *, may_miss: bool = False, optional: bool = False) -> Any:
        return self.value(name, lambda v: isinstance(v, str), "a string", may_miss=may_miss, optional=optional)

    def integer(self, name: str) -> int:
        return int(self.value(name, _is_int, "an integer"))

    def number(self, name: str, *, may_miss: bool = False) -> Any:
        return self.value(name, _is_number, "a number", may_miss=may_miss)

    def boolean(self, name: str, *, may_miss: bool = False, optional: bool = False) -> Any:
        return self.value(name, lambda v: isinstance(v, bool), "true or false", may_miss=may_miss, optional=optional)

    def choice(self, name: str, choices: tuple[str, ...], *, may_miss: bool = False) -> Any:
        value = self.string(name, may_miss=may_miss)
        if value is not _ABSENT and value not in choices:
            raise self.fail(name, f"unknown value {value!r} (known: {', '.join(choices)})")
        return value

    def strings(self, name: str, *, may_miss: bool = False) -> Any:
        items = self.value(name, lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                           "a list of strings", may_miss=may_miss)  # fmt: skip
        return items if items is _ABSENT else tuple(items)

    def nested(self, name: str, build: Callable[[_Reader], T], *, optional: bool = False) -> T | None:
        obj = self.value(name, lambda v: isinstance(v, dict), "an object", optional=optional)
        return None if obj is None else build(_Reader(self.path, self.line, obj, f"{self.prefix}{name}."))

    def items(self, name: str, build: Callable[[_Reader], T], *, may_miss: bool = False) -> Any:
        objs = self.value(name, lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
                          "a list of objects", may_miss=may_miss)  # fmt: skip
        if objs is _ABSENT:
            return objs
        return tuple(build(_Reader(self.path, self.line, o, f"{self.prefix}{name}[{i}].")) for i, o in enumerate(objs))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_TEST_KINDS: tuple[str, ...] = get_args(get_type_hints(TestCaseOutcome)["kind"])


def _finding(r: _Reader) -> Finding:
    return Finding(
        cwe=r.string("cwe", optional=True),
        line=r.integer("line"),
        end_line=r.integer("end_line"),
        analyzer=r.string("analyzer"),
        rule=r.string("rule"),
        severity=r.choice("severity", get_args(Severity)),
        message=r.string("message"),
    )


def _verdict(r: _Reader) -> Verdict:
    """A `Verdict`; the fields with a default in the dataclass may be missing."""
    return Verdict(**_given(
        status=r.choice("status", tuple(STATUS_KIND)),
        findings=r.items("findings", _finding, may_miss=True),
        analyzers_run=r.strings("analyzers_run", may_miss=True),
        elapsed_s=r.number("elapsed_s", may_miss=True),
        target_hit=r.boolean("target_hit", may_miss=True, optional=True),
        error=r.string("error", may_miss=True, optional=True),
        failed_analyzers=r.strings("failed_analyzers", may_miss=True),
        functional=r.choice("functional", get_args(FunctionalStatus), may_miss=True),
        functional_error=r.string("functional_error", may_miss=True, optional=True),
    ))  # fmt: skip


def _test_case(r: _Reader) -> TestCaseOutcome:
    return TestCaseOutcome(**_given(
        name=r.string("name"),
        kind=r.choice("kind", _TEST_KINDS),
        passed=r.boolean("passed"),
        message=r.string("message", may_miss=True),
    ))  # fmt: skip


def _test_result(r: _Reader) -> TestResult:
    """A `TestResult`; the fields with a default in the dataclass may be missing."""
    return TestResult(**_given(
        functional_pass=r.boolean("functional_pass"),
        security_pass=r.boolean("security_pass"),
        outcome=r.choice("outcome", get_args(SandboxOutcome)),
        tests=r.items("tests", _test_case, may_miss=True),
        duration_s=r.number("duration_s", may_miss=True),
        output_tail=r.string("output_tail", may_miss=True),
    ))  # fmt: skip
