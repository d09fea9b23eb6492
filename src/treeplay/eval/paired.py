"""Paired differences between arms: per-task scores, per-task differences, a paired bootstrap CI.

All arms of a run are evaluated on the same tasks and seeds, so arm A and a reference R (SFT or the
base model) can be compared task by task: d_t = score_A(t) - score_R(t). The spread of d_t is much
smaller than the spread of the per-arm rates (a hard task is hard for both arms), which is what lets
a small run separate methods. Definitions (also in docs/eval.md):

- a task's score is averaged over its samples (n per task), then over the seeds that define it;
- `secure`: secure share of the parseable, non-empty programs (SPR-style);
  `strict_secure`: secure non-empty share of all samples (unparseable, empty and nonfunctional
  programs count as failures);
  `vulnerable`: vulnerable share of the parseable, non-empty programs (lower is better).
  Samples the oracle could not judge (`incomplete`, `unsupported`: see `Outcome.counted`) are left out
  of every denominator; a task without a sample that the metric's denominator accepts has no score;
- `func` / `func_sec` (benches with tests): functional pass / functional and security pass, over
  the samples whose tests ran (outcome `error` is neither pass nor fail, as in `metrics.py`);
  `pass`: HumanEval's functional pass;
- only tasks scored in both arms are paired (a task missing in one arm is dropped from the pair);
- mean of d_t in percentage points, percentile bootstrap 95% CI over tasks (2000 resamples, tasks
  drawn with replacement, fixed RNG seed), tasks with A > R and A < R, and the mean difference of
  every seed on its own (seed-level view);
- with two or more seeds also a two-level CI (`two_level_bootstrap_ci`, the paired Multi-Bootstrap
  of Sellam et al., ICLR 2022): each resample draws the seeds with replacement (arm and reference
  of a seed stay together) and the tasks with replacement (one draw shared by all seeds and both
  arms), so the CI also covers "another training seed gives another model". A seed that only one
  of the two arms has cannot be paired: it is left out of the two-level CI and named in
  `TwoLevelCI.excluded` (the report prints it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from treeplay.eval.evaluate import GENERATIONS_FILE
from treeplay.eval.metrics import (
    Outcome,
    task_pass_at_k,
    task_spr,
    task_strict_spr,
    task_vulnerable_attempted,
)
from treeplay.eval.records import iter_generations
from treeplay.run_layout import RunLayout

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0
REFERENCES = ("sft", "base")
SECURITY_METRICS = ("secure", "strict_secure", "vulnerable")
TEST_METRICS = ("func", "func_sec")
LOWER_IS_BETTER = frozenset({"vulnerable"})
_TIE = 1e-9  # |d| below this is a tie (seed means of equal scores may differ in the last bit)

TaskScores = dict[str, float]  # task id -> score in [0, 1]
# bench -> metric -> arm -> seed -> task scores
ScoreTable = dict[str, dict[str, dict[str, dict[int, TaskScores]]]]

_METRICS: dict[str, Callable[[Sequence[Outcome]], float | None]] = {
    "secure": lambda gens: task_spr([g for g in gens if g.counted]),
    "strict_secure": lambda gens: task_strict_spr([g for g in gens if g.counted]),
    "vulnerable": lambda gens: task_vulnerable_attempted([g for g in gens if g.counted]),
    "func": task_pass_at_k(1, security=False),
    "func_sec": task_pass_at_k(1, security=True),
    "pass": task_pass_at_k(1, security=False),
}


# ---- per-task scores


def read_outcomes(path: Path) -> tuple[str | None, list[Outcome]]:
    """(bench name from the records, outcomes of the complete tasks) of one generations.jsonl.

    A task with fewer samples than the others (evaluation interrupted) is left out, as the report
    does. A bad record raises `GenerationError` naming the file, the line and the field.
    """
    bench: str | None = None
    outcomes: list[Outcome] = []
    for generation in iter_generations(path):
        bench = bench or generation.bench or None
        outcomes.append(Outcome.from_generation(generation))
    counts: dict[str, int] = defaultdict(int)
    for o in outcomes:
        counts[o.task_id] += 1
    full = max(counts.values(), default=0)
    return bench, [o for o in outcomes if counts[o.task_id] == full]


def bench_metrics(bench: str, outcomes: Sequence[Outcome]) -> tuple[str, ...]:
    """The metrics a bench supports: HumanEval `pass`; the security ones when the oracle judged
    something; `func`/`func_sec` when tests ran."""
    if bench == "humaneval":
        return ("pass",)
    names: tuple[str, ...] = ()
    if any(o.status is not None for o in outcomes):
        names += SECURITY_METRICS
    if any(o.functional_pass is not None for o in outcomes):
        names += TEST_METRICS
    return names


def task_scores(outcomes: Iterable[Outcome], metric: str) -> TaskScores:
    """One seed's per-task score (mean over the task's samples); tasks where it is undefined are absent."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.task_id].append(o)
    scores = {task: _METRICS[metric](gens) for task, gens in groups.items()}
    return {task: value for task, value in scores.items() if value is not None}


def collect_scores(run_dir: Path | str) -> ScoreTable:
    """Per-task scores of every seed / arm / bench / metric found under RUN/seed-S/<arm>/eval/."""
    table: ScoreTable = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for seed, arm, bench_dir in RunLayout(Path(run_dir)).found_evals():
        path = bench_dir / GENERATIONS_FILE
        if not path.exists():
            continue
        named, outcomes = read_outcomes(path)
        if not outcomes:
            continue
        bench = named or bench_dir.name
        for metric in bench_metrics(bench, outcomes):
            table[bench][metric][arm][seed] = task_scores(outcomes, metric)
    return table


def mean_over_seeds(per_seed: Mapping[int, TaskScores]) -> TaskScores:
    """A task's score averaged over the seeds that define it."""
    values: dict[str, list[float]] = defaultdict(list)
    for scores in per_seed.values():
        for task, value in scores.items():
            values[task].append(value)
    return {task: sum(v) / len(v) for task, v in values.items()}


# ---- paired differences


@dataclass(frozen=True)
class TwoLevelCI:
    """95% CI (pp) of the mean per-seed difference with seeds and tasks resampled (see module doc)."""

    low_pp: float
    high_pp: float
    seeds: tuple[int, ...]  # the seeds both arms have: the ones resampled
    excluded: tuple[tuple[str, int], ...] = ()  # (arm, seed) of seeds only one of the two arms has

    @property
    def excludes_zero(self) -> bool:
        return self.low_pp > 0 or self.high_pp < 0


@dataclass(frozen=True)
class PairedDiff:
    """Arm vs reference on one bench and metric; differences in percentage points."""

    arm: str
    reference: str
    bench: str
    metric: str
    mean_pp: float
    ci_low_pp: float
    ci_high_pp: float
    n_tasks: int
    wins: int  # tasks with arm score > reference score
    losses: int  # tasks with arm score < reference score
    per_seed_pp: tuple[tuple[int, float], ...] = ()
    two_level: TwoLevelCI | None = None  # runs where the two arms have >= 2 seeds between them

    @property
    def excludes_zero(self) -> bool:
        return self.ci_low_pp > 0 or self.ci_high_pp < 0

    @property
    def better(self) -> bool | None:
        """True/False when the CI excludes 0 (direction-aware: `vulnerable` is better when lower)."""
        if not self.excludes_zero:
            return None
        return (self.mean_pp < 0) if self.metric in LOWER_IS_BETTER else (self.mean_pp > 0)

    @property
    def better_two_level(self) -> bool | None:
        """As `better`, for the two-level CI (None also when there is none)."""
        if self.two_level is None or not self.two_level.excludes_zero:
            return None
        return (self.two_level.high_pp < 0) if self.metric in LOWER_IS_BETTER else (self.two_level.low_pp > 0)


def paired_bootstrap_ci(
    diffs: Sequence[float],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the mean of per-task differences (tasks resampled with replacement)."""
    data = np.asarray(diffs, dtype=float)
    if data.size == 0:
        raise ValueError("paired_bootstrap_ci: no task differences")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))
    return min(low, high), max(low, high)


def two_level_bootstrap_ci(
    diffs: np.ndarray,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the mean per-seed difference, seeds and tasks resampled (paired Multi-Bootstrap).

    `diffs[k, t]`: seed k's arm-minus-reference difference on task t, NaN where that seed does not
    score the task in both arms. Each resample draws the task columns with replacement (one draw for
    every seed) and the seed rows with replacement; its value is the mean, over the drawn seeds, of
    each seed's mean difference on the drawn tasks it scores. The task draw comes first from the
    same RNG as in `paired_bootstrap_ci`, so with one seed both CIs agree (up to float rounding).
    """
    data = np.asarray(diffs, dtype=float)
    if data.ndim != 2 or data.size == 0 or np.isnan(data).all():
        raise ValueError(
            f"two_level_bootstrap_ci: need a seeds x tasks matrix with a value, got shape {data.shape}"
        )
    k, n = data.shape
    rng = np.random.default_rng(seed)
    tasks = rng.integers(0, n, size=(samples, n))
    seeds = rng.integers(0, k, size=(samples, k))
    task_counts = _row_counts(tasks, n)  # samples x n: how often each task was drawn
    seed_counts = _row_counts(seeds, k)  # samples x k
    scored = ~np.isnan(data)
    sums = task_counts @ np.where(scored, data, 0.0).T  # samples x k
    counts = task_counts @ scored.T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        seed_means = sums / counts  # NaN: the seed scores none of the drawn tasks
        weights = np.where(np.isnan(seed_means), 0.0, seed_counts)
        means = (weights * np.nan_to_num(seed_means)).sum(axis=1) / weights.sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = float(np.nanquantile(means, alpha)), float(np.nanquantile(means, 1.0 - alpha))
    return min(low, high), max(low, high)


def _row_counts(draws: np.ndarray, size: int) -> np.ndarray:
    """rows x size: how often each index occurs in each row of `draws`."""
    offsets = draws + size * np.arange(draws.shape[0])[:, None]
    return (
        np.bincount(offsets.ravel(), minlength=draws.shape[0] * size)
        .reshape(draws.shape[0], size)
        .astype(float)
    )


def seed_task_diffs(
    arm: str, reference: str, arm_seeds: Mapping[int, TaskScores], ref_seeds: Mapping[int, TaskScores]
) -> tuple[tuple[int, ...], np.ndarray, tuple[tuple[str, int], ...]]:
    """(paired seeds, seeds x tasks difference matrix with NaN where unpaired, excluded (arm, seed)).

    Only seeds both arms have are paired (both models trained from that seed); a seed of one arm
    alone is returned in `excluded`. Columns: the tasks some paired seed scores in both arms.
    """
    seeds = tuple(sorted(arm_seeds.keys() & ref_seeds.keys()))
    alone = [(arm, s) for s in arm_seeds.keys() - ref_seeds.keys()]
    alone += [(reference, s) for s in ref_seeds.keys() - arm_seeds.keys()]
    excluded = tuple(sorted(alone, key=lambda pair: (pair[1], pair[0])))
    tasks = sorted({t for s in seeds for t in arm_seeds[s].keys() & ref_seeds[s].keys()})
    matrix = np.full((len(seeds), len(tasks)), np.nan)
    for row, s in enumerate(seeds):
        for col, task in enumerate(tasks):
            if task in arm_seeds[s] and task in ref_seeds[s]:
                matrix[row, col] = arm_seeds[s][task] - ref_seeds[s][task]
    return seeds, matrix, excluded


def two_level_ci(
    arm: str,
    reference: str,
    arm_seeds: Mapping[int, TaskScores],
    ref_seeds: Mapping[int, TaskScores],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> TwoLevelCI | None:
    """The two-level CI of `arm` vs `reference` (None: no seed with a task both arms score)."""
    return _two_level(*seed_task_diffs(arm, reference, arm_seeds, ref_seeds), samples=samples, seed=seed)


def _two_level(seeds: tuple[int, ...], matrix: np.ndarray, excluded: tuple[tuple[str, int], ...], *,
               samples: int, seed: int) -> TwoLevelCI | None:  # fmt: skip
    if matrix.size == 0:
        return None
    low, high = two_level_bootstrap_ci(matrix, samples=samples, seed=seed)
    return TwoLevelCI(100.0 * low, 100.0 * high, seeds, excluded)


def _task_diffs(arm: TaskScores, ref: TaskScores) -> list[float]:
    return [arm[t] - ref[t] for t in sorted(arm.keys() & ref.keys())]


def paired_difference(
    bench: str,
    metric: str,
    arm: str,
    reference: str,
    arm_seeds: Mapping[int, TaskScores],
    ref_seeds: Mapping[int, TaskScores],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDiff | None:
    """Paired difference of `arm` vs `reference` over the tasks both score (None: no common task).

    Each task's score is averaged over the seeds both arms have (a seed only one arm has would
    compare that arm's extra model with nothing: it is left out here, as in the two-level CI, which
    names it); over all seeds when the arms share none."""
    common = arm_seeds.keys() & ref_seeds.keys() or arm_seeds.keys() | ref_seeds.keys()
    diffs = _task_diffs(mean_over_seeds({s: v for s, v in arm_seeds.items() if s in common}),
                        mean_over_seeds({s: v for s, v in ref_seeds.items() if s in common}))  # fmt: skip
    if not diffs:
        return None
    low, high = paired_bootstrap_ci(diffs, samples=samples, seed=seed)
    seeds, matrix, excluded = seed_task_diffs(arm, reference, arm_seeds, ref_seeds)  # one row per paired seed
    per_seed = []
    if len(seeds) >= 2:
        per_seed = [(s, 100.0 * float(np.nanmean(row))) for s, row in zip(seeds, matrix, strict=True)
                    if not np.isnan(row).all()]  # fmt: skip
    two_level = None
    if len(arm_seeds.keys() | ref_seeds.keys()) >= 2:
        two_level = _two_level(seeds, matrix, excluded, samples=samples, seed=seed)
    return PairedDiff(
        arm=arm, reference=reference, bench=bench, metric=metric,
        mean_pp=100.0 * float(np.mean(diffs)), ci_low_pp=100.0 * low, ci_high_pp=100.0 * high,
        n_tasks=len(diffs), wins=sum(d > _TIE for d in diffs), losses=sum(d < -_TIE for d in diffs),
        per_seed_pp=tuple(per_seed), two_level=two_level,
    )  # fmt: skip


def _inverse(arm: str, ref: str, references: Sequence[str]) -> bool:
    """base vs sft is sft vs base negated: one reference is compared only with the earlier ones."""
    return arm in references and references.index(arm) > references.index(ref)


def paired_differences(
    table: ScoreTable, arms: Sequence[str], *, references: Sequence[str] = REFERENCES
) -> list[PairedDiff]:
    """Every arm vs every reference present, per bench and metric (arms in the order given)."""
    out: list[PairedDiff] = []
    for arm in arms:
        for bench, metrics in table.items():
            for metric, by_arm in metrics.items():
                for ref in references:
                    if ref == arm or arm not in by_arm or ref not in by_arm or _inverse(arm, ref, references):
                        continue
                    diff = paired_difference(bench, metric, arm, ref, by_arm[arm], by_arm[ref])
                    if diff is not None:
                        out.append(diff)
    return out


def headline_metrics(bench: str, metrics: Iterable[str], heldout: str) -> list[str]:
    """The forest plot's metrics of a bench: HumanEval pass, func_sec where tests ran, the held-out
    CWEs' vulnerable share, SecurityEval strict_secure and secure, secure elsewhere."""
    present = set(metrics)
    if bench == "humaneval":
        wanted = ["pass"]
    elif "func_sec" in present:
        wanted = ["func_sec"]
    elif bench == heldout:
        wanted = ["vulnerable"]
    elif bench == "securityeval":
        wanted = ["strict_secure", "secure"]
    else:
        wanted = ["secure"]
    return [m for m in wanted if m in present]


def paired_contrasts(table: ScoreTable, contrasts: Sequence[tuple[str, str]]) -> list[PairedDiff]:
    """`arm` vs `reference` for the given (arm, reference) pairs only, per bench and metric."""
    out: list[PairedDiff] = []
    for arm, ref in contrasts:
        for bench, metrics in table.items():
            for metric, by_arm in metrics.items():
                if arm in by_arm and ref in by_arm:
                    diff = paired_difference(bench, metric, arm, ref, by_arm[arm], by_arm[ref])
                    if diff is not None:
                        out.append(diff)
    return out


def method_contrasts(arms: Sequence[str], parent: Mapping[str, str]) -> list[tuple[str, str]]:
    """The comparisons beside "vs SFT / vs base": TSP vs unstructured self-play (the tree is the
    only difference when both use the same loss) and every ablation vs the method it varies
    (`parent`: arm name -> method, e.g. tsp-dpo -> tsp)."""
    out = [("tsp", "selfplay")] if "tsp" in arms and "selfplay" in arms else []
    out += [(arm, parent[arm]) for arm in arms if parent.get(arm, arm) != arm and parent[arm] in arms]
    return out
