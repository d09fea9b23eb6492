"""Records of the tree stage: trees of branches from risk nodes, and training pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

BranchLabel = Literal["secure", "vulnerable", "unparseable", "nonfunctional"]


@dataclass(frozen=True)
class Node:
    id: str  # "n0", "n1", ... unique in its tree
    parent: str | None  # None for nodes on the golden path (trunk); else the node whose branch holds it
    branch_of_parent: int | None  # index of the branch (in `Tree.branches`) this node lies in
    char_offset: int  # offset into the parent path (golden path or that branch's full text) after task.prefix
    token_offset: int | None
    strategy: str  # "diff", "oracle", "entropy", "annotated", "llm", "root"
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


@dataclass(frozen=True)
class Pair:
    """A preference pair. For node-level pairs the prompt includes the shared golden prefix."""

    task_id: str
    node_id: str  # "root" for whole-sequence pairs
    mode: Literal["golden-vs-branch", "sibling", "whole-sequence", "sft"]
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
