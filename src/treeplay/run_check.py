"""`treeplay run CONFIG --check`: everything a run needs, checked before any work, and its plan.

Checked (each blocker names the config file and field): the training tasks and every bench
resolve; every language of the training and evaluation tasks has a judge in the oracle and its
analyzers can run here; the model and the extras the config asks for (vLLM, CUDA, peft, CodeQL)
are installed; the run dir is writable; no stage still to run needs a trained model whose weights
are not here (a run restored from a bundle). Also run at the start of every `treeplay run`.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treeplay.run_bundle import bundle_blocker, missing_model_blockers
from treeplay.run_config import METHOD_ORDER, Arm, RunConfig, data_root, load_train_tasks, resolve_data_path
from treeplay.run_layout import RunLayout
from treeplay.run_lock import holder
from treeplay.stage_times import StageTimes, stage_keys
from treeplay.stages import PlannedStage, Selection, Stage, superseded_note
from treeplay.tasks import Task

# Generation throughput of the embedded model (Qwen2.5-Coder-0.5B-Instruct, llama.cpp, 2 threads)
# on this machine: 19.4 tok/s on the tree-shaped workload of benchmarks/engine_throughput.py, 20-23
# tok/s with 2-16 slots (docs/policy.md "Measured", 2026-11-25, under load). Used only for the
# plan's time estimate of sampling.
EMBEDDED_DECODE_TOK_S = 20.0
EMBEDDED_MODELS = ("embedded",)
# backend -> Python module it needs (the hf backend needs only the base install)
BACKEND_MODULES: dict[str, str] = {"vllm": "vllm", "llamacpp": "llama_cpp", "llama.cpp": "llama_cpp"}


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)  # blockers: the run would fail or measure nothing
    plan: list[str] = field(default_factory=list)
    to_run: list[str] = field(default_factory=list)  # the stages not done yet, in run order


    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = ["plan:", *(f"  {line}" for line in self.plan)]
        if self.to_run:
            lines += ["stages to run:", *(f"  {name}" for name in self.to_run)]
        if self.problems:
            lines += ["blockers:", *(f"  - {p}" for p in self.problems)]
        else:
            lines.append("check passed: no blockers")
        return "\n".join(lines)


def language_blocker(source: str, where: str, tasks: Sequence[Task], oracle: Any) -> str | None:
    """The blocker for tasks in languages the oracle has no judge for (None when all have one)."""
    counts = Counter(t.language for t in tasks if not oracle.config.has_judge(t.language))
    if not counts:
        return None
    listed = ", ".join(f"{lang} ({n} tasks)" for lang, n in sorted(counts.items()))
    judged = ", ".join(oracle.config.judged_languages())
    return f"{source}: field {where}: no oracle judge for {listed} (judged: {judged})"


def analyzer_blockers(source: str, languages: set[str], oracle: Any) -> list[str]:
    """Analyzers of the needed languages that cannot run here (their verdicts would be incomplete)."""
    from treeplay.oracle.languages import try_normalise_language

    problems = []
    for language in sorted({try_normalise_language(lang) or lang for lang in languages}):
        for name in oracle.config.analyzers_for(language):
            if oracle.analyzer(name) is None:
                reason = oracle._unavailable.get(name, "unavailable")
                problems.append(f"{source}: oracle: analyzer {name!r} for {language} cannot run: {reason} "
                                "(its verdicts would be incomplete)")
    return problems


def _model_blocker(config: RunConfig, source: str) -> str | None:
    if config.model in EMBEDDED_MODELS or config.model.startswith("embedded:"):
        return _embedded_blocker(config.model, source)
    if not Path(config.model).is_dir() and "/" in config.model and config.model.startswith(("/", ".")):
        return f"{source}: field model: {config.model} is not a local directory"
    return None


def _embedded_blocker(model: str, source: str) -> str | None:
    try:
        from treeplay.policy import models
    except ImportError as exc:
        return f"{source}: field model: cannot import the policy stage ({exc})"
    key = models.EMBEDDED_ALIASES.get(model)
    if key is None:
        return f"{source}: field model: unknown embedded model {model!r}"
    spec = models.EMBEDDED_MODELS[key]
    if models._is_converted(models.cache_root() / spec.name, spec.sha256):
        return None
    try:
        if spec.gguf_name:
            models.find_package_file(spec.packages[0], spec.gguf_name, spec.install_hint)
        else:
            models.find_part_files(spec.packages, spec.install_hint)
    except Exception as exc:  # any failure to find the weights is the blocker
        return f"{source}: field model: embedded model {model!r} not installed: {exc}"
    return None


def extras_blockers(config: RunConfig, source: str) -> list[str]:
    problems = []
    module = BACKEND_MODULES.get(config.backend)
    if module is not None and importlib.util.find_spec(module) is None:
        problems.append(f"{source}: field backend: {config.backend} is not installed (pip install -e \".[gpu]\")")
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            problems.append(f"{source}: field device: {config.device} requested but no CUDA device is visible")
    if config.train.given().get("lora") and importlib.util.find_spec("peft") is None:
        problems.append(f"{source}: field train.lora: peft is not installed")
    model = _model_blocker(config, source)
    return [*problems, *([model] if model else [])]


def run_dir_blocker(run_dir: Path, source: str) -> str | None:
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"{source}: run dir {run_dir}: {existing} is not a writable directory"
    busy = holder(run_dir)
    if busy:
        return f"{source}: run dir {run_dir} is being written by another treeplay command ({busy})"
    return None


def _sampling_per_tree(config: RunConfig, arm: Arm) -> tuple[int, int]:
    """(branches sampled, max new tokens per branch) for one tree of `arm`."""
    tree = config.arm_tree_config(arm)
    if arm.method == "selfplay":
        return tree.root_samples, tree.max_new_tokens
    return min(tree.max_branches, tree.root_samples + tree.k * tree.max_nodes), tree.max_new_tokens


def plan_lines(config: RunConfig, train: Sequence[Task], benches: dict[str, int],
               planned: Sequence[PlannedStage], not_selected: tuple[int, str] = (0, "")) -> list[str]:  # fmt: skip
    """What is done, the work of the stages still to run and its estimated sampling time.
    `not_selected`: how many of the stages `planned` marks done are in fact not done and not run
    (`--only`/`--seed`), and that selection's label."""
    arms = {a.name: a for a in config.arms()}
    methods = {name: arm.method for name, arm in arms.items()}
    pending = [p.stage for p in planned if not p.done]
    left, label = not_selected
    skipped = f"{left} not done and not run ({label}), " if left else ""
    lines = [f"{len(config.seeds)} seed(s) x arms base+{'+'.join(arms)}, {config.rounds} round(s); "
             f"{len(train)} training tasks",
             f"run dir: {len(planned) - len(pending) - left} of {len(planned)} stages done (inputs unchanged: "
             f"skipped), {skipped}{len(pending)} to run"]  # fmt: skip
    tree_samples = tree_tokens = copied = reused = copied_models = 0
    for item, key in zip(planned, stage_keys(planned, methods), strict=True):
        copied_models += not item.done and key[0] == "train" and key[-1] == "copied"
        if item.done or key[0] != "data":
            continue
        copied += key[-1] == "copied"  # same inputs as an earlier arm's data stage: its trees and pairs are copied
        reused += key[-1] == "reused"  # other pairs (pair mode) from the same trees: the trees are reused
        if key[-1] == "sampled":
            samples, max_new_tokens = _sampling_per_tree(config, arms[item.stage.arm])
            tree_samples += len(train) * samples
            tree_tokens += len(train) * samples * max_new_tokens
    reuse = f"; {copied} copied from another arm" if copied else ""
    reuse += f"; {reused} reuse another arm's trees" if reused else ""
    lines.append(f"data: up to {tree_samples} sampled branches in the data stages to run{reuse}")
    trains = sum(s.kind == "train" for s in pending)
    trains_text = f"{trains} stage(s) to run" + (f" ({copied_models} copied from another arm)" if copied_models else "")
    steps = config.train.given().get("max_steps")
    lines.append(f"train: {trains_text}, {steps} optimizer steps each (variants may override)" if steps
                 else f"train: {trains_text}, {config.train.given().get('epochs', 1)} epoch(s) over the pairs")
    eval_samples = 0
    for bench, count in benches.items():
        todo = sum(s.kind == "eval" and s.bench == bench for s in pending)
        lines.append(f"eval {bench}: {count} tasks x n={config.eval.bench_n(bench)}, {todo} evaluation(s) to run")
        eval_samples += count * config.eval.bench_n(bench) * todo
    measured = _measured_time(planned, methods, pending)
    lines += [measured] if measured else []
    lines.append(_estimate(config, tree_tokens, eval_samples))
    return lines


def _measured_time(planned: Sequence[PlannedStage], methods: dict[str, str], pending: Sequence[Stage]) -> str | None:
    """The stages to run at the median wall time of this run's finished stages of their kind."""
    if not pending:
        return None
    seconds, untimed = StageTimes(planned, methods).remaining(pending)
    if len(untimed) == len(pending):
        return None
    rest = f"; {len(untimed)} of a kind not finished here yet (see the estimate)" if untimed else ""
    return (f"time: ~{math.ceil(seconds / 60)} min for {len(pending) - len(untimed)} of the {len(pending)} stages "
            f"to run, at the median wall time of this run's finished stages of their kind{rest}")


def _estimate(config: RunConfig, tree_tokens: int, eval_samples: int) -> str:
    """Generated tokens of the work still to do and, for the embedded model, the sampling time."""
    tokens = tree_tokens + eval_samples * config.eval.max_new_tokens
    if config.model in EMBEDDED_MODELS:
        minutes = tokens / EMBEDDED_DECODE_TOK_S / 60
        return (f"estimate (stages to run): <= {tokens} generated tokens, ~{math.ceil(minutes)} min of sampling "
                f"at {EMBEDDED_DECODE_TOK_S} tok/s (docs/policy.md), plus judging and training")
    return f"estimate (stages to run): <= {tokens} generated tokens; no measured tok/s for {config.model} on this machine"


def arm_option_problems(config: RunConfig, source: str) -> list[str]:
    """Tree and train options of every arm (methods and variants), validated by their configs."""
    from treeplay.train import TrainConfig
    from treeplay.tree import TreeConfig

    problems = []
    for arm in config.arms():
        where = "tree" if arm.name in METHOD_ORDER else f"variants.{arm.name}.tree"
        try:
            TreeConfig(**arm.tree)
        except (TypeError, ValueError) as exc:
            problems.append(f"{source}: field {where}: {exc}")
        where = "train" if arm.name in METHOD_ORDER else f"variants.{arm.name}.train"
        try:
            TrainConfig.from_dict({**arm.train, "method": arm.method}, source=f"{source}: field {where}")
        except (TypeError, ValueError) as exc:
            problems.append(str(exc) if str(exc).startswith(source) else f"{source}: field {where}: {exc}")
    return problems


def check_run(config: RunConfig, run_dir: Path, *, source: str, fingerprint: str | None = None,
              select: Selection | None = None, bundle: Path | None = None,
              reuse_from: Sequence[Path] = ()) -> CheckReport:  # fmt: skip
    """All blockers of a run and its plan (which stages are done, which would run), without loading
    a model or judging anything. `fingerprint`: the oracle's in the stage hashes (default: this one's);
    `select`: the arms and seeds `treeplay run --only/--seed` would run (the other stages count as not run);
    `bundle`: the file `treeplay run --bundle` would rewrite after every stage; `reuse_from`: run dirs
    whose finished stages of the same inputs the run copies in (counted as done, listed in the plan)."""
    from treeplay.eval.evaluate import is_humaneval, resolve_bench
    from treeplay.oracle import default_oracle

    report = CheckReport()
    report.problems += arm_option_problems(config, source)
    if report.problems:
        return report
    oracle = default_oracle()
    train: list[Task] = []
    try:
        train = load_train_tasks(config)
    except (OSError, ValueError) as exc:
        report.problems.append(f"{source}: field train_tasks: {exc}")
    if not train and not report.problems:
        path = resolve_data_path(config, config.task_source().path)
        report.problems.append(f"{source}: field train_tasks: no tasks in {path} after the filters")
    blocker = language_blocker(source, "train_tasks", train, oracle)
    report.problems += [blocker] if blocker else []
    needed = {t.language for t in train}
    benches: dict[str, int] = {}
    for bench in config.eval.benches:
        try:
            tasks = resolve_bench(bench, data_root(config), limit=config.eval.limits.get(bench, config.eval.limit))
        except (OSError, ValueError, RuntimeError) as exc:
            report.problems.append(f"{source}: field eval.benches: {exc}")
            continue
        benches[bench] = len(tasks)
        if is_humaneval(tasks):  # utility bench: tests only, no verdicts
            continue
        blocker = language_blocker(source, f"eval.benches ({bench})", tasks, oracle)
        report.problems += [blocker] if blocker else []
        needed |= {t.language for t in tasks}
    report.problems += analyzer_blockers(source, {x for x in needed if oracle.config.has_judge(x)}, oracle)
    report.problems += extras_blockers(config, source)
    blocker = run_dir_blocker(run_dir, source)
    report.problems += [blocker] if blocker else []
    blocker = bundle_blocker(bundle, run_dir, source) if bundle is not None else None
    report.problems += [blocker] if blocker else []
    fingerprint = fingerprint or str(oracle.fingerprint())
    report.problems += [f"{source}: --reuse-from {d}: {why}" for d in reuse_from if (why := _not_a_run_dir(d, run_dir))]
    planned = planned_stages(config, run_dir, train, fingerprint)
    reused = _reusable(planned, run_dir, reuse_from, select)
    planned = [PlannedStage(p.stage, True) if p.stage.name in reused else p for p in planned]
    left = 0
    if select:
        left = sum(not p.done and not select.selects(p.stage.arm, p.stage.seed) for p in planned)
        planned, problem = _selected_stages(planned, select, config.seeds)
        report.problems += [f"{source}: {problem}"] if problem else []
    report.plan = plan_lines(config, train, benches, planned, (left, select.label() if select else ""))
    note = superseded_note(planned, fingerprint, RunLayout(run_dir).superseded_dir)
    if note:
        report.plan.insert(2, f"note: {note}")
    if reuse_from:
        report.plan.insert(2, f"reuse: {len(reused)} stage(s) copied from {', '.join(map(str, reuse_from))} "
                              f"(same inputs, finished there){': ' + '; '.join(reused) if reused else ''}")
    report.to_run = [p.stage.name for p in planned if not p.done]
    report.problems += missing_model_blockers(planned, source)
    return report


def _not_a_run_dir(directory: Path, run_dir: Path) -> str | None:
    """Why `--reuse-from DIR` cannot be a source of stages, or None."""
    if not (directory / "config.yaml").is_file():
        return "not a run dir (no config.yaml; unbundle its bundle first?)"
    if directory.resolve() == run_dir.resolve():
        return "is this run's own dir"
    return None


def _reusable(planned: list[PlannedStage], run_dir: Path, sources: Sequence[Path],
              select: Selection | None) -> list[str]:  # fmt: skip
    """The names of the (selected) stages `--reuse-from` would copy in."""
    from treeplay.run_reuse import find_reusable

    return [r.stage.name for r in find_reusable(planned, run_dir, sources, select)]


def _selected_stages(planned: list[PlannedStage], select: Selection,
                     seeds: Sequence[int]) -> tuple[list[PlannedStage], str | None]:  # fmt: skip
    """The plan with the stages outside `select` marked as not to run (as if done), and the
    `--only`/`--seed` problem (an unknown arm or seed, shared trees not sampled yet), or None."""
    from treeplay.pipeline import ConfigError, check_selection

    try:
        check_selection(planned, select, seeds)
    except ConfigError as exc:
        return planned, str(exc)
    return [p if select.selects(p.stage.arm, p.stage.seed) else PlannedStage(p.stage, True) for p in planned], None


def planned_stages(config: RunConfig, run_dir: Path, train: Sequence[Task], fingerprint: str) -> list[PlannedStage]:
    """The run's stages in order, each done or not (the run dir is only read)."""
    from treeplay.pipeline import Pipeline

    return Pipeline(config, run_dir, fingerprint=fingerprint, train_tasks=train).plan()
