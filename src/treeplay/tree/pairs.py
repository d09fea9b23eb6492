"""Training examples from labelled trees: node-level pairs, whole-sequence pairs, SFT examples.

Every pair's `prefix` is the shared code prefix (task.prefix + path up to the node); `chosen` and
`rejected` continue it. Reference log-probs come from the recorded tree: sampled branches carry
the opponent's per-token log-probs, golden suffixes carry `Tree.golden_scores[node id]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from treeplay.tasks.records import Task
from treeplay.tree.placement import ROOT_ID, node_prefix
from treeplay.tree.records import Branch, Node, Pair, Tree

PairMode = Literal["golden-vs-branch", "sibling", "both", "golden-vs-unparseable"]
PAIR_MODES: tuple[str, ...] = ("golden-vs-branch", "sibling", "both", "golden-vs-unparseable")


def _check(tree: Tree, task: Task) -> None:
    if tree.task_id != task.id:
        raise ValueError(f"tree of task {tree.task_id!r} paired with task {task.id!r}")


def _golden_ref(tree: Tree, node_id: str) -> tuple[tuple[int, ...] | None, tuple[float, ...] | None]:
    scores = tree.golden_scores.get(node_id)
    if not scores:
        return None, None
    return tuple(int(t) for t in scores["token_ids"]), tuple(float(x) for x in scores["logprobs"])


def _pair(
    tree: Tree,
    task: Task,
    node_id: str,
    mode: Literal["golden-vs-branch", "golden-vs-unparseable", "sibling", "whole-sequence", "sft"],
    prefix: str,
    chosen: str,
    chosen_ref: tuple[tuple[int, ...] | None, tuple[float, ...] | None],
    rejected: Branch | None,
    chosen_branch: Branch | None = None,
) -> Pair:
    """`chosen_branch`: the branch the chosen side is (sibling, whole-sequence); None: the golden."""
    if chosen_branch is not None:
        chosen_finish: str | None = chosen_branch.finish_reason
    else:  # the task's golden code ends where the function does; a self-found golden is not known to
        chosen_finish = "stop" if tree.golden_source == "task" else None
    return Pair(
        task_id=task.id,
        node_id=node_id,
        mode=mode,
        language=task.language,
        cwe=(rejected.cwe if rejected is not None and rejected.cwe else task.primary_cwe),
        instruction=task.instruction,
        prefix=prefix,
        chosen=chosen,
        rejected=rejected.completion if rejected is not None else "",
        chosen_token_ids=chosen_ref[0],
        chosen_ref_logprobs=chosen_ref[1],
        rejected_token_ids=rejected.token_ids if rejected is not None else None,
        rejected_ref_logprobs=rejected.logprobs if rejected is not None else None,
        reference_model=tree.model_id or None,
        round=tree.round,
        chosen_finish_reason=chosen_finish,
        rejected_finish_reason=rejected.finish_reason if rejected is not None else None,
    )


def _branches_at(tree: Tree, node_id: str) -> list[Branch]:
    return [b for b in tree.branches if b.node_id == node_id]


def is_golden_reject(branch: Branch) -> bool:
    """A branch the golden path is preferred over in `golden-vs-branch`: oracle-verified vulnerable."""
    return branch.label == "vulnerable"


def is_unparseable_reject(branch: Branch) -> bool:
    """A reject for the opt-in `golden-vs-unparseable` kind: an unparseable branch the model finished.

    Unparseable is not "verified vulnerable"; a branch cut by the token budget
    (`finish_reason == "length"`) is not even a verified mistake, so it is never used.
    """
    return branch.label == "unparseable" and branch.finish_reason != "length"


def golden_vs_branch_pairs(tree: Tree, task: Task, *, include_root: bool = False,
                           kind: Literal["golden-vs-branch", "golden-vs-unparseable"] = "golden-vs-branch"
                           ) -> list[Pair]:
    """Golden suffix (chosen) vs each verified-vulnerable branch (or, for the `golden-vs-unparseable`
    kind, each finished unparseable branch) at every trunk node.

    The plain `root` node (root samples only) belongs to the whole-sequence baseline and is left
    out unless `include_root`; a root node that a strategy also proposed (`root+diff`) is kept.
    """
    _check(tree, task)
    if tree.golden is None:
        return []
    accept = is_golden_reject if kind == "golden-vs-branch" else is_unparseable_reject
    result = []
    for node in tree.nodes:
        if node.parent is not None or (node.strategy == "root" and not include_root):
            continue
        prefix = node_prefix(task, tree, node)
        chosen = tree.golden[node.char_offset :]
        ref = _golden_ref(tree, node.id)
        for branch in _branches_at(tree, node.id):
            if accept(branch) and branch.completion != chosen:
                result.append(_pair(tree, task, node.id, kind, prefix, chosen, ref, branch))
    return result


def sibling_pairs(tree: Tree, task: Task, *, include_root: bool = False) -> list[Pair]:
    """Secure branch (chosen) vs vulnerable branch (rejected) sampled at the same node (any depth)."""
    _check(tree, task)
    result = []
    for node in tree.nodes:
        if node.strategy == "root" and not include_root:
            continue
        result.extend(_siblings(tree, task, node, "sibling"))
    return result


def _siblings(tree: Tree, task: Task, node: Node, mode: Literal["sibling", "whole-sequence"]) -> list[Pair]:
    here = _branches_at(tree, node.id)
    secure = [b for b in here if b.label == "secure"]
    vulnerable = [b for b in here if b.label == "vulnerable"]
    if not secure or not vulnerable:
        return []
    prefix = node_prefix(task, tree, node)
    return [
        _pair(tree, task, node.id, mode, prefix, s.completion, (s.token_ids, s.logprobs), v, chosen_branch=s)
        for s in secure
        for v in vulnerable
    ]


def pairs(tree: Tree, task: Task, mode: PairMode | str = "both", *, include_root: bool = False,
          include_unparseable: bool = False) -> list[Pair]:
    """Node-level preference pairs of one tree: `golden-vs-branch`, `sibling`, `both`, or
    `golden-vs-unparseable` alone. `include_unparseable` adds the `golden-vs-unparseable` kind
    (opt-in, counted separately) to the golden-vs-branch / both modes."""
    if mode not in PAIR_MODES:
        raise ValueError(f"unknown pair mode {mode!r}; choose from {', '.join(PAIR_MODES)}")
    result: list[Pair] = []
    if mode in ("golden-vs-branch", "both"):
        result.extend(golden_vs_branch_pairs(tree, task, include_root=include_root))
    if mode == "golden-vs-unparseable" or (include_unparseable and mode in ("golden-vs-branch", "both")):
        result.extend(golden_vs_branch_pairs(tree, task, include_root=include_root, kind="golden-vs-unparseable"))
    if mode in ("sibling", "both"):
        result.extend(sibling_pairs(tree, task, include_root=include_root))
    return _dedupe(result)


def whole_sequence_pairs(tree: Tree, task: Task) -> list[Pair]:
    """The unstructured self-play baseline: root samples only, same oracle labels.

    Secure vs vulnerable root samples, plus the golden (when the task has one) vs each vulnerable
    root sample. All pairs share `prefix = task.prefix` and `node_id = "root"`.
    """
    _check(tree, task)
    root = next((n for n in tree.nodes if n.id == ROOT_ID), None)
    if root is None:
        return []
    result = _siblings(tree, task, root, "whole-sequence")
    if tree.golden is not None and tree.golden_source == "task":
        ref = _golden_ref(tree, ROOT_ID)
        for branch in _branches_at(tree, ROOT_ID):
            if branch.label == "vulnerable" and branch.completion != tree.golden:
                result.append(
                    _pair(tree, task, ROOT_ID, "whole-sequence", task.prefix, tree.golden, ref, branch)
                )
    return _dedupe(result)


def sft_examples(tree: Tree, task: Task) -> list[Pair]:
    """Plain SFT on the golden path (`Pair(mode="sft")`, `rejected=""`); none without a golden."""
    _check(tree, task)
    if tree.golden is None:
        return []
    return [_pair(tree, task, ROOT_ID, "sft", task.prefix, tree.golden, _golden_ref(tree, ROOT_ID), None)]


def _dedupe(items: Iterable[Pair]) -> list[Pair]:
    seen: set[tuple[str, str, str]] = set()
    result = []
    for pair in items:
        key = (pair.prefix, pair.chosen, pair.rejected)
        if key not in seen:
            seen.add(key)
            result.append(pair)
    return result


def pairs_for_trees(
    trees: Iterable[Tree], tasks_by_id: dict[str, Task], mode: str, *, include_unparseable: bool = False
) -> tuple[list[Pair], list[str]]:
    """Pairs of many trees; mode is a node-level mode, `whole-sequence` or `sft`.

    Returns (pairs, task ids of trees whose task was not found).
    """
    result: list[Pair] = []
    missing: list[str] = []
    for tree in trees:
        task = tasks_by_id.get(tree.task_id)
        if task is None:
            missing.append(tree.task_id)
            continue
        if mode == "whole-sequence":
            result.extend(whole_sequence_pairs(tree, task))
        elif mode == "sft":
            result.extend(sft_examples(tree, task))
        else:
            result.extend(pairs(tree, task, mode, include_unparseable=include_unparseable))
    return result, missing


def count_by_mode(trees: Sequence[Tree], tasks_by_id: dict[str, Task]) -> dict[str, int]:
    counts = {}
    for mode in ("golden-vs-branch", "golden-vs-unparseable", "sibling", "both", "whole-sequence", "sft"):
        counts[mode] = len(pairs_for_trees(trees, tasks_by_id, mode)[0])
    return counts
