"""`treeplay run CONFIG`: Algorithm 1 with its baselines, from one YAML file.

load tasks -> base eval -> for each arm (methods sft, selfplay, tsp and the variants) and round
t = 1..T: build data with the round's opponent (the model of round t-1) -> train -> next round;
then eval the final model and write the arm's budget. `Pipeline.steps` is that algorithm; what
each stage does is in `treeplay.pipeline_stages`, how stages are hashed, skipped, resumed and
planned in `treeplay.stages`, and where they live in the run dir in `treeplay.run_layout`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from treeplay.pipeline_stages import StageBuilder, oracle_fingerprint  # noqa: F401  (re-exported)
from treeplay.run_bundle import RollingBundle
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
)
from treeplay.run_layout import RunLayout
from treeplay.run_lock import RunDirBusy, default_run_dir, hold_run_dir
from treeplay.stage_times import StageTimes
from treeplay.stages import (  # noqa: F401  (STAGE_FILE, Stage, StageError, run_stage: re-exported, their old home)
    STAGE_FILE,
    ArmBudget,
    PlannedStage,
    Selection,
    Stage,
    StageClock,
    StageError,
    Steps,
    digest,
    plan,
    run_stage,
    superseded_note,
    walk,
)
from treeplay.tasks import Task, TaskFormatError
from treeplay.tasks.config import round_robin_by_cwe  # noqa: F401  (re-exported, its old home)


class Pipeline:
    """Algorithm 1 for one config and one run dir. `steps` yields the stages in order, `run`
    executes them (skipping the done ones), `plan` lists them with what is done, running nothing."""

    def __init__(self, config: RunConfig, run_dir: Path, *, console: Console | None = None,
                 fingerprint: str | None = None, train_tasks: Sequence[Task] | None = None,
                 select: Selection | None = None, bundle: Path | None = None,
                 reuse_from: Sequence[Path] = ()) -> None:  # fmt: skip
        self.config = config
        self.bundle = bundle  # `treeplay run --bundle FILE`: rewritten after every stage that runs
        self.reuse_from = list(reuse_from)  # `--reuse-from RUN`: finished stages copied from there (run_reuse)
        # `treeplay run --only ARM --seed S`: run the stages of these arms (`base` is an arm) and seeds
        # and no other; the others are walked (their hashes and tree reuse stay as in a full run), not run
        self.select = select or Selection()
        self.run_dir = run_dir
        self.layout = RunLayout(run_dir)
        self.console = console or Console(stderr=True, soft_wrap=True)
        self._tasks_loaded = train_tasks is not None
        self.stages = StageBuilder(config, self.layout, train_tasks or [], data_root=data_root(config),
                                   console=self.console, fingerprint=fingerprint)  # fmt: skip

    def steps(self) -> Steps:
        """Base eval; then per seed and arm: T rounds of (data from the opponent -> train), where
        round t's opponent and reference is round t-1's model; then eval the final model."""
        config = self.config
        base_hash = digest("model", config.model)
        costs = _StageCosts()
        for seed in config.seeds:
            for stage in self.stages.eval_stages(seed, "base", config.model, base_hash):  # noqa: UP028
                yield stage  # (not `yield from` a list: the driver send()s each record back)
            for arm in config.arms():
                yield from self.arm_steps(seed, arm, config.model, base_hash, costs)

    def arm_steps(self, seed: int, arm: Arm, model: str, model_hash: str, costs: _StageCosts) -> Steps:
        """One arm from the base model: its rounds, its evaluation, its budget (`costs`: what the
        stages of earlier arms cost, for the stages this arm copies or whose trees it reuses)."""
        budget = _Budget()
        for round_ in range(1, arm.rounds + 1):
            data = self.stages.data_stage(seed, arm, round_, model, model_hash)
            data_record = yield data
            train = self.stages.train_stage(seed, arm, round_, model, model_hash, data)
            train_record = yield train
            budget.add_round(data_record, train_record)
            budget.add_stage(*costs.cost_s(data, data_record))
            budget.add_stage(*costs.cost_s(train, train_record))
            model, model_hash = str(train_record["final_model_dir"]), train.inputs_hash
        self.stages.drop_policy()
        evals = []
        for stage in self.stages.eval_stages(seed, arm.name, model, model_hash, arm.benches):
            evals.append((yield stage))
        budget.add_evals(evals)
        yield ArmBudget(self.layout.budget(seed, arm.name), budget.record(arm, model), seed=seed, arm=arm.name)

    # -- execution ---------------------------------------------------------------------------
    def load_tasks(self) -> None:
        if not self._tasks_loaded:
            self.stages.set_train_tasks(load_train_tasks(self.config))
            self._tasks_loaded = True

    def plan(self) -> list[PlannedStage]:
        """Every stage of the run, in order, and whether it is done (its hash matches): no work, no writes."""
        self.load_tasks()
        return plan(self.steps())

    def run(self) -> Path:
        config = self.config
        self.load_tasks()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.layout.config_file.write_text(yaml.safe_dump(config.model_dump(), sort_keys=False), encoding="utf-8")
        arms = config.arms()
        self.console.print(
            f"[bold]treeplay run[/] {config.name}: model {config.model}, {len(self.stages.train_tasks)} train tasks, "
            f"arms base+{'+'.join(a.name for a in arms)}, rounds {config.rounds}, seeds {config.seeds} -> {self.run_dir}"
        )
        planned = self.plan()
        if self.reuse_from and self._reuse(planned):
            planned = self.plan()  # the copied stages are done now, with their records
        times = StageTimes(planned, {arm.name: arm.method for arm in arms})
        if self.select:
            self.console.print(f"only {self.select.label()}: the other stages are not run")
            check_selection(planned, self.select, config.seeds)
            planned = [p for p in planned if self.select.selects(p.stage.arm, p.stage.seed)]
        clock = StageClock(planned, self.console, archive=self.layout.superseded_dir, times=times)
        self.console.print(f"{clock.total - clock.to_run} of {clock.total} stages done earlier, {clock.to_run} to run")
        note = superseded_note(planned, self.stages.oracle(), self.layout.superseded_dir)
        if note:
            self.console.print(f"[bold yellow]warning:[/] {note}")
        bundle = RollingBundle(self.run_dir, self.bundle, self.console.print) if self.bundle else None
        run = bundle.stage_runner(clock.run) if bundle else clock.run
        walk(self.steps(), self._selected(run), lambda budget: self._write_budget(budget, bundle))
        self.stages.drop_policy()
        if config.report:
            from treeplay.eval import write_report

            md, html = write_report(self.run_dir)
            self.console.print(f"[bold green]report:[/] {md}\n[bold green]html:[/]   {html}")
            if bundle:
                bundle.write("after the report")
        return self.run_dir

    def _reuse(self, planned: Sequence[PlannedStage]) -> int:
        """Copy in the selected stages that a `--reuse-from` run finished with the same inputs."""
        from treeplay.run_reuse import copy_reused, find_reusable

        return copy_reused(find_reusable(planned, self.run_dir, self.reuse_from, self.select), self.run_dir,
                           self.console.print)  # fmt: skip

    def _selected(self, run: Callable[[Stage], dict[str, Any]]) -> Callable[[Stage], dict[str, Any]]:
        """`run` for the selected stages; the others give their record or placeholder."""
        select = self.select
        if not select:
            return run
        return lambda stage: (run(stage) if select.selects(stage.arm, stage.seed)
                              else (stage.done_record() or dict(stage.placeholder)))  # fmt: skip

    def _write_budget(self, budget: ArmBudget, bundle: RollingBundle | None = None) -> None:
        if self.select.selects(budget.arm, budget.seed):
            before = budget.path.read_bytes() if budget.path.is_file() else None
            budget.write()
            if bundle and budget.path.read_bytes() != before:  # a resumed run rewrites the same budget
                bundle.write(f"after the budget of seed {budget.seed} / {budget.arm}")


def check_selection(planned: Sequence[PlannedStage], select: Selection, seeds: Sequence[int]) -> None:
    """`--only`/`--seed` name arms and seeds of the run, and a selected stage that would reuse another
    arm's trees finds them finished (else it would sample trees of its own and the two arms would differ)."""
    arms = list(dict.fromkeys(p.stage.arm for p in planned))
    unknown = sorted(select.arms - set(arms))
    if unknown:
        raise ConfigError(f"--only: no arm {', '.join(unknown)} in this run (its arms: {', '.join(arms)})")
    missing = sorted(select.seeds - set(seeds))
    if missing:
        raise ConfigError(f"--seed: no seed {', '.join(map(str, missing))} in this run "
                          f"(its seeds: {', '.join(map(str, seeds))})")  # fmt: skip
    first: dict[str, PlannedStage] = {}
    for item in planned:
        key = item.stage.samples_key
        if key is None:
            continue
        owner = first.setdefault(key, item)
        selected = select.selects(item.stage.arm, item.stage.seed)
        if selected and not select.selects(owner.stage.arm, owner.stage.seed) and not owner.done and not item.done:
            raise ConfigError(f"{select.label()}: {item.stage.name} reuses the trees of {owner.stage.name}, which "
                              f"is not done: add --only {owner.stage.arm}, or run it first")  # fmt: skip


@dataclasses.dataclass
class _Budget:
    """What an arm cost over its rounds and evaluations (its `budget.json`)."""

    steps: int = 0
    tokens: int = 0
    pairs: int = 0
    wall: float = 0.0
    shared: float = 0.0
    untrained: list[str] = dataclasses.field(default_factory=list)
    by_mode: Counter[str] = dataclasses.field(default_factory=Counter)

    def add_round(self, data: dict[str, Any], train: dict[str, Any]) -> None:
        self.steps += int(train.get("steps", 0))
        self.tokens += int(train.get("tokens", 0))
        self.pairs += int(data.get("pairs", 0))
        self.by_mode.update(data.get("pairs_by_mode") or {})
        self.untrained += [train["untrained"]] if train.get("untrained") else []

    def add_evals(self, records: Sequence[dict[str, Any]]) -> None:
        self.wall += sum(float(r.get("wall_s", 0)) for r in records)

    def add_stage(self, cost_s: float, shared_s: float) -> None:
        """A data or train stage: what it cost, and the part of that an earlier arm ran (`_StageCosts`)."""
        self.wall += cost_s
        self.shared += shared_s

    def record(self, arm: Arm, final_model: str) -> dict[str, Any]:
        return {
            "method": arm.method, "arm": arm.name, "rounds": arm.rounds, "optimizer_steps": self.steps,
            "tokens": self.tokens, "pairs": self.pairs, "pairs_by_mode": dict(sorted(self.by_mode.items())),
            "untrained": self.untrained, "wall_s": round(self.wall, 1), "shared_wall_s": round(self.shared, 1),
            "final_model": final_model,
        }  # fmt: skip


class _StageCosts:
    """The wall time of each stage that did the work, by inputs hash and by the trees it sampled, so
    an arm's budget counts what its model cost. A stage with an earlier arm's inputs is a copy (a
    few seconds): it costs what the original cost. A data stage that pairs an earlier arm's trees
    (same `samples_key`, other inputs) costs its own pairing plus that arm's tree stage (whose wall
    also holds that arm's pairing, a few seconds). Stages of another run (`--reuse-from`) keep
    their original wall time in their record already."""

    def __init__(self) -> None:
        self.by_inputs: dict[str, float] = {}
        self.by_trees: dict[str, float] = {}

    def cost_s(self, stage: Stage, record: dict[str, Any]) -> tuple[float, float]:
        """(what `stage` cost this arm, the part of it an earlier arm ran), in wall seconds."""
        wall = float(record.get("wall_s", 0))
        if stage.inputs_hash in self.by_inputs:
            original = self.by_inputs[stage.inputs_hash]
            return original, original
        self.by_inputs[stage.inputs_hash] = wall
        if stage.samples_key in self.by_trees:  # pairs of an earlier arm's trees
            trees = self.by_trees[stage.samples_key]
            return wall + trees, trees
        if stage.samples_key is not None:
            self.by_trees[stage.samples_key] = wall
        return wall, 0.0


def run_pipeline(config_path: Path | str, run_dir: Path | str | None = None, select: Selection | None = None,
                 bundle: Path | None = None, reuse_from: Sequence[Path] = ()) -> Path:  # fmt: skip
    config = load_config(config_path)
    directory = Path(run_dir) if run_dir else default_run_dir(config.name)
    return run_config(config, directory, source=str(config_path), select=select, bundle=bundle, reuse_from=reuse_from)


def run_config(config: RunConfig, run_dir: Path, *, source: str = "config", select: Selection | None = None,
               bundle: Path | None = None, reuse_from: Sequence[Path] = ()) -> Path:  # fmt: skip
    """Run a validated config into `run_dir` (resuming whatever is already there), after `--check`;
    `bundle`: rewritten after every stage that runs (`treeplay.run_bundle.RollingBundle`); `reuse_from`:
    run dirs whose finished stages of the same inputs are copied in instead of run (`treeplay.run_reuse`)."""
    from treeplay.run_check import check_run

    _check_sections(config, Path(source))
    report = check_run(config, run_dir, source=source, select=select, bundle=bundle, reuse_from=reuse_from)
    if not report.ok:
        raise ConfigError("run check failed:\n" + "\n".join(f"  - {p}" for p in report.problems))
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    try:
        with hold_run_dir(run_dir, f"treeplay run {source}"):
            return Pipeline(config, run_dir, select=select, bundle=bundle, reuse_from=reuse_from).run()
    except RunDirBusy as exc:
        raise ConfigError(str(exc)) from None
    except TaskFormatError as exc:
        raise ConfigError(f"{source}: field train_tasks: {exc}") from None
