"""Grow one oracle-labelled tree per task, and stream trees to JSONL (resumable).

Per task:
1. Root samples (`root_samples` of them, from `task.prefix`): labelled, kept as the `root` node's
   branches; they feed the `oracle` strategy, the self-play golden search and the unstructured
   whole-sequence baseline.
2. Golden path: `task.golden`, else the most likely (highest total log-prob) root sample the
   oracle judged secure (and functional where tests exist), else none.
3. One policy scoring of the golden completion from the root gives token boundaries (to snap
   node offsets) and entropies (for the `entropy` strategy).
4. Trunk nodes from the chosen strategies; `k` branches sampled at each, all judged.
5. Depth 2..D: inside each vulnerable branch of the previous depth, a node at the start of its
   first flagged line; `k` alternatives sampled from there.
6. Reference log-probs of the golden suffix after every trunk node (one `Policy.score` each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from treeplay.jsonl import append_jsonl, read_jsonl, repair_truncated_tail
from treeplay.oracle.records import TestResult, Verdict
from treeplay.policy.records import Completion, Policy, SampleRequest, Scored, ScoreRequest
from treeplay.tasks.records import Task
from treeplay.tree.config import TreeConfig  # also importable from here, as before
from treeplay.tree.labels import label_branch
from treeplay.tree.offsets import line_number_start, place_offset, prefix_hash
from treeplay.tree.records import Branch, Node, Tree
from treeplay.tree.strategies import PlacedNode, StrategyContext, parse_strategies, propose_nodes

ROOT_ID = "root"

JudgeFn = Callable[[Sequence[tuple[str, str, Task | None]]], list[Verdict]]
TestsFn = Callable[[Task, str], TestResult]


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


@dataclass
class _Pending:
    """A sampled, not yet labelled branch."""

    node_id: str
    prefix: str
    completion: Completion


@dataclass
class TreeBuilder:
    """Builds trees with one policy and the oracle. `judge`/`run_tests` default to the real oracle."""

    policy: Policy
    config: TreeConfig = field(default_factory=TreeConfig)
    judge: JudgeFn | None = None
    run_tests: Callable[[Task, str, float], TestResult] | None = None

    # ---- oracle -------------------------------------------------------------------------
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
            lab = label_branch(verdict, result, task_cwe=task.primary_cwe)
            branches.append(
                Branch(
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
            )
        return branches

    # ---- policy -------------------------------------------------------------------------
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
        say nothing about security. Its text up to the last newline is re-scored by the policy
        (one forward), so token ids and raw log-probs stay aligned with the kept text.
        """
        cuts = [
            (i, p.completion.text[: p.completion.text.rfind("\n") + 1])
            for i, p in enumerate(pending)
            if p.completion.finish_reason == "length" and "\n" in p.completion.text
        ]
        cuts = [(i, text) for i, text in cuts if text.strip() and text != pending[i].completion.text]
        if not cuts:
            return pending
        scored = self.score(task, [(pending[i].prefix, text) for i, text in cuts])
        result = list(pending)
        for (i, text), score in zip(cuts, scored, strict=True):
            trimmed = dataclasses.replace(
                pending[i].completion, text=text, token_ids=score.token_ids, logprobs=score.logprobs
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

    # ---- the tree -----------------------------------------------------------------------
    def build(self, task: Task, *, round: int = 0, seed: int = 0) -> Tree:
        cfg = self.config
        started = time.monotonic()
        strategies = parse_strategies(cfg.strategies)
        notes: list[str] = []
        nodes: list[Node] = []
        branches: list[Branch] = []
        duplicates = 0

        # 1. root samples
        root_n = cfg.root_samples if task.golden is not None else max(cfg.root_samples, cfg.k)
        root_n = min(root_n, cfg.max_branches)
        if root_n > 0:
            nodes.append(Node(ROOT_ID, None, None, 0, 0, "root", prefix_hash(task.prefix), depth=1))
            pending, dropped = self.sample(task, [(ROOT_ID, task.prefix, root_n)], seed)
            duplicates += dropped
            branches.extend(self.label(task, pending))

        # 2. golden path
        golden, golden_source = choose_golden(task, branches)
        if golden_source == "none":
            notes.append("no golden and no secure root sample")

        # 3. golden scoring from the root
        golden_scores: dict[str, dict[str, list[Any]]] = {}
        root_score: Scored | None = None
        if golden is not None:
            root_score = self.score(task, [(task.prefix, golden)])[0]
            golden_scores[ROOT_ID] = _score_dict(root_score)

        # 4. trunk nodes
        if golden:
            context = StrategyContext(
                golden_score=root_score,
                root_branches=tuple(b for b in branches if b.node_id == ROOT_ID),
                entropy_top_m=cfg.entropy_top_m,
                entropy_min_spacing=cfg.entropy_min_spacing,
                llm_url=cfg.llm_url,
                llm_model=cfg.llm_model,
            )
            placed = [
                p
                for p in propose_nodes(task, golden, context, strategies, snap_line=cfg.snap_line)
                if p.char_offset < len(golden)
            ]
            nodes, placed = _merge_root(nodes, placed)
            placed = select_within_budget(placed, cfg.max_nodes - len(nodes))
            trunk = [
                Node(
                    f"n{i}",
                    None,
                    None,
                    p.char_offset,
                    p.token_offset,
                    p.strategy,
                    prefix_hash(task.prefix + golden[: p.char_offset]),
                    depth=1,
                )
                for i, p in enumerate(placed, start=1)
            ]
            trunk = _fit_branch_budget(trunk, cfg.k, cfg.max_branches - len(branches))
            nodes.extend(trunk)
            targets = [(n.id, task.prefix + golden[: n.char_offset], cfg.k) for n in trunk]
            pending, dropped = self.sample(task, targets, seed)
            duplicates += dropped
            branches.extend(self.label(task, pending))
            # 6. reference log-probs of the golden suffix after each trunk node
            scored = self.score(
                task, [(task.prefix + golden[: n.char_offset], golden[n.char_offset :]) for n in trunk]
            )
            for node, result in zip(trunk, scored, strict=True):
                golden_scores[node.id] = _score_dict(result)

        # 5. deeper nodes inside vulnerable branches
        for depth in range(2, cfg.depth + 1):
            parents = [
                (index, b)
                for index, b in enumerate(branches)
                if b.label == "vulnerable" and _node_depth(nodes, b.node_id) == depth - 1
            ]
            candidates = self._rebranch_candidates(task, parents, nodes, depth)
            room_nodes = cfg.max_nodes - len(nodes)
            candidates = candidates[: max(0, room_nodes)]
            candidates = _fit_branch_budget(candidates, cfg.k, cfg.max_branches - len(branches))
            if not candidates:
                break
            nodes.extend(candidates)
            targets = [(n.id, _node_prefix(task, n, branches), cfg.k) for n in candidates]
            pending, dropped = self.sample(task, targets, seed)
            duplicates += dropped
            branches.extend(self.label(task, pending))

        labels = Counter(b.label for b in branches)
        stats = {
            "nodes": len(nodes),
            "branches": len(branches),
            "labels": dict(sorted(labels.items())),
            "dropped_empty_or_duplicate": duplicates,
            "elapsed_s": float(f"{time.monotonic() - started:.3f}"),
            "notes": notes,
        }
        return Tree(
            task_id=task.id,
            golden=golden,
            golden_source=golden_source,
            nodes=tuple(nodes),
            branches=tuple(branches),
            round=round,
            model_id=getattr(self.policy, "model_id", ""),
            config_hash=cfg.hash(),
            golden_scores=golden_scores,
            stats=stats,
            task=task.to_dict(),
        )

    def _rebranch_candidates(
        self, task: Task, parents: Sequence[tuple[int, Branch]], nodes: Sequence[Node], depth: int
    ) -> list[Node]:
        """New nodes at the first flagged line of each vulnerable parent branch (token-snapped)."""
        raw = [(index, b, rebranch_offset(task, b)) for index, b in parents]
        raw = [(index, b, off) for index, b, off in raw if off is not None]
        if not raw:
            return []
        scores = self.score(task, [(b.prefix, b.completion) for _, b, _ in raw])
        next_id = 1 + max(
            (int(n.id[1:]) for n in nodes if n.id.startswith("n") and n.id[1:].isdigit()), default=0
        )
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
            code_prefix = task.prefix + path[:char_offset]
            digest = prefix_hash(code_prefix)
            if digest in seen:
                continue
            seen.add(digest)
            result.append(
                Node(
                    f"n{next_id}",
                    branch.node_id,
                    index,
                    char_offset,
                    token_index,
                    "rebranch",
                    digest,
                    depth=depth,
                )
            )
            next_id += 1
        return result


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


def rebranch_offset(task: Task, branch: Branch) -> int | None:
    """Offset (into the branch path after task.prefix) of the start of its first flagged line.

    None when the branch is not vulnerable, has no flagged line, or the line starts at or before
    the branch's own node (the mistake is not inside the sampled completion).
    """
    if branch.label != "vulnerable" or branch.first_flagged_line is None:
        return None
    start = line_number_start(branch.text, branch.first_flagged_line)
    if start is None or start <= len(branch.prefix):
        return None
    return start - len(task.prefix)


def choose_golden(
    task: Task, root_branches: Sequence[Branch]
) -> tuple[str | None, Literal["task", "self-play", "none"]]:
    """The task's golden, else the most likely secure (and functional) root sample, else none."""
    if task.golden is not None:
        return task.golden, "task"
    secure = [
        b for b in root_branches if b.node_id == ROOT_ID and b.label == "secure" and b.completion.strip()
    ]
    if not secure:
        return None, "none"
    best = max(secure, key=lambda b: (sum(b.logprobs), -root_branches.index(b)))
    return best.completion, "self-play"


def select_within_budget(placed: Sequence[PlacedNode], room: int) -> list[PlacedNode]:
    """Keep at most `room` nodes: most strategies agreeing first, then earliest; path order out."""
    if room <= 0:
        return []
    ranked = sorted(placed, key=lambda p: (-len(p.strategies), p.char_offset))[:room]
    return sorted(ranked, key=lambda p: p.char_offset)


def _merge_root(nodes: list[Node], placed: list[PlacedNode]) -> tuple[list[Node], list[PlacedNode]]:
    """A proposal at offset 0 is the root node itself: fold its strategy names into the root."""
    if not nodes or nodes[0].id != ROOT_ID:
        return nodes, placed
    at_root = [p for p in placed if p.char_offset == 0]
    if not at_root:
        return nodes, placed
    names = ["root", *[s for p in at_root for s in p.strategies]]
    root = dataclasses.replace(nodes[0], strategy="+".join(dict.fromkeys(names)))
    return [root, *nodes[1:]], [p for p in placed if p.char_offset != 0]


def _fit_branch_budget(nodes: list[Node], k: int, room: int) -> list[Node]:
    return nodes[: max(0, room // k)]


def _node_depth(nodes: Sequence[Node], node_id: str) -> int:
    for node in nodes:
        if node.id == node_id:
            return node.depth
    raise KeyError(node_id)


def _node_prefix(task: Task, node: Node, branches: Sequence[Branch]) -> str:
    """The code prefix a deeper node's branches continue: its parent branch cut at the node."""
    assert node.branch_of_parent is not None
    parent = branches[node.branch_of_parent]
    return task.prefix + parent.text[len(task.prefix) :][: node.char_offset]


def _score_dict(scored: Scored) -> dict[str, list[Any]]:
    return {"token_ids": list(scored.token_ids), "logprobs": [round(x, 6) for x in scored.logprobs]}


def node_prefix(task: Task, tree: Tree, node: Node) -> str:
    """The code prefix (task.prefix + path up to the node) that a node's branches continue."""
    if node.parent is None:
        return task.prefix + (tree.golden or "")[: node.char_offset]
    return _node_prefix(task, node, tree.branches)


# ---- streaming many trees --------------------------------------------------------------------


@dataclass
class BuildSummary:
    built: int = 0
    skipped: int = 0
    repaired_tail: bool = False
    elapsed_s: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)


def done_task_ids(out_path: Path | str, config_hash: str | None = None) -> set[str]:
    """Task ids already in `out_path` (a truncated last line is ignored).

    With `config_hash`, a tree built with other settings is an error (mixing configs in one file
    would silently change what the file means).
    """
    path = Path(out_path)
    if not path.exists():
        return set()
    done = set()
    for number, record in enumerate(read_jsonl(path, tolerate_truncated_tail=True), start=1):
        if config_hash is not None and record.get("config_hash") != config_hash:
            raise ValueError(
                f"{path}: tree {number} ({record.get('task_id')}) was built with config {record.get('config_hash')}, "
                f"not {config_hash}; use another --out or the same settings"
            )
        done.add(str(record["task_id"]))
    return done


def build_trees(
    tasks: Sequence[Task],
    policy: Policy,
    *,
    config: TreeConfig | None = None,
    out_path: Path | str,
    round: int = 0,
    seed: int = 0,
    progress: bool = True,
    judge: JudgeFn | None = None,
) -> BuildSummary:
    """Build a tree per task and append each as one JSON line as soon as it is done.

    Resumable: tasks whose tree is already in `out_path` are skipped and a truncated last line
    (left by a kill) is cut first, so a resumed run never duplicates a tree.
    """
    config = config or TreeConfig()
    started = time.monotonic()
    summary = BuildSummary(repaired_tail=repair_truncated_tail(out_path))
    done = done_task_ids(out_path, config.hash())
    todo = [t for t in tasks if t.id not in done]
    summary.skipped = len(tasks) - len(todo)
    builder = TreeBuilder(policy, config, judge=judge)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]trees[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        disable=not progress,
    ) as bar:
        handle = bar.add_task("", total=len(tasks), completed=summary.skipped)
        for task in todo:
            bar.update(handle, description=task.id)
            tree = builder.build(task, round=round, seed=seed)
            append_jsonl(out_path, [tree])
            summary.built += 1
            summary.labels.update(b.label for b in tree.branches)
            bar.advance(handle)
    summary.elapsed_s = time.monotonic() - started
    return summary
