"""`treeplay run CONFIG`: Algorithm 1 with its baselines, from one YAML file.

load tasks -> base eval -> for each method (sft, selfplay, tsp) and round t = 1..T:
build data with the round's opponent (the model of round t-1) -> train -> next round; then eval
the final model. Every stage writes to its own directory of the run dir with a `stage.json`
recording the hash of its inputs; on rerun a stage whose `stage.json` matches is skipped, a stage
without it resumes (trees, evaluations and training are resumable themselves), and a stage whose
inputs changed is redone from scratch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from treeplay.jsonl import read_jsonl, write_jsonl
from treeplay.run_config import (  # noqa: F401  (re-exported: `from treeplay.pipeline import load_config`)
    METHOD_ORDER,
    Arm,
    ConfigError,
    EvalSection,
    RunConfig,
    SelfplaySection,
    TaskSource,
    VariantSection,
    _check_sections,
    data_root,
    load_config,
    load_train_tasks,
    resolve_data_path,
    round_robin_by_cwe,
)
from treeplay.tasks import Task, TaskFormatError
from treeplay.tree.records import Pair

STAGE_FILE = "stage.json"


class StageError(RuntimeError):
    """A stage that ended without producing what the next stage needs (e.g. zero training pairs)."""


def digest(*parts: Any) -> str:
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Stage:
    """One unit of pipeline work with its own directory and an input hash."""

    name: str  # human label, e.g. "seed 0 / tsp / round 1 / trees"
    directory: Path
    inputs_hash: str
    run: Callable[[], dict[str, Any]]  # does the work (resumably); returns what to record

    def done_record(self) -> dict[str, Any] | None:
        path = self.directory / STAGE_FILE
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None
        return record if record.get("inputs_hash") == self.inputs_hash else None


def _clear_if_stale(stage: Stage) -> None:
    """A stage dir built from other inputs is removed, so no stale file is mistaken for progress."""
    marker = stage.directory / STAGE_FILE
    if marker.exists():
        shutil.rmtree(stage.directory)
        return
    inputs = stage.directory / "inputs.json"
    if inputs.exists():
        previous = json.loads(inputs.read_text(encoding="utf-8")).get("inputs_hash")
        if previous != stage.inputs_hash:
            shutil.rmtree(stage.directory)


def run_stage(stage: Stage) -> dict[str, Any]:
    record = stage.done_record()
    if record is not None:
        return record
    _clear_if_stale(stage)
    stage.directory.mkdir(parents=True, exist_ok=True)
    (stage.directory / "inputs.json").write_text(json.dumps({"inputs_hash": stage.inputs_hash}), encoding="utf-8")
    started = time.monotonic()
    result = stage.run()
    record = {"inputs_hash": stage.inputs_hash, "wall_s": round(time.monotonic() - started, 2), **result}
    tmp = stage.directory / (STAGE_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, stage.directory / STAGE_FILE)
    return record


# ---- the pipeline ---------------------------------------------------------------------------


class Pipeline:
    """Runs one config into one run dir. Methods build the stage list; `run` executes it."""

    def __init__(self, config: RunConfig, run_dir: Path, *, console: Console | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.console = console or Console(stderr=True)
        self._policy_cache: tuple[str, Any] | None = None
        self.train_tasks: list[Task] = []
        self.tasks_by_id: dict[str, Task] = {}
        self._data_done: dict[str, Path] = {}  # data-stage inputs hash -> directory (shared across arms)

    # -- models ------------------------------------------------------------------------------
    def policy(self, model: str) -> Any:
        """The policy for `model` (base id or a trained model dir), loaded once while it is in use."""
        if self._policy_cache and self._policy_cache[0] == model:
            return self._policy_cache[1]
        from treeplay.policy import load_policy

        self._policy_cache = None
        kwargs: dict[str, Any] = {"device": self.config.device, "threads": self.config.threads}
        policy = load_policy(model, backend=self.config.backend, **kwargs)
        self._policy_cache = (model, policy)
        return policy

    def drop_policy(self) -> None:
        self._policy_cache = None

    # -- stages ------------------------------------------------------------------------------
    def eval_stages(
        self, seed: int, method: str, model: str, model_hash: str, benches: Sequence[str] | None = None
    ) -> list[Stage]:
        from treeplay.eval.evaluate import bench_slug, resolve_bench

        stages = []
        section = self.config.eval
        for bench in benches if benches is not None else section.benches:
            limit = section.limits.get(bench, section.limit)
            directory = self.run_dir / f"seed-{seed}" / method / "eval" / bench_slug(bench)
            # what this bench's generations depend on: not the other benches, limits or batching
            inputs = digest("eval", bench, limit, section.model_dump(exclude={"batch_tasks", "limits", "limit", "benches"}), model_hash,
                            seed, oracle_fingerprint())

            def run(bench: str = bench, limit: int | None = limit, directory: Path = directory) -> dict[str, Any]:
                from treeplay.eval.evaluate import evaluate

                tasks = resolve_bench(bench, data_root(self.config), limit=limit)
                policy = self.policy(model)
                with _progress_bar(f"eval {bench}", self.console) as advance:
                    metrics = evaluate(
                        policy,
                        tasks,
                        bench=bench,
                        n=section.n,
                        temperature=section.temperature,
                        top_p=section.top_p,
                        max_new_tokens=section.max_new_tokens,
                        out_dir=directory,
                        seed=seed,
                        batch_tasks=section.batch_tasks,
                        progress=advance,
                    )
                return {"tasks": len(tasks), "metrics_file": str(directory / "metrics.json"), "summary": _headline(metrics)}

            stages.append(Stage(f"seed {seed} / {method} / eval {bench}", directory, inputs, run))
        return stages

    def data_stage(self, seed: int, arm: Arm, round_: int, opponent: str, opponent_hash: str) -> Stage:
        method = arm.method
        directory = self.run_dir / f"seed-{seed}" / arm.name / f"round-{round_}" / "data"
        tree_cfg = self._tree_config(arm)
        inputs = digest(
            "data", method, round_, opponent_hash, seed, dataclasses.asdict(tree_cfg), arm.pair_mode,
            self.config.unparseable_pairs, [t.id for t in self.train_tasks], oracle_fingerprint(),
        )

        def run() -> dict[str, Any]:
            pairs_path = directory / "pairs.jsonl"
            shared = self._data_done.get(inputs)
            if shared is not None and shared != directory:  # same trees as another arm (e.g. round 1 of an ablation)
                directory.mkdir(parents=True, exist_ok=True)
                for name in ("trees.jsonl", "pairs.jsonl"):
                    if (shared / name).is_file():
                        shutil.copyfile(shared / name, directory / name)
                record = json.loads((shared / STAGE_FILE).read_text(encoding="utf-8"))
                record = {k: v for k, v in record.items() if k not in ("inputs_hash", "wall_s")}
                return {**record, "pairs_file": str(pairs_path), "copied_from": str(shared)}
            if method == "sft":
                pairs = sft_pairs(self.train_tasks)
                write_jsonl(pairs_path, pairs)
                return {"pairs": len(pairs), "pairs_file": str(pairs_path)}
            from treeplay.tree.builder import build_trees
            from treeplay.tree.pairs import pairs_for_trees
            from treeplay.tree.records import tree_from_dict

            trees_path = directory / "trees.jsonl"
            summary = build_trees(
                self.train_tasks,
                self.policy(opponent),
                config=tree_cfg,
                out_path=trees_path,
                round=round_,
                seed=seed * 1000 + round_,
            )
            trees = [tree_from_dict(r) for r in read_jsonl(trees_path)]
            mode = "whole-sequence" if method == "selfplay" else arm.pair_mode
            pairs, missing = pairs_for_trees(trees, self.tasks_by_id, mode,
                                             include_unparseable=self.config.unparseable_pairs)
            if missing:
                raise RuntimeError(f"{trees_path}: trees for unknown tasks {missing[:3]}")
            write_jsonl(pairs_path, pairs)
            labels: dict[str, int] = {}
            for tree in trees:
                for branch in tree.branches:
                    labels[branch.label] = labels.get(branch.label, 0) + 1
            return {
                "trees": len(trees),
                "built_now": summary.built,
                "branches": labels,
                "pairs": len(pairs),
                "pairs_by_mode": dict(sorted(Counter(p.mode for p in pairs).items())),
                "pairs_file": str(pairs_path),
            }

        return Stage(f"seed {seed} / {arm.name} / round {round_} / data", directory, inputs, run)

    def _tree_config(self, arm: Arm) -> Any:
        from treeplay.tree.builder import TreeConfig

        base = TreeConfig(**arm.tree)
        if arm.method == "selfplay":
            # Unstructured self-play: whole sequences sampled from the root only, same oracle labels.
            return dataclasses.replace(
                base, root_samples=self.config.selfplay.root_samples, max_nodes=1, depth=1,
                max_branches=self.config.selfplay.root_samples,
            )
        return base

    def train_stage(
        self, seed: int, arm: Arm, round_: int, model_in: str, model_hash: str, data: Stage
    ) -> Stage:
        from treeplay.train.config import TrainConfig

        method = arm.name
        directory = self.run_dir / f"seed-{seed}" / arm.name / f"round-{round_}" / "train"
        # With LoRA the next round loads this round's adapter on top of its own base (a chain of
        # adapters, see treeplay.policy.models.model_chain): llama.cpp applies them unmerged.
        options = {**arm.train, "method": arm.method, "seed": seed}
        train_cfg = TrainConfig.from_dict(options, source=f"train ({arm.name})")
        inputs = digest("train", arm.method, round_, model_hash, data.inputs_hash, train_cfg.to_dict())

        def run() -> dict[str, Any]:
            from treeplay.train.data import read_pairs
            from treeplay.train.trainer import train

            pairs = read_pairs(data.directory / "pairs.jsonl")
            if not pairs:
                return self._untrained(f"seed {seed} / {method} / round {round_}: 0 training pairs "
                                       f"(see {data.directory / STAGE_FILE})", model_in)
            self.drop_policy()  # free the sampling model while training
            result = train(train_cfg, pairs, model_in, directory, resume=True)
            if result.steps == 0:
                return self._untrained(f"seed {seed} / {method} / round {round_}: 0 optimizer steps "
                                       f"from {len(pairs)} pairs", model_in)
            return {
                "final_model_dir": result.final_model_dir,
                "adapter": result.adapter,
                "steps": result.steps,
                "tokens": result.tokens_seen,
                "pairs": result.pairs_used,
                "final_metrics": result.final_metrics,
            }

        return Stage(f"seed {seed} / {method} / round {round_} / train", directory, inputs, run)

    def _untrained(self, why: str, model_in: str) -> dict[str, Any]:
        """Zero pairs or zero steps: fail the stage, or (allow_untrained) record the method as untrained."""
        if not self.config.allow_untrained:
            raise StageError(f"{why}: the method would be evaluated as the untrained model under its own "
                             "name; fix the data settings or set `allow_untrained: true` to report it as untrained")
        return {"untrained": why, "final_model_dir": model_in, "steps": 0, "tokens": 0}

    # -- execution ---------------------------------------------------------------------------
    def run(self) -> Path:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(
            yaml.safe_dump(config.model_dump(), sort_keys=False), encoding="utf-8"
        )
        self.train_tasks = load_train_tasks(config)
        self.tasks_by_id = {t.id: t for t in self.train_tasks}
        arms = config.arms()
        self.console.print(
            f"[bold]treeplay run[/] {config.name}: model {config.model}, {len(self.train_tasks)} train tasks, "
            f"arms base+{'+'.join(a.name for a in arms)}, rounds {config.rounds}, seeds {config.seeds} -> {self.run_dir}"
        )
        planned = len(config.seeds) * (len(config.eval.benches) * (1 + len(arms)) + 2 * config.rounds * len(arms))
        clock = _StageClock(planned, self.console)
        base_hash = digest("model", config.model)
        for seed in config.seeds:
            for stage in self.eval_stages(seed, "base", config.model, base_hash):
                clock.run(stage)
            for arm in arms:
                method = arm.name
                model, model_hash = config.model, base_hash
                steps = tokens = pairs_total = 0
                wall = 0.0
                untrained: list[str] = []
                by_mode: Counter[str] = Counter()
                for round_ in range(1, arm.rounds + 1):
                    data = self.data_stage(seed, arm, round_, model, model_hash)
                    data_record = clock.run(data)
                    self._data_done.setdefault(data.inputs_hash, data.directory)
                    train = self.train_stage(seed, arm, round_, model, model_hash, data)
                    train_record = clock.run(train)
                    wall += float(data_record.get("wall_s", 0)) + float(train_record.get("wall_s", 0))
                    steps += int(train_record.get("steps", 0))
                    tokens += int(train_record.get("tokens", 0))
                    pairs_total += int(data_record.get("pairs", 0))
                    by_mode.update(data_record.get("pairs_by_mode") or {})
                    untrained += [train_record["untrained"]] if train_record.get("untrained") else []
                    model, model_hash = str(train_record["final_model_dir"]), train.inputs_hash
                self.drop_policy()
                eval_records = [clock.run(stage) for stage in self.eval_stages(seed, method, model, model_hash, arm.benches)]
                wall += sum(float(r.get("wall_s", 0)) for r in eval_records)
                budget = {
                    "method": arm.method,
                    "arm": arm.name,
                    "rounds": arm.rounds,
                    "optimizer_steps": steps,
                    "tokens": tokens,
                    "pairs": pairs_total,
                    "pairs_by_mode": dict(sorted(by_mode.items())),
                    "untrained": untrained,
                    "wall_s": round(wall, 1),
                    "final_model": model,
                }
                (self.run_dir / f"seed-{seed}" / method / "budget.json").write_text(json.dumps(budget, indent=2))
        self.drop_policy()
        if config.report:
            from treeplay.eval.report import write_report

            md, html = write_report(self.run_dir)
            self.console.print(f"[bold green]report:[/] {md}\n[bold green]html:[/]   {html}")
        return self.run_dir


def sft_pairs(tasks: Sequence[Task]) -> list[Pair]:
    """SFT examples (golden continuations) for tasks that have a golden path."""
    return [
        Pair(
            task_id=t.id,
            node_id="root",
            mode="sft",
            language=t.language,
            cwe=t.primary_cwe,
            instruction=t.instruction,
            prefix=t.prefix,
            chosen=t.golden,
            rejected="",
        )
        for t in tasks
        if t.golden is not None
    ]


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("spr@1", "strict_spr@1", "unparseable", "pass@1", "func-sec@1", "func@1", "generations")
    summary = {}
    for key in keep:
        value = metrics.get(key)
        if isinstance(value, dict):
            value = value.get("value", value.get("mean"))
        if value is not None:
            summary[key] = value
    return summary


@contextlib.contextmanager
def _progress_bar(label: str, console: Console) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar fed with (done, total) callbacks."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:
        handle = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(handle, completed=done, total=total)

        yield advance


class _StageClock:
    """Prints each stage with its position, elapsed time and an ETA from the stages run so far."""

    def __init__(self, planned: int, console: Console) -> None:
        self.planned = planned
        self.console = console
        self.done = 0
        self.started = time.monotonic()
        self.worked_s = 0.0
        self.worked = 0

    def run(self, stage: Stage) -> dict[str, Any]:
        self.done += 1
        cached = stage.done_record()
        label = f"[{self.done}/{self.planned}] {stage.name}"
        if cached is not None:
            self.console.print(f"[dim]{label}: done earlier, skipped[/]")
            return cached
        self.console.print(f"[bold cyan]{label}[/] {self._eta()}")
        t0 = time.monotonic()
        record = run_stage(stage)
        self.worked_s += time.monotonic() - t0
        self.worked += 1
        shown = {k: v for k, v in record.items() if k in ("summary", "pairs", "branches", "steps", "tasks", "untrained")}
        self.console.print(f"  done in {time.monotonic() - t0:.0f}s {json.dumps(shown, default=str)}")
        return record

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.worked:
            return f"(elapsed {elapsed:.0f}s)"
        remaining = (self.planned - self.done + 1) * self.worked_s / self.worked
        return f"(elapsed {elapsed:.0f}s, ETA ~{remaining / 60:.0f} min)"


def run_pipeline(config_path: Path | str, run_dir: Path | str | None = None) -> Path:
    config = load_config(config_path)
    directory = Path(run_dir) if run_dir else Path("runs") / config.name
    return run_config(config, directory, source=str(config_path))


def oracle_fingerprint() -> str:
    """The oracle policy (rules, settings, analyzers and versions) in the data and eval stage digests."""
    from treeplay.oracle import default_oracle

    return str(default_oracle().fingerprint())


def run_config(config: RunConfig, run_dir: Path, *, source: str = "config") -> Path:
    """Run a validated config into `run_dir` (resuming whatever is already there), after `--check`."""
    from treeplay.run_check import check_run

    _check_sections(config, Path(source))
    report = check_run(config, run_dir, source=source)
    if not report.ok:
        raise ConfigError("run check failed:\n" + "\n".join(f"  - {p}" for p in report.problems))
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    try:
        return Pipeline(config, run_dir).run()
    except TaskFormatError as exc:
        raise ConfigError(f"{source}: field train_tasks: {exc}") from None
