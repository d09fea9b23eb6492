"""Grow one oracle-labelled tree per task, in named phases (`TreeBuilder.build`).

Phases, in the order `build` runs them (each a short method):
1. Root samples (`_sample_root`; `root_samples` of them, from `task.prefix`): labelled, kept as
   the `root` node's branches; they feed the `oracle` strategy, the self-play golden search and
   the unstructured whole-sequence baseline.
2. Golden path (`placement.choose_golden`): `task.golden`, else the most likely (highest total
   log-prob) root sample the oracle judged secure (and functional where tests exist), else none.
3. One policy scoring of the golden completion from the root (`_score_golden_from_root`) gives
   token boundaries (to snap node offsets) and entropies (for the `entropy` strategy).
4. Trunk nodes from the chosen strategies (`_grow_trunk`); `k` branches sampled at each, all
   judged; then the reference log-probs of the golden suffix after every trunk node (one
   `Policy.score` each).
5. Depth 2..D (`rebranch`): inside each vulnerable branch of the previous depth, a node at the
   start of its first flagged line; `k` alternatives sampled from there.

Every phase samples through `sample` (policy: seeded requests, budget-cut text trimmed, empty
and repeated branches dropped) and labels through `label` (oracle, plus tests). Where nodes go is
pure logic in `treeplay.tree.placement`; writing trees to JSONL (resumable) is
`treeplay.tree.writer.build_trees`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from treeplay.oracle.records import TestResult, Verdict
from treeplay.policy.records import Completion, Policy, SampleRequest, Scored, ScoreRequest
from treeplay.tasks.records import Task
from treeplay.tree.config import TreeConfig  # also importable from here, as before
from treeplay.tree.labels import Label, label_branch
from treeplay.tree.offsets import place_offset, prefix_hash
from treeplay.tree.placement import (
    ROOT_ID,
    choose_golden,
    deep_node_prefix,
    fit_branch_budget,
    merge_root,
    next_node_number,
    node_depth,
    rebranch_offset,
    select_within_budget,
)
from treeplay.tree.records import Branch, Node, Tree
from treeplay.tree.strategies import StrategyContext, parse_strategies, propose_nodes

JudgeFn = Callable[[Sequence[tuple[str, str, Task | None]]], list[Verdict]]
TestsFn = Callable[[Task, str], TestResult]
GoldenSource = Literal["task", "self-play", "none"]


def derive_seed(seed: int, *parts: str) -> int:
    """A per-request seed from the run seed and names (task id, node id): stable across runs."""
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _default_judge(items: Sequence[tuple[str, str, Task | None]]) -> list[Verdict]:
    from treeplay.oracle import judge_many  # type: ignore[attr-defined]

    return list(judge_many(items))


def _default_tests(task: Task, code: str, timeout_s: float) -> TestResult:
    from treeplay.oracle.sandbox import run_task_tests  # type: ignore[attr-defined]

    return run_task_tests(task, code, timeout_s=timeout_s)


def _cut_on_sampled_tokens(completion: Completion, text: str) -> Completion | None:
    """`completion` cut to its first `len(text)` characters on its own tokens, or None when no
    sampled token ends there."""
    if len(text) not in completion.token_ends:
        return None
    keep = completion.token_ends.index(len(text)) + 1
    return dataclasses.replace(completion, text=text, token_ids=completion.token_ids[:keep],
                               logprobs=completion.logprobs[:keep], token_ends=completion.token_ends[:keep])  # fmt: skip


@dataclass
class _Pending:
    """A sampled, not yet labelled branch."""

    node_id: str
    prefix: str
    completion: Completion



@dataclass
class _Growth:
    """A tree while its phases grow it (what `build` hands from one phase to the next)."""

    task: Task
    seed: int
    nodes: list[Node] = field(default_factory=list)
    branches: list[Branch] = field(default_factory=list)
    golden_scores: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    duplicates: int = 0  # empty or repeated branches dropped


@dataclass
class TreeBuilder:
    """Builds trees with one policy and the oracle. `judge`/`run_tests` default to the real oracle.

    `build` runs the phases in order: root samples, golden path, trunk nodes (sample + label +
    golden reference scores), then `rebranch` once per depth 2..D. Each phase samples through
    `sample` (policy) and labels through `label` (oracle).
    """

    policy: Policy
    config: TreeConfig = field(default_factory=TreeConfig)
    judge: JudgeFn | None = None
    run_tests: Callable[[Task, str, float], TestResult] | None = None

    # ---- label: the oracle ---------------------------------------------------------------
    def label(self, task: Task, pending: Sequence[_Pending]) -> list[Branch]:
        """Judge every pending branch (static oracle, plus tests when the task has them)."""
        if not pending:
            return []
        judge = self.judge or _default_judge
        programs = [p.prefix + p.completion.text for p in pending]
        verdicts = judge([(code, task.language, task) for code in programs])
        if len(verdicts) != len(programs):
            raise RuntimeError(f"oracle returned {len(verdicts)} verdicts for {len(programs)} programs")
        branches = []
        for item, code, verdict in zip(pending, programs, verdicts, strict=True):
            result = None
            if task.tests and self.config.run_tests and verdict.status != "unparseable":
                result = (self.run_tests or _default_tests)(task, code, self.config.test_timeout_s)
            branches.append(_labelled(item, label_branch(verdict, result, task_cwe=task.primary_cwe)))
        return branches

    # ---- sample: the policy --------------------------------------------------------------
    def sample(
        self, task: Task, targets: Sequence[tuple[str, str, int]], seed: int
    ) -> tuple[list[_Pending], int]:
        """Sample `n` branches for each (node id, code prefix, n); drop empty and repeated ones.

        An empty completion (the model stopped at once) is no decision to learn from; a branch
        identical to an earlier one at the same node adds nothing. Returns the kept branches and
        how many were dropped.
        """
        requests = [
            SampleRequest(
                task=task,
                prefix=prefix,
                n=n,
                params=self.config.params(derive_seed(seed, task.id, node_id)),
                request_id=node_id,
            )
            for node_id, prefix, n in targets
            if n > 0
        ]
        if not requests:
            return [], 0
        completions = self.policy.sample(requests)
        by_request: dict[str, list[Completion]] = {}
        for completion in completions:
            by_request.setdefault(completion.request_id, []).append(completion)
        pending = [
            _Pending(request.request_id, request.prefix, completion)
            for request in requests
            for completion in sorted(by_request.get(request.request_id, []), key=lambda c: c.index)
        ]
        if self.config.trim_truncated:
            pending = self._trim(task, pending)
        unique = dedupe_pending([p for p in pending if p.completion.text.strip()])
        return unique, len(pending) - len(unique)

    def _trim(self, task: Task, pending: list[_Pending]) -> list[_Pending]:
        """Cut budget-stopped completions back to their last complete line.

        A completion stopped mid-expression by `max_new_tokens` is unparseable for reasons that
        say nothing about security. Its text up to the last newline is kept, with the sampled
        tokens up to there when a token ends at the newline (`Completion.token_ends`; all 34 trims
        of benchmarks/tree_trim.py, docs/tree.md), else re-scored by the policy (one forward), so
        token ids and raw log-probs stay aligned with the kept text.
        """
        cuts = [
            (i, p.completion.text[: p.completion.text.rfind("\n") + 1])
            for i, p in enumerate(pending)
            if p.completion.finish_reason == "length" and "\n" in p.completion.text
        ]
        cuts = [(i, text) for i, text in cuts if text.strip() and text != pending[i].completion.text]
        result = list(pending)
        rescore = []
        for i, text in cuts:
            cut = _cut_on_sampled_tokens(pending[i].completion, text)
            if cut is not None:
                result[i] = _Pending(pending[i].node_id, pending[i].prefix, cut)
            else:
                rescore.append((i, text))
        scored = self.score(task, [(pending[i].prefix, text) for i, text in rescore])
        for (i, text), score in zip(rescore, scored, strict=True):
            trimmed = dataclasses.replace(
                pending[i].completion, text=text, token_ids=score.token_ids, logprobs=score.logprobs, token_ends=()
            )
            result[i] = _Pending(pending[i].node_id, pending[i].prefix, trimmed)
        return result

    def score(self, task: Task, items: Sequence[tuple[str, str]]) -> list[Scored]:
        """Score each (code prefix, continuation) with the policy (one batched call)."""
        if not items:
            return []
        requests = [
            ScoreRequest(task=task, prefix=p, continuation=c, request_id=str(i))
            for i, (p, c) in enumerate(items)
        ]
        scored = self.policy.score(requests)
        if len(scored) != len(requests):
            raise RuntimeError(f"policy scored {len(scored)} of {len(requests)} requests")
        return list(scored)

    def _branch_out(self, grow: _Growth, targets: Sequence[tuple[str, str, int]]) -> None:
        """Sample at each (node id, code prefix, n) and add the labelled branches to the tree."""
        pending, dropped = self.sample(grow.task, targets, grow.seed)
        grow.duplicates += dropped
        grow.branches.extend(self.label(grow.task, pending))

    # ---- the tree: phases in order -------------------------------------------------------
    def build(self, task: Task, *, round: int = 0, seed: int = 0) -> Tree:
        """One tree for `task`: the phases in the order of the module docstring."""
        started = time.monotonic()
        grow = _Growth(task, seed)
        self._sample_root(grow)
        golden, golden_source = choose_golden(task, grow.branches)
        if golden_source == "none":
            grow.notes.append("no golden and no secure root sample")
        root_score = self._score_golden_from_root(grow, golden)
        if golden:
            self._grow_trunk(grow, golden, root_score)
        for depth in range(2, self.config.depth + 1):
            if not self.rebranch(grow, depth):
                break
        return self._tree(grow, golden, golden_source, round, time.monotonic() - started)

    def _sample_root(self, grow: _Growth) -> None:
        """Phase 1: root samples from `task.prefix`, labelled, under the `root` node."""
        cfg, task = self.config, grow.task
        root_n = cfg.root_samples if task.golden is not None else max(cfg.root_samples, cfg.k)
        root_n = min(root_n, cfg.max_branches)
        if root_n > 0:
            grow.nodes.append(Node(ROOT_ID, None, None, 0, 0, "root", prefix_hash(task.prefix), depth=1))
            self._branch_out(grow, [(ROOT_ID, task.prefix, root_n)])

    def _score_golden_from_root(self, grow: _Growth, golden: str | None) -> Scored | None:
        """Phase 3: one policy score of the golden completion (token boundaries, entropies)."""
        if golden is None:
            return None
        root_score = self.score(grow.task, [(grow.task.prefix, golden)])[0]
        grow.golden_scores[ROOT_ID] = _score_dict(root_score)
        return root_score

    def _grow_trunk(self, grow: _Growth, golden: str, root_score: Scored | None) -> None:
        """Phase 4: trunk nodes, `k` labelled branches at each, the golden suffix scored after each."""
        task = grow.task
        trunk = self._place_trunk(grow, golden, root_score)
        grow.nodes.extend(trunk)
        self._branch_out(grow, [(n.id, task.prefix + golden[: n.char_offset], self.config.k) for n in trunk])
        scored = self.score(task, [(task.prefix + golden[: n.char_offset], golden[n.char_offset :]) for n in trunk])
        for node, result in zip(trunk, scored, strict=True):
            grow.golden_scores[node.id] = _score_dict(result)

    def _place_trunk(self, grow: _Growth, golden: str, root_score: Scored | None) -> list[Node]:
        """The strategies' nodes on the golden path, within the node and branch budgets."""
        cfg, task = self.config, grow.task
        context = StrategyContext(
            golden_score=root_score,
            root_branches=tuple(b for b in grow.branches if b.node_id == ROOT_ID),
            entropy_top_m=cfg.entropy_top_m,
            entropy_min_spacing=cfg.entropy_min_spacing,
            llm_url=cfg.llm_url,
            llm_model=cfg.llm_model,
            signature_to_body=cfg.signature_to_body,
        )
        proposed = propose_nodes(task, golden, context, parse_strategies(cfg.strategies), snap_line=cfg.snap_line)
        grow.nodes, placed = merge_root(grow.nodes, [p for p in proposed if p.char_offset < len(golden)])
        placed = select_within_budget(placed, cfg.max_nodes - len(grow.nodes))
        trunk = [
            Node(
                f"n{i}", None, None, p.char_offset, p.token_offset, p.strategy,
                prefix_hash(task.prefix + golden[: p.char_offset]), depth=1,
            )
            for i, p in enumerate(placed, start=1)
        ]
        return fit_branch_budget(trunk, cfg.k, cfg.max_branches - len(grow.branches))

    # ---- rebranch: depth 2..D ------------------------------------------------------------
    def rebranch(self, grow: _Growth, depth: int) -> bool:
        """Phase 5: nodes inside the vulnerable branches of depth-1 nodes, `k` labelled branches at
        each. False when no node fits (the deeper levels would have none either)."""
        cfg, task = self.config, grow.task
        parents = [
            (index, b)
            for index, b in enumerate(grow.branches)
            if b.label == "vulnerable" and node_depth(grow.nodes, b.node_id) == depth - 1
        ]
        candidates = self._rebranch_candidates(task, parents, grow.nodes, depth)
        candidates = candidates[: max(0, cfg.max_nodes - len(grow.nodes))]
        candidates = fit_branch_budget(candidates, cfg.k, cfg.max_branches - len(grow.branches))
        if not candidates:
            return False
        grow.nodes.extend(candidates)
        self._branch_out(grow, [(n.id, deep_node_prefix(task, n, grow.branches), cfg.k) for n in candidates])
        return True

    def _rebranch_candidates(
        self, task: Task, parents: Sequence[tuple[int, Branch]], nodes: Sequence[Node], depth: int
    ) -> list[Node]:
        """New nodes at the first flagged line of each vulnerable parent branch (token-snapped)."""
        raw = [(index, b, rebranch_offset(task, b)) for index, b in parents]
        raw = [(index, b, off) for index, b, off in raw if off is not None]
        if not raw:
            return []
        scores = self.score(task, [(b.prefix, b.completion) for _, b, _ in raw])
        next_id = next_node_number(nodes)
        result = []
        seen: set[str] = set()
        for (index, branch, offset), scored in zip(raw, scores, strict=True):
            assert offset is not None
            start = len(branch.prefix) - len(task.prefix)  # parent node's offset in this path
            path = branch.text[len(task.prefix) :]
            boundaries = [start + c for c in scored.char_offsets] if scored.char_offsets else []
            char_offset, token_index = place_offset(path, offset, boundaries, snap_line=False)
            if char_offset <= start:
                continue  # snapping fell back onto the parent node: nothing new to branch on
            digest = prefix_hash(task.prefix + path[:char_offset])
            if digest in seen:
                continue
            seen.add(digest)
            node = Node(f"n{next_id}", branch.node_id, index, char_offset, token_index, "rebranch", digest, depth=depth)
            result.append(node)
            next_id += 1
        return result

    def _tree(
        self, grow: _Growth, golden: str | None, golden_source: GoldenSource, round: int, elapsed_s: float
    ) -> Tree:
        labels = Counter(b.label for b in grow.branches)
        stats = {
            "nodes": len(grow.nodes),
            "branches": len(grow.branches),
            "labels": dict(sorted(labels.items())),
            "dropped_empty_or_duplicate": grow.duplicates,
            "elapsed_s": float(f"{elapsed_s:.3f}"),
            "notes": grow.notes,
        }
        return Tree(
            task_id=grow.task.id,
            golden=golden,
            golden_source=golden_source,
            nodes=tuple(grow.nodes),
            branches=tuple(grow.branches),
            round=round,
            model_id=getattr(self.policy, "model_id", ""),
            config_hash=self.config.hash(),
            golden_scores=grow.golden_scores,
            stats=stats,
            task=grow.task.to_dict(),
        )


def _labelled(item: _Pending, lab: Label) -> Branch:
    return Branch(
        node_id=item.node_id,
        prefix=item.prefix,
        completion=item.completion.text,
        token_ids=tuple(item.completion.token_ids),
        logprobs=tuple(item.completion.logprobs),
        label=lab.label,
        findings=lab.findings,
        cwe=lab.cwe,
        first_flagged_line=lab.first_flagged_line,
        finish_reason=item.completion.finish_reason,
        tests=lab.tests,
    )


def dedupe_pending(pending: Sequence[_Pending]) -> list[_Pending]:
    """Drop branches identical to an earlier one at the same node (first one kept)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in pending:
        key = (item.node_id, item.completion.text)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _score_dict(scored: Scored) -> dict[str, list[Any]]:
    return {"token_ids": list(scored.token_ids), "logprobs": [round(x, 6) for x in scored.logprobs]}
