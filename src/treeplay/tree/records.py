"""Records of the tree stage: trees of branches from risk nodes, and training pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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


# --- JSON round-trip (additive helpers; records are written with treeplay.jsonl.to_jsonable) ---


def node_from_dict(data: dict[str, Any]) -> Node:
    return Node(
        id=str(data["id"]),
        parent=data.get("parent"),
        branch_of_parent=data.get("branch_of_parent"),
        char_offset=int(data["char_offset"]),
        token_offset=data.get("token_offset"),
        strategy=str(data["strategy"]),
        prefix_hash=str(data["prefix_hash"]),
        depth=int(data.get("depth", 1)),
    )


def branch_from_dict(data: dict[str, Any]) -> Branch:
    return Branch(
        node_id=str(data["node_id"]),
        prefix=str(data["prefix"]),
        completion=str(data["completion"]),
        token_ids=tuple(int(t) for t in data.get("token_ids") or ()),
        logprobs=tuple(float(x) for x in data.get("logprobs") or ()),
        label=data["label"],
        findings=tuple(data.get("findings") or ()),
        cwe=data.get("cwe"),
        first_flagged_line=data.get("first_flagged_line"),
        finish_reason=str(data.get("finish_reason", "stop")),
        tests=data.get("tests"),
    )


def tree_from_dict(data: dict[str, Any]) -> Tree:
    """Inverse of `to_jsonable(tree)`; KeyError names a missing field."""
    return Tree(
        task_id=str(data["task_id"]),
        golden=data.get("golden"),
        golden_source=data["golden_source"],
        nodes=tuple(node_from_dict(n) for n in data["nodes"]),
        branches=tuple(branch_from_dict(b) for b in data["branches"]),
        round=int(data.get("round", 0)),
        model_id=str(data.get("model_id", "")),
        config_hash=str(data.get("config_hash", "")),
        golden_scores=dict(data.get("golden_scores") or {}),
        stats=dict(data.get("stats") or {}),
        task=data.get("task"),
    )


def pair_from_dict(data: dict[str, Any]) -> Pair:
    """Inverse of `to_jsonable(pair)`; KeyError names a missing field."""

    def _ints(key: str) -> tuple[int, ...] | None:
        value = data.get(key)
        return None if value is None else tuple(int(v) for v in value)

    def _floats(key: str) -> tuple[float, ...] | None:
        value = data.get(key)
        return None if value is None else tuple(float(v) for v in value)

    return Pair(
        task_id=str(data["task_id"]),
        node_id=str(data["node_id"]),
        mode=data["mode"],
        language=str(data["language"]),
        cwe=data.get("cwe"),
        instruction=str(data["instruction"]),
        prefix=str(data["prefix"]),
        chosen=str(data["chosen"]),
        rejected=str(data.get("rejected", "")),
        chosen_token_ids=_ints("chosen_token_ids"),
        chosen_ref_logprobs=_floats("chosen_ref_logprobs"),
        rejected_token_ids=_ints("rejected_token_ids"),
        rejected_ref_logprobs=_floats("rejected_ref_logprobs"),
        reference_model=data.get("reference_model"),
        round=int(data.get("round", 0)),
    )
