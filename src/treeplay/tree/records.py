"""Records of the tree stage: trees of branches from risk nodes, and training pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from treeplay.jsonl import JsonlError, read_jsonl_numbered

BranchLabel = Literal["secure", "vulnerable", "unparseable", "nonfunctional", "incomplete", "unsupported"]


@dataclass(frozen=True)
class Node:
    id: str  # "root" (samples from task.prefix), "n1", "n2", ... unique in its tree
    parent: str | None  # None for nodes on the golden path (trunk); else the node whose branch holds it
    branch_of_parent: int | None  # index of the branch (in `Tree.branches`) this node lies in
    char_offset: int  # offset into the parent path (golden path or that branch's full text) after task.prefix
    token_offset: int | None
    strategy: (
        str  # "diff", "oracle", "entropy", "annotated", "llm", "root", "rebranch"; merged: "diff+oracle"
    )
    prefix_hash: str  # sha256 of the code prefix the branches continue
    depth: int = 1


@dataclass(frozen=True)
class Branch:
    node_id: str
    prefix: str  # the code prefix this branch continues (task.prefix + path[:offset])
    completion: str  # the sampled continuation; prefix + completion is the branch program
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # raw-policy log-probs of the sampler (the opponent)
    label: BranchLabel
    findings: tuple[dict[str, Any], ...] = ()  # oracle Finding dicts
    cwe: str | None = None
    first_flagged_line: int | None = None
    finish_reason: str = "stop"
    tests: dict[str, Any] | None = None  # TestResult dict when the task has tests

    @property
    def text(self) -> str:
        return self.prefix + self.completion


@dataclass(frozen=True)
class Tree:
    task_id: str
    golden: str | None  # the golden completion used as trunk (task's or self-found); None if none found
    golden_source: Literal["task", "self-play", "none"]
    nodes: tuple[Node, ...]
    branches: tuple[Branch, ...]
    round: int
    model_id: str
    config_hash: str
    # reference log-probs of the golden suffix after each trunk node: node id -> (token_ids, logprobs)
    golden_scores: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    # snapshot of the task (`Task.to_dict()`), so pairs/show/stats need only the trees file
    task: dict[str, Any] | None = None


@dataclass(frozen=True)
class Pair:
    """A preference pair. For node-level pairs the prompt includes the shared golden prefix."""

    task_id: str
    node_id: str  # "root" for whole-sequence pairs
    mode: Literal["golden-vs-branch", "golden-vs-unparseable", "sibling", "whole-sequence", "sft"]
    language: str
    cwe: str | None
    instruction: str
    prefix: str  # shared code prefix (task.prefix + path up to the node)
    chosen: str  # continuation of prefix
    rejected: str  # continuation of prefix ("" for mode "sft")
    # Optional recorded reference (opponent) log-probs, aligned to chosen/rejected token ids.
    chosen_token_ids: tuple[int, ...] | None = None
    chosen_ref_logprobs: tuple[float, ...] | None = None
    rejected_token_ids: tuple[int, ...] | None = None
    rejected_ref_logprobs: tuple[float, ...] | None = None
    reference_model: str | None = None
    round: int = 0
    # How each side ended: "stop" (it ended by itself: the task's golden code, or a branch that closed
    # its answer), "length" (a branch cut at the token budget); None: not recorded (pairs written
    # before 2026-11-28) or no side ("" rejected of `sft`). `train.end_marker` appends the end of an
    # answer only to a side that stopped.
    chosen_finish_reason: str | None = None
    rejected_finish_reason: str | None = None


# --- JSON round-trip (additive helpers; records are written with treeplay.jsonl.to_jsonable) ---


class TreeRecordError(ValueError):
    """A tree record field that is missing or has the wrong type; `field` is its path in the
    record (e.g. ``nodes[2].char_offset``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"field {field!r}: {message}")


_REQUIRED: Any = object()
_GOLDEN_SOURCES = ("task", "self-play", "none")


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _get(data: dict[str, Any], key: str, *types: type, default: Any = _REQUIRED) -> Any:
    """`data[key]`, checked to be one of `types` (bool is not an int here); `default` when absent."""
    if key not in data:
        if default is _REQUIRED:
            raise TreeRecordError(key, "missing")
        return default
    value = data[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise TreeRecordError(key, f"expected {_type_names(types)}, got {type(value).__name__}")
    return value


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...]) -> Any:
    value = _get(data, key, str)
    if value not in choices:
        raise TreeRecordError(key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _numbers(data: dict[str, Any], key: str, kind: type) -> tuple[Any, ...]:
    """A list of numbers (`kind` int, or float accepting ints too); absent or null = ()."""
    values = _get(data, key, list, type(None), default=None) or []
    allowed = (int,) if kind is int else (int, float)
    for i, value in enumerate(values):
        if not isinstance(value, allowed) or isinstance(value, bool):
            raise TreeRecordError(f"{key}[{i}]", f"expected {kind.__name__}, got {type(value).__name__}")
    return tuple(kind(v) for v in values)


def _objects(data: dict[str, Any], key: str, parse: Any, *, default: Any = _REQUIRED) -> tuple[Any, ...]:
    """A list of JSON objects, each given to `parse`; errors name the item (``key[i].field``)."""
    values = _get(data, key, list, type(None), default=default) or []
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, dict):
            raise TreeRecordError(f"{key}[{i}]", f"expected an object, got {type(value).__name__}")
        try:
            out.append(parse(value))
        except TreeRecordError as exc:
            raise TreeRecordError(f"{key}[{i}].{exc.field}", exc.message) from None
    return tuple(out)


def node_from_dict(data: dict[str, Any]) -> Node:
    return Node(
        id=_get(data, "id", str),
        parent=_get(data, "parent", str, type(None), default=None),
        branch_of_parent=_get(data, "branch_of_parent", int, type(None), default=None),
        char_offset=_get(data, "char_offset", int),
        token_offset=_get(data, "token_offset", int, type(None), default=None),
        strategy=_get(data, "strategy", str),
        prefix_hash=_get(data, "prefix_hash", str),
        depth=_get(data, "depth", int, default=1),
    )


def branch_from_dict(data: dict[str, Any]) -> Branch:
    return Branch(
        node_id=_get(data, "node_id", str),
        prefix=_get(data, "prefix", str),
        completion=_get(data, "completion", str),
        token_ids=_numbers(data, "token_ids", int),
        logprobs=_numbers(data, "logprobs", float),
        label=_choice(data, "label", get_args(BranchLabel)),
        findings=_objects(data, "findings", dict, default=None),
        cwe=_get(data, "cwe", str, type(None), default=None),
        first_flagged_line=_get(data, "first_flagged_line", int, type(None), default=None),
        finish_reason=_get(data, "finish_reason", str, default="stop"),
        tests=_get(data, "tests", dict, type(None), default=None),
    )


def tree_from_dict(data: dict[str, Any]) -> Tree:
    """Inverse of `to_jsonable(tree)`; a missing or mistyped field raises TreeRecordError naming it."""
    return Tree(
        task_id=_get(data, "task_id", str),
        golden=_get(data, "golden", str, type(None), default=None),
        golden_source=_choice(data, "golden_source", _GOLDEN_SOURCES),
        nodes=_objects(data, "nodes", node_from_dict),
        branches=_objects(data, "branches", branch_from_dict),
        round=_get(data, "round", int, default=0),
        model_id=_get(data, "model_id", str, default=""),
        config_hash=_get(data, "config_hash", str, default=""),
        golden_scores=dict(_get(data, "golden_scores", dict, type(None), default=None) or {}),
        stats=dict(_get(data, "stats", dict, type(None), default=None) or {}),
        task=_get(data, "task", dict, type(None), default=None),
    )


def read_trees(path: Path | str, *, tolerate_truncated_tail: bool = False) -> list[Tree]:
    """The trees of a `trees.jsonl`; a bad line or record raises JsonlError naming file, line and field."""
    trees = []
    for number, record in read_jsonl_numbered(path, tolerate_truncated_tail=tolerate_truncated_tail):
        try:
            trees.append(tree_from_dict(record))
        except TreeRecordError as exc:
            raise JsonlError(path, number, f"bad tree record: {exc}") from None
    return trees


_PAIR_MODES = ("golden-vs-branch", "golden-vs-unparseable", "sibling", "whole-sequence", "sft")


def _optional_numbers(data: dict[str, Any], key: str, kind: type) -> tuple[Any, ...] | None:
    """Like `_numbers`, but absent or null stays None (a pair without recorded log-probs)."""
    return None if data.get(key) is None else _numbers(data, key, kind)


def pair_from_dict(data: dict[str, Any]) -> Pair:
    """Inverse of `to_jsonable(pair)`; a missing or mistyped field raises TreeRecordError naming it."""
    return Pair(
        task_id=_get(data, "task_id", str),
        node_id=_get(data, "node_id", str),
        mode=_choice(data, "mode", _PAIR_MODES),
        language=_get(data, "language", str),
        cwe=_get(data, "cwe", str, type(None), default=None),
        instruction=_get(data, "instruction", str),
        prefix=_get(data, "prefix", str),
        chosen=_get(data, "chosen", str),
        rejected=_get(data, "rejected", str, default=""),
        chosen_token_ids=_optional_numbers(data, "chosen_token_ids", int),
        chosen_ref_logprobs=_optional_numbers(data, "chosen_ref_logprobs", float),
        rejected_token_ids=_optional_numbers(data, "rejected_token_ids", int),
        rejected_ref_logprobs=_optional_numbers(data, "rejected_ref_logprobs", float),
        reference_model=_get(data, "reference_model", str, type(None), default=None),
        round=_get(data, "round", int, default=0),
        chosen_finish_reason=_get(data, "chosen_finish_reason", str, type(None), default=None),
        rejected_finish_reason=_get(data, "rejected_finish_reason", str, type(None), default=None),
    )


def read_pairs(path: str | Path) -> list[Pair]:
    """Read Pair records from JSONL; a bad record raises ValueError naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pairs file")
    out = []
    for number, record in read_jsonl_numbered(path):
        try:
            out.append(pair_from_dict(record))
        except TreeRecordError as exc:
            raise ValueError(f"{path}:{number}: bad Pair record: {exc}") from None
    return out
