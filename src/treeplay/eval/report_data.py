"""The report's input: everything it reads from a run dir, found with `treeplay.run_layout`.

Works with any subset of arms/seeds/benches present (what is missing becomes a note, not a crash),
and holds the report's model: sections of plain blocks (text, table, image, pre, tree) that
`treeplay.eval.report_render` renders to Markdown and HTML.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from treeplay.eval.evaluate import GENERATIONS_FILE, METRICS_FILE, compute_metrics
from treeplay.eval.metrics import METRICS_VERSION
from treeplay.eval.nonfunctional import NonfunctionalSummary, summarise
from treeplay.eval.records import read_generations
from treeplay.jsonl import read_jsonl
from treeplay.run_layout import RunLayout
from treeplay.tree.pair_contrast import PairContrast, contrast_by_mode
from treeplay.tree.records import Tree, read_pairs, read_trees

METHODS = ("base", "sft", "selfplay", "tsp")
METHOD_NAMES = {"base": "Base model", "sft": "SFT (golden)", "selfplay": "Self-play (root pairs)", "tsp": "TSP (tree)"}
HELDOUT_BENCH = "sec-eval:not-trained"


@dataclass(frozen=True)
class EvalResult:
    seed: int
    method: str
    bench: str
    metrics: dict[str, Any]
    # "" when read from metrics.json; else why it was recomputed from generations.jsonl:
    # "missing" (unfinished evaluation) or "stale (metrics vN)" (older metric definitions)
    recomputed: str = ""


@dataclass
class RunData:
    run_dir: Path
    config_text: str | None = None
    seeds: list[int] = field(default_factory=list)
    evals: list[EvalResult] = field(default_factory=list)
    train_logs: dict[tuple[int, str, int], list[dict[str, Any]]] = field(default_factory=dict)
    budgets: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    trees: list[tuple[int, str, int, Tree]] = field(default_factory=list)  # seed, method, round, tree
    # seed, method, round -> what its training pairs contrast besides security, per pair mode
    pair_contrasts: dict[tuple[int, str, int], list[PairContrast]] = field(default_factory=dict)
    # seed, method, bench -> the evaluation's nonfunctional answers and why (from generations.jsonl)
    nonfunctional: dict[tuple[int, str, str], NonfunctionalSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def evaluated_seeds(self) -> list[int]:
        """The seeds with at least one evaluation (a seed whose run has only begun has none yet)."""
        return sorted({e.seed for e in self.evals})

    @property
    def methods(self) -> list[str]:
        present = {e.method for e in self.evals} | {m for _, m in self.budgets} | {k[1] for k in self.train_logs}
        present |= {method for _, method, _, _ in self.trees}
        return [m for m in METHODS if m in present] + sorted(present - set(METHODS))

    @property
    def benches(self) -> list[str]:
        names = {e.bench for e in self.evals}
        return sorted(names, key=bench_order)

    def result(self, seed: int, method: str, bench: str) -> EvalResult | None:
        return next((e for e in self.evals if (e.seed, e.method, e.bench) == (seed, method, bench)), None)


def bench_order(bench: str) -> tuple[int, str]:
    """Headline security bench first, held-out CWEs after, functional and utility benches last."""
    if bench == "securityeval":
        return (0, bench)
    if bench == HELDOUT_BENCH:
        return (2, bench)
    if bench.startswith("sec-eval"):
        return (1, bench)
    if bench.startswith("cweval") or bench == "sallm":
        return (3, bench)
    return (4 if bench == "humaneval" else 5, bench)


def _read_eval(seed: int, method: str, bench_dir: Path) -> EvalResult | None:
    """An evaluation's metrics: its metrics.json when written under today's metric definitions,
    else recomputed from generations.jsonl (unfinished evaluation, or an older `METRICS_VERSION`:
    the stored file's other fields, such as settings and timings, are kept; nothing is rewritten)."""
    metrics_path = bench_dir / METRICS_FILE
    stored = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else None
    current = stored is not None and stored.get("metrics_version") == METRICS_VERSION
    recomputed = None if current else _recompute_metrics(bench_dir, (stored or {}).get("bench"))
    if recomputed is None:
        if stored is None:
            return None
        return EvalResult(seed, method, str(stored.get("bench") or bench_dir.name), stored)
    reason = "missing" if stored is None else f"stale (metrics v{stored.get('metrics_version', 1)})"
    return EvalResult(seed, method, recomputed["bench"], {**(stored or {}), **recomputed}, recomputed=reason)


def _recompute_metrics(bench_dir: Path, bench: str | None) -> dict[str, Any] | None:
    """Metrics of the complete tasks in generations.jsonl (None: no generations); `bench` is the
    name metrics.json gave, else the records' own."""
    gen_path = bench_dir / GENERATIONS_FILE
    if not gen_path.exists():
        return None
    records = read_generations(gen_path)
    if not records:
        return None
    bench = bench or records[0].bench or bench_dir.name
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.task_id] += 1
    n = max(counts.values())
    records = [r for r in records if counts[r.task_id] == n]  # complete tasks only; never rewrite here
    metrics = compute_metrics(records, humaneval=bench == "humaneval")
    metrics.update(bench=bench, generations=len(records), tasks_evaluated=len({r.task_id for r in records}))
    return metrics


def _read_jsonl_safely(path: Path, data: RunData) -> list[dict[str, Any]]:
    try:
        return list(read_jsonl(path, tolerate_truncated_tail=True))
    except ValueError as exc:
        data.notes.append(f"could not read {path.relative_to(data.run_dir)}: {exc}")
        return []


def _read_trees_safely(path: Path, data: RunData) -> list[Tree]:
    """The tree stage's records; a bad line or record (named by file, line and field) drops the
    file's trees with a note, like unreadable JSON."""
    try:
        return read_trees(path, tolerate_truncated_tail=True)
    except ValueError as exc:
        data.notes.append(f"could not read {path.relative_to(data.run_dir)}: {exc}")
        return []


def _read_pair_contrasts(path: Path, data: RunData) -> list[PairContrast]:
    """What the data stage's pairs contrast besides security; an unreadable file (named with line
    and field) becomes a note and no contrasts."""
    try:
        return contrast_by_mode(read_pairs(path))
    except ValueError as exc:
        data.notes.append(f"could not read {path.relative_to(data.run_dir)}: {exc}")
        return []


def _read_nonfunctional(bench_dir: Path, data: RunData) -> NonfunctionalSummary | None:
    """Why the evaluation's answers are nonfunctional (None: no generations file); an unreadable file
    (named with line and field) becomes a note."""
    path = bench_dir / GENERATIONS_FILE
    if not path.exists():
        return None
    try:
        return summarise(g.verdict for g in read_generations(path))
    except ValueError as exc:
        data.notes.append(f"could not read {path.relative_to(data.run_dir)}: {exc}")
        return None


# The trainer's metrics.jsonl names (TRL-style) -> the report's names.
_LOG_KEYS = {
    "rewards/margin": "reward_margin",
    "rewards/accuracy": "pref_accuracy",
    "logps/chosen": "chosen_logps",
    "logps/rejected": "rejected_logps",
}


def _normalise_log_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **{new: row[old] for old, new in _LOG_KEYS.items() if old in row and new not in row}}


def collect_run(run_dir: Path | str) -> RunData:
    """Everything the report needs from a run dir; unreadable parts become notes, not crashes."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run dir {root} does not exist")
    layout = RunLayout(root)
    data = RunData(run_dir=root)
    config = layout.config_file
    data.config_text = config.read_text(encoding="utf-8") if config.exists() else None
    data.seeds = layout.seeds()
    for seed in data.seeds:
        for arm in layout.arms(seed):
            _collect_arm(data, layout, seed, arm)
    _drop_unconfigured_benches(data)
    stale = [e for e in data.evals if e.recomputed.startswith("stale")]
    if stale:
        data.notes.append(
            f"{len(stale)} evaluation(s) were written under older metric definitions "
            f"({', '.join(sorted({e.recomputed for e in stale}))}); their metrics were recomputed from "
            f"generations.jsonl under metrics v{METRICS_VERSION} (docs/eval.md, 'Metric versions')"
        )
    return data


def _config_dict(config_text: str | None) -> dict[str, Any]:
    """The run's resolved config as a mapping; {} when it is missing or unreadable."""
    if not config_text:
        return {}
    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def configured_benches(config_text: str | None) -> list[str] | None:
    """The run config's `eval.benches`, or None when there is no readable config to say."""
    benches = (_config_dict(config_text).get("eval") or {}).get("benches")
    return [str(b) for b in benches] if isinstance(benches, list) else None


def _drop_unconfigured_benches(data: RunData) -> None:
    """Evaluations of benches the run's config does not name (a run dir seeded with `cp -al` from
    another run carries that run's eval dirs) are left out of the report, with one note."""
    wanted = configured_benches(data.config_text)
    if wanted is None:
        return
    foreign = [e for e in data.evals if e.bench not in wanted]
    if not foreign:
        return
    data.evals = [e for e in data.evals if e.bench in wanted]
    names = ", ".join(sorted({e.bench for e in foreign}, key=bench_order))
    data.notes.append(
        f"{len(foreign)} evaluation(s) on benches this run's config does not name ({names}) were left "
        "out: they come from another run whose directories this one was seeded from"
    )


def _collect_arm(data: RunData, layout: RunLayout, seed: int, method: str) -> None:
    """One arm of one seed: its evaluations, budget, training logs and trees."""
    for bench_dir in layout.eval_dirs(seed, method):
        try:
            result = _read_eval(seed, method, bench_dir)
        except ValueError as exc:  # metrics to recompute from a generations.jsonl with a bad record
            data.notes.append(f"could not read {bench_dir.relative_to(data.run_dir)}: {exc}")
            continue
        if result is not None:
            data.evals.append(result)
            summary = _read_nonfunctional(bench_dir, data)
            if summary is not None:
                data.nonfunctional[(seed, method, result.bench)] = summary
            if result.recomputed == "missing":
                data.notes.append(
                    f"seed {seed} / {method} / {result.bench}: metrics.json missing (evaluation "
                    "unfinished?); metrics recomputed from the generations written so far"
                )
    budget = layout.budget(seed, method)
    if budget.exists():
        data.budgets[(seed, method)] = json.loads(budget.read_text(encoding="utf-8"))
    for round_no in layout.rounds(seed, method):
        train_dir = layout.round_dir(seed, method, round_no, "train")
        for log in (train_dir / "metrics.jsonl", train_dir / "log.jsonl"):
            if log.exists():
                rows = [_normalise_log_row(r) for r in _read_jsonl_safely(log, data)]
                data.train_logs[(seed, method, round_no)] = rows
                break
        trees = layout.round_dir(seed, method, round_no, "data") / "trees.jsonl"
        if trees.exists():
            data.trees.extend((seed, method, round_no, t) for t in _read_trees_safely(trees, data))
        pairs = layout.round_dir(seed, method, round_no, "data") / "pairs.jsonl"
        if pairs.exists():
            contrasts = _read_pair_contrasts(pairs, data)
            if contrasts:
                data.pair_contrasts[(seed, method, round_no)] = contrasts


def variant_benches(config_text: str | None) -> dict[str, list[str]]:
    """The benches each variant of the run's resolved config is evaluated on, where it names a
    subset (`variants.NAME.benches`); {} without a config or variants."""
    variants = _config_dict(config_text).get("variants")
    if not isinstance(variants, dict):
        return {}
    return {name: list(v["benches"]) for name, v in variants.items()
            if isinstance(v, dict) and isinstance(v.get("benches"), list)}  # fmt: skip


def missing_parts(data: RunData) -> list[str]:
    """Human-readable list of what a full run would have that this one lacks."""
    missing: list[str] = []
    if data.config_text is None:
        missing.append("config.yaml (the resolved config) is missing")
    if not data.seeds:
        return [*missing, "no seed-<s>/ directories: nothing was run yet"]
    absent = [m for m in METHODS if m not in data.methods]
    if absent:
        missing.append("methods not run: " + ", ".join(absent))
    designed = variant_benches(data.config_text)
    layout = RunLayout(data.run_dir)
    not_run = {m: [s for s in data.seeds if not layout.arm_dir(s, m).is_dir()] for m in data.methods}
    missing += [f"{m}: not run on seed {', '.join(map(str, seeds))} (no seed-S/{m}/ directory)"
                for m, seeds in not_run.items() if seeds]  # fmt: skip
    for seed in data.seeds:
        for method in [m for m in data.methods if seed not in not_run[m]]:
            for bench in data.benches:
                if data.result(seed, method, bench) is not None:
                    continue
                if method in designed and bench not in designed[method]:
                    missing.append(f"seed {seed} / {method}: not evaluated on {bench} (by design: the config's "
                                   f"variants.{method}.benches)")  # fmt: skip
                else:
                    missing.append(f"seed {seed} / {method}: no evaluation on {bench}")
            if method != "base":
                if not any(k[:2] == (seed, method) for k in data.train_logs):
                    missing.append(f"seed {seed} / {method}: no training log")
                if (seed, method) not in data.budgets:
                    missing.append(f"seed {seed} / {method}: no budget.json")
                for why in data.budgets.get((seed, method), {}).get("untrained") or []:
                    missing.append(f"seed {seed} / {method}: UNTRAINED, evaluated as the model it started from ({why})")
    if HELDOUT_BENCH not in data.benches:
        missing.append(f"no held-out-CWE evaluation ({HELDOUT_BENCH}): vulnerability reduction not reported")
    if not any(b.startswith("cweval") or b == "sallm" for b in data.benches):
        missing.append("no CWEval or SALLM evaluation: func-sec@1 not reported")
    if "humaneval" not in data.benches:
        missing.append("no HumanEval evaluation: utility (pass@1) not reported")
    return missing


def logs_by_run(data: RunData) -> dict[tuple[int, str], list[tuple[int, list[dict[str, Any]]]]]:
    """The training logs per (seed, arm), rounds in order."""
    runs: dict[tuple[int, str], list[tuple[int, list[dict[str, Any]]]]] = defaultdict(list)
    for (seed, method, round_no), log in sorted(data.train_logs.items()):
        runs[(seed, method)].append((round_no, log))
    return dict(runs)


# ---- the report's model: sections of blocks


@dataclass
class Block:
    kind: str  # "text" | "table" | "image" (PNG) | "svg" (SVG text in `image`) | "pre" | "tree"
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: bytes = b""
    name: str = ""
    tree: Tree | None = None  # for kind "tree"

    def __post_init__(self) -> None:
        if self.kind == "tree" and self.tree is None:
            raise ValueError("a tree block needs its tree")


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
