"""The three kinds of stage `treeplay run` is made of, with what each one does and hashes.

- eval: sample a model on one bench and judge it (`treeplay.eval.evaluate`);
- data: build the round's trees with the opponent model and turn them into pairs (TSP and
  self-play), or take the golden paths (SFT); an arm whose data inputs equal an earlier arm's
  (e.g. round 1 of an ablation that differs only in the loss) copies that arm's trees and pairs;
- train: train the round's model from the pairs (`treeplay.train.trainer`); an arm whose train
  inputs equal an earlier arm's (round 1 of a variant that differs only in its number of rounds)
  copies that arm's trained model instead of training it again.

Each stage's inputs hash (`digest`) is part of the on-disk contract: the arguments below must not
change, or every existing run dir would be redone. Algorithm 1 (which stage follows which) is in
`treeplay.pipeline`; the stage machinery in `treeplay.stages`; the directories in
`treeplay.run_layout`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from treeplay.jsonl import write_jsonl
from treeplay.run_bundle import MODEL_DIR
from treeplay.run_layout import RunLayout
from treeplay.stages import INPUTS_FILE, STAGE_FILE, Stage, StageError, digest, progress_bar, read_record
from treeplay.tasks import Task
from treeplay.tree import Pair

if TYPE_CHECKING:
    from treeplay.pipeline import Arm, RunConfig

_HEADLINE = ("spr@1", "strict_spr@1", "unparseable", "pass@1", "func-sec@1", "func@1", "generations")


def oracle_fingerprint() -> str:
    """The oracle policy (rules, settings, analyzers and versions) in the data and eval stage digests."""
    from treeplay.oracle import default_oracle

    return str(default_oracle().fingerprint())


class StageBuilder:
    """Builds the stages of one run; holds what they share (the loaded policy, the training tasks)."""

    def __init__(self, config: RunConfig, layout: RunLayout, train_tasks: Sequence[Task], *, data_root: Path,
                 console: Console, fingerprint: str | None = None) -> None:  # fmt: skip
        self.config = config
        self.layout = layout
        self.set_train_tasks(train_tasks)
        self.data_root = data_root
        self.console = console
        self.fingerprint = fingerprint  # None: the installed oracle's, computed for every stage
        self.data_done: dict[str, Path] = {}  # data-stage inputs hash -> directory (shared across arms)
        self.trees_done: dict[str, Path] = {}  # tree inputs hash -> data directory whose trees others reuse
        self.train_done: dict[str, Path] = {}  # train-stage inputs hash -> directory (shared across arms)
        self._policy_cache: tuple[str, Any] | None = None

    def set_train_tasks(self, tasks: Sequence[Task]) -> None:
        self.train_tasks = list(tasks)
        self.tasks_by_id = {t.id: t for t in self.train_tasks}

    def oracle(self) -> str:
        """The oracle fingerprint in the data and eval stages' hashes (and in their records)."""
        return self.fingerprint if self.fingerprint is not None else oracle_fingerprint()

    # -- models ------------------------------------------------------------------------------
    def policy(self, model: str) -> Any:
        """The policy for `model` (base id or a trained model dir), loaded once while it is in use."""
        if self._policy_cache and self._policy_cache[0] == model:
            return self._policy_cache[1]
        self._policy_cache = None
        policy = self.config.policy_config(model).load()
        self._policy_cache = (model, policy)
        return policy

    def drop_policy(self) -> None:
        self._policy_cache = None

    # -- eval --------------------------------------------------------------------------------
    def eval_stages(
        self, seed: int, arm: str, model: str, model_hash: str, benches: Sequence[str] | None = None
    ) -> list[Stage]:
        section = self.config.eval
        stages = []
        for bench in benches if benches is not None else section.benches:
            limit = section.limits.get(bench, section.limit)
            # what this bench's generations depend on: not the other benches, limits or batching
            inputs = digest("eval", bench, limit, section.sampling_inputs(bench), model_hash,
                            seed, self.oracle())  # fmt: skip
            stages.append(self._eval_stage(seed, arm, bench, limit, model, inputs))
        return stages

    def _eval_stage(self, seed: int, arm: str, bench: str, limit: int | None, model: str, inputs: str) -> Stage:
        directory = self.layout.eval_dir(seed, arm, bench)
        section = self.config.eval

        def run() -> dict[str, Any]:
            from treeplay.eval import resolve_bench
            from treeplay.eval.evaluate import (
                evaluate,  # the function: `treeplay.eval.evaluate` is also the module
            )

            tasks = resolve_bench(bench, self.data_root, limit=limit)
            policy = self.policy(model)
            with progress_bar(f"eval {bench}", self.console) as advance:
                metrics = evaluate(policy, tasks, bench=bench, config=section.stage_config(bench), out_dir=directory,
                                   seed=seed, progress=advance)  # fmt: skip
            return {"tasks": len(tasks), "metrics_file": str(directory / "metrics.json"), "summary": _headline(metrics),
                    "oracle": self.oracle()}  # fmt: skip

        return Stage(f"seed {seed} / {arm} / eval {bench}", directory, inputs, run, kind="eval", arm=arm, seed=seed,
                     bench=bench)  # fmt: skip

    # -- data --------------------------------------------------------------------------------
    def data_stage(self, seed: int, arm: Arm, round_: int, opponent: str, opponent_hash: str) -> Stage:
        directory = self.layout.round_dir(seed, arm.name, round_, "data")
        tree_cfg = self.tree_config(arm)
        inputs = digest(
            "data", arm.method, round_, opponent_hash, seed, dataclasses.asdict(tree_cfg), arm.pair_mode,
            self.config.unparseable_pairs, [t.id for t in self.train_tasks], self.oracle(),
        )
        self.data_done.setdefault(inputs, directory)  # a later arm with the same inputs copies this one
        # what the trees depend on (the pair mode does not enter a tree): an arm that differs only in
        # pair mode starts from the finished trees of the first such arm (its builder's resume file)
        trees_key = digest("trees", arm.method, round_, opponent_hash, seed, dataclasses.asdict(tree_cfg),
                           [t.id for t in self.train_tasks], self.oracle())  # fmt: skip
        self.trees_done.setdefault(trees_key, directory)

        def run() -> dict[str, Any]:
            shared = self.data_done.get(inputs)
            if shared is not None and shared != directory:  # same trees as another arm (e.g. round 1 of an ablation)
                record = _copy_data(shared, directory)
                if arm.method != "sft" and (directory / "trees.jsonl").is_file():
                    # paired again from the copied trees, so the pairs carry this code's fields (finish reasons)
                    _, pairs = self._pair_trees(arm, directory / "trees.jsonl", directory / "pairs.jsonl")
                    record = {**record, "pairs": len(pairs),
                              "pairs_by_mode": dict(sorted(Counter(p.mode for p in pairs).items()))}  # fmt: skip
                return record
            if arm.method == "sft":
                pairs = sft_pairs(self.train_tasks)
                write_jsonl(directory / "pairs.jsonl", pairs)
                return {"pairs": len(pairs), "pairs_file": str(directory / "pairs.jsonl"), "oracle": self.oracle()}
            reused = _reuse_trees(self.trees_done.get(trees_key), directory)
            record = self._build_tree_data(seed, arm, round_, opponent, tree_cfg, directory)
            return {**record, **({"trees_from": str(reused)} if reused else {}), "oracle": self.oracle()}

        return Stage(f"seed {seed} / {arm.name} / round {round_} / data", directory, inputs, run, kind="data",
                     arm=arm.name, seed=seed, samples_key=None if arm.method == "sft" else trees_key)  # fmt: skip

    def _build_tree_data(self, seed: int, arm: Arm, round_: int, opponent: str, tree_cfg: Any,
                         directory: Path) -> dict[str, Any]:  # fmt: skip
        from treeplay.tree import build_trees

        trees_path, pairs_path = directory / "trees.jsonl", directory / "pairs.jsonl"
        summary = build_trees(self.train_tasks, self.policy(opponent), config=tree_cfg, out_path=trees_path,
                              round=round_, seed=seed * 1000 + round_)  # fmt: skip
        trees, pairs = self._pair_trees(arm, trees_path, pairs_path)
        labels = Counter(branch.label for tree in trees for branch in tree.branches)
        return {
            "trees": len(trees),
            "built_now": summary.built,
            "branches": dict(labels),
            "pairs": len(pairs),
            "pairs_by_mode": dict(sorted(Counter(p.mode for p in pairs).items())),
            "pairs_file": str(pairs_path),
        }

    def _pair_trees(self, arm: Arm, trees_path: Path, pairs_path: Path) -> tuple[list[Any], list[Pair]]:
        """The arm's pairs of the trees in `trees_path`, written to `pairs_path`."""
        from treeplay.tree import pairs_for_trees, read_trees

        trees = read_trees(trees_path)
        mode = "whole-sequence" if arm.method == "selfplay" else arm.pair_mode
        pairs, missing = pairs_for_trees(trees, self.tasks_by_id, mode, include_unparseable=self.config.unparseable_pairs)
        if missing:
            raise RuntimeError(f"{trees_path}: trees for unknown tasks {missing[:3]}")
        write_jsonl(pairs_path, pairs)
        return trees, pairs

    def tree_config(self, arm: Arm) -> Any:
        return self.config.arm_tree_config(arm)

    # -- train -------------------------------------------------------------------------------
    def train_stage(self, seed: int, arm: Arm, round_: int, model_in: str, model_hash: str, data: Stage) -> Stage:
        from treeplay.train import TrainConfig

        directory = self.layout.round_dir(seed, arm.name, round_, "train")
        # With LoRA the next round loads this round's adapter on top of its own base (a chain of
        # adapters, see treeplay.policy.models.model_chain): llama.cpp applies them unmerged.
        options = {**arm.train, "method": arm.method, "seed": seed}
        train_cfg = TrainConfig.from_dict(options, source=f"train ({arm.name})")
        inputs = digest("train", arm.method, round_, model_hash, data.inputs_hash, train_cfg.hashed_dict())
        where = f"seed {seed} / {arm.name} / round {round_}"
        self.train_done.setdefault(inputs, directory)  # a later arm with the same inputs copies this one

        def run() -> dict[str, Any]:
            from treeplay.train import train
            from treeplay.train.data import read_pairs

            shared = self.train_done.get(inputs)
            record = read_record(shared / STAGE_FILE) if shared is not None and shared != directory else None
            if shared is not None and record is not None and record.get("inputs_hash") == inputs:
                return _copy_trained(shared, directory, record)
            pairs = read_pairs(data.directory / "pairs.jsonl")
            if not pairs:
                return self._untrained(f"{where}: 0 training pairs (see {data.directory / STAGE_FILE})", model_in)
            self.drop_policy()  # free the sampling model while training
            result = train(train_cfg, pairs, model_in, directory, resume=True)
            if result.steps == 0:
                return self._untrained(f"{where}: 0 optimizer steps from {len(pairs)} pairs", model_in)
            return {
                "final_model_dir": result.final_model_dir,
                "adapter": result.adapter,
                "steps": result.steps,
                "tokens": result.tokens_seen,
                "pairs": result.pairs_used,
                "final_metrics": result.final_metrics,
            }

        placeholder = {"final_model_dir": f"<model of {where}, not trained yet>"}
        return Stage(f"{where} / train", directory, inputs, run, kind="train", arm=arm.name, seed=seed,
                     placeholder=placeholder)  # fmt: skip

    def _untrained(self, why: str, model_in: str) -> dict[str, Any]:
        """Zero pairs or zero steps: fail the stage, or (allow_untrained) record the method as untrained."""
        if not self.config.allow_untrained:
            raise StageError(f"{why}: the method would be evaluated as the untrained model under its own "
                             "name; fix the data settings or set `allow_untrained: true` to report it as untrained")
        return {"untrained": why, "final_model_dir": model_in, "steps": 0, "tokens": 0}


def _reuse_trees(shared: Path | None, directory: Path) -> Path | None:
    """Start `directory`'s tree builder from the trees of another arm's finished data stage (same tree
    inputs): they become its resume file, so no tree is sampled again and both arms train on the same
    trees. Not when this stage already has trees of its own (its own resume file) or `shared` is not done."""
    if shared is None or shared == directory or (directory / "trees.jsonl").exists():
        return None
    if not (shared / STAGE_FILE).is_file() or not (shared / "trees.jsonl").is_file():
        return None
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / "trees.jsonl.copying"  # a kill mid-copy leaves no torn resume file
    shutil.copyfile(shared / "trees.jsonl", partial)
    partial.replace(directory / "trees.jsonl")
    return shared


_NOT_COPIED = (STAGE_FILE, INPUTS_FILE, "checkpoints")  # run_stage writes the first two; resume state


def _copy_trained(shared: Path, directory: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Another arm's finished train stage with the same inputs: its trained model, logs and record,
    with the paths under the other arm's directory in its JSON files moved to this arm's (the next
    round and the evaluations load this arm's copy, and a copied round 2 names this arm's round 1).
    Copied beside `directory` and renamed into place, so a kill mid-copy leaves no model that looks
    complete; leftovers of this stage's own unfinished training (same inputs) are replaced."""
    from treeplay.run_reuse import rewrite_paths

    staging = directory.with_name(directory.name + ".copying")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(shared, staging, symlinks=True, ignore=lambda _, names: [n for n in names if n in _NOT_COPIED])
    for path in staging.rglob("*.json"):
        rewrite_paths(path, _arm_dir(shared), _arm_dir(directory))
    for name in _NOT_COPIED:  # what run_stage wrote for this stage before calling it
        if (directory / name).is_file():
            shutil.copyfile(directory / name, staging / name)
    shutil.rmtree(directory)
    staging.rename(directory)
    record = {k: v for k, v in record.items() if k not in ("inputs_hash", "wall_s", "reused_from")}
    if "untrained" not in record:
        record["final_model_dir"] = str(directory / MODEL_DIR)
    return {**record, "copied_from": str(shared)}


def _arm_dir(stage_dir: Path) -> Path:
    return stage_dir.parent.parent  # <seed>/<arm>/round-R/train


def _copy_data(shared: Path, directory: Path) -> dict[str, Any]:
    """Another arm's finished data stage with the same inputs: its trees, pairs and record."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("trees.jsonl", "pairs.jsonl"):
        if (shared / name).is_file():
            shutil.copyfile(shared / name, directory / name)
    record = json.loads((shared / STAGE_FILE).read_text(encoding="utf-8"))
    record = {k: v for k, v in record.items() if k not in ("inputs_hash", "wall_s", "rekeyed")}
    return {**record, "pairs_file": str(directory / "pairs.jsonl"), "copied_from": str(shared)}


def sft_pairs(tasks: Sequence[Task]) -> list[Pair]:
    """SFT examples (golden continuations) for tasks that have a golden path."""
    return [
        Pair(task_id=t.id, node_id="root", mode="sft", language=t.language, cwe=t.primary_cwe,
             instruction=t.instruction, prefix=t.prefix, chosen=t.golden, rejected="",
             chosen_finish_reason="stop")  # the task's golden function ends there
        for t in tasks
        if t.golden is not None
    ]


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    summary = {}
    for key in _HEADLINE:
        value = metrics.get(key)
        if isinstance(value, dict):
            value = value.get("value", value.get("mean"))
        if value is not None:
            summary[key] = value
    return summary
