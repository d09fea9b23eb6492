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
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from rich.console import Console

from treeplay.jsonl import read_jsonl, write_jsonl
from treeplay.tasks import Task, TaskFormatError, load_tasks
from treeplay.tree.records import Pair

METHOD_ORDER = ("sft", "selfplay", "tsp")
STAGE_FILE = "stage.json"


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file and the field."""


class StageError(RuntimeError):
    """A stage that ended without producing what the next stage needs (e.g. zero training pairs)."""


# ---- configuration --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSource(_Strict):
    """Which tasks to train on. `path` may start with `data:` for the shared data root."""

    path: str
    format: str | None = None
    language: str | None = None
    cwe: str | None = None
    split: str | None = None
    exclude_language: str | None = None
    limit: int | None = Field(default=None, ge=1)
    # "file": the first `limit` tasks in file order (SafeCoder files are sorted by CWE, so a small
    # limit covers one or two CWEs); "round-robin-cwe": one task of each CWE in turn, then the next.
    order: Literal["file", "round-robin-cwe"] = "file"


class EvalSection(_Strict):
    benches: list[str] = Field(default_factory=lambda: ["securityeval"])
    limit: int | None = Field(default=None, ge=1)  # tasks per bench (None: all)
    limits: dict[str, int] = Field(default_factory=dict)  # per-bench override
    n: int = Field(default=1, ge=1)
    temperature: float = Field(default=0.2, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_new_tokens: int = Field(default=128, ge=1)
    batch_tasks: int = Field(default=16, ge=1)  # tasks sampled together (one batched generate)


class SelfplaySection(_Strict):
    root_samples: int = Field(default=8, ge=2)


class VariantSection(_Strict):
    """An extra arm of the experiment (an ablation): a method with tree/train option overrides.

    Its name is its directory and its row in the report, e.g. `tsp-dpo` (TSP trees, plain DPO loss)
    or `tsp-oracle-nodes` (risk nodes from the oracle only, no dataset diff)."""

    method: Literal["sft", "selfplay", "tsp"]
    tree: dict[str, Any] = Field(default_factory=dict)  # TreeConfig fields over `tree:`
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields over `train:`
    pair_mode: Literal["golden-vs-branch", "sibling", "both"] | None = None
    benches: list[str] | None = None  # evaluate on these of `eval.benches` only (None: all)
    rounds: int | None = Field(default=None, ge=1)  # None: the run's `rounds`


@dataclasses.dataclass(frozen=True)
class Arm:
    """One trained model line of the experiment: a method (or variant) and its options."""

    name: str
    method: str
    tree: dict[str, Any]
    train: dict[str, Any]
    pair_mode: str
    benches: tuple[str, ...]
    rounds: int


class RunConfig(_Strict):
    name: str
    model: str = "embedded"
    backend: Literal["auto", "llamacpp", "hf", "vllm"] = "auto"  # auto: llama.cpp for embedded GGUF models on CPU
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1)
    seeds: list[int] = Field(default_factory=lambda: [0])
    methods: list[Literal["sft", "selfplay", "tsp"]] = ["tsp"]
    rounds: int = Field(default=2, ge=1)
    data_root: str | None = None
    train_tasks: TaskSource
    eval: EvalSection = Field(default_factory=EvalSection)
    tree: dict[str, Any] = Field(default_factory=dict)  # TreeConfig fields
    pair_mode: Literal["golden-vs-branch", "sibling", "both"] = "both"
    unparseable_pairs: bool = False  # also golden vs finished unparseable branches (own pair kind)
    allow_untrained: bool = False  # a method with 0 pairs / 0 steps is reported "untrained" instead of failing
    selfplay: SelfplaySection = Field(default_factory=SelfplaySection)
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields (method is set per method)
    variants: dict[str, VariantSection] = Field(default_factory=dict)  # ablation arms, by name
    report: bool = True

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return value

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, VariantSection]) -> dict[str, VariantSection]:
        for name in value:
            if name in ("base", *METHOD_ORDER) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
                raise ValueError(f"variant name {name!r} must be lower-case letters, digits and '-', not a method name")
        return value

    @model_validator(mode="after")
    def _variant_benches(self) -> RunConfig:
        for name, variant in self.variants.items():
            unknown = sorted(set(variant.benches or ()) - set(self.eval.benches))
            if unknown:
                raise ValueError(f"variants.{name}.benches: {unknown} are not in eval.benches")
        return self

    def arms(self) -> list[Arm]:
        """The trained arms in report order: the methods, then the variants."""
        benches = tuple(self.eval.benches)
        methods = list(dict.fromkeys(self.methods))  # run order = the config's order
        arms = [Arm(m, m, dict(self.tree), dict(self.train), self.pair_mode, benches, self.rounds) for m in methods]
        for name, v in self.variants.items():
            arms.append(Arm(name, v.method, {**self.tree, **v.tree}, {**self.train, **v.train},
                            v.pair_mode or self.pair_mode, tuple(v.benches or benches), v.rounds or self.rounds))
        return arms


def load_config(path: Path | str) -> RunConfig:
    """Read and validate a run config; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    _check_sections(config, path)
    return config


def _check_sections(config: RunConfig, path: Path) -> None:
    """Validate the free-form tree/train sections against their dataclasses now, not hours later."""
    from treeplay.train.config import TrainConfig
    from treeplay.tree.builder import TreeConfig

    try:
        TreeConfig(**config.tree)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: field tree: {exc}") from None
    if "method" in config.train:
        raise ConfigError(f"{path}: field train.method: set methods at the top level, not in train")
    try:
        TrainConfig.from_dict({**config.train, "method": "tsp"}, source="train")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: field {exc}") from None


# ---- helpers --------------------------------------------------------------------------------


def data_root(config: RunConfig) -> Path:
    if config.data_root:
        return Path(config.data_root)
    from treeplay.eval.evaluate import default_data_root

    return default_data_root()


def resolve_data_path(config: RunConfig, path: str) -> Path:
    return data_root(config) / path.removeprefix("data:") if path.startswith("data:") else Path(path)


def load_train_tasks(config: RunConfig) -> list[Task]:
    source = config.train_tasks
    tasks = load_tasks(
        resolve_data_path(config, source.path),
        format=source.format,
        language=source.language,
        cwe=source.cwe,
        split=source.split,
    )
    if source.exclude_language:
        excluded = {x.strip() for x in source.exclude_language.split(",")}
        tasks = [t for t in tasks if t.language not in excluded]
    tasks = [t for t in tasks if t.golden is None or t.changed_spans or t.vulnerable is None]
    if source.order == "round-robin-cwe":
        tasks = round_robin_by_cwe(tasks)
    return tasks[: source.limit] if source.limit else tasks


def round_robin_by_cwe(tasks: Sequence[Task]) -> list[Task]:
    """Tasks interleaved across primary CWEs (first of each CWE in order of appearance, then the
    second of each, ...), so that any prefix of the list covers as many CWEs as it can."""
    groups: dict[str | None, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.primary_cwe, []).append(task)
    queues = list(groups.values())
    out: list[Task] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


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
            from treeplay.tree.pairs import pairs_for_trees
            from treeplay.tree.records import tree_from_dict
            from treeplay.tree.writer import build_trees

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
