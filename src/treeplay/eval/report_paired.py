"""Report sections for the paired differences (table + forest plot) and the per-round chart.

Called by `treeplay.eval.report.build_sections`; the statistics live in `treeplay.eval.paired`,
the per-round figures in `treeplay.eval.rounds`, the SVG drawing in `treeplay.eval.svg`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import comb

from treeplay.eval.paired import (
    LOWER_IS_BETTER,
    REFERENCES,
    PairedDiff,
    TwoLevelCI,
    collect_scores,
    headline_metrics,
    method_contrasts,
    paired_contrasts,
    paired_differences,
)
from treeplay.eval.report_data import HELDOUT_BENCH, Block, EvalResult, RunData, Section, bench_order
from treeplay.eval.report_tables import bench_kind, format_over_seeds, headline_columns, metric_value
from treeplay.eval.rounds import LogKey, RoundRow, round_models, round_rows
from treeplay.eval.svg import PALETTE, ForestGroup, ForestRow, LinePanel, forest_svg, line_chart_svg

METRIC_ORDER = ("strict_secure", "secure", "vulnerable", "func_sec", "func", "pass")
FOREST_FILE = "forest.svg"
ROUNDS_FILE = "rounds.svg"
PAIRED_HEADERS = ["arm vs reference", "bench", "metric", "mean diff (pp)", "95% CI (pp)", "tasks", "A>R / A<R",
                  "per seed (pp)", "CI excludes 0"]  # fmt: skip
# runs with >= 2 seeds: the task-level CI and the two-level one (seeds and tasks resampled) side by side
SEEDS_HEADERS = ["arm vs reference", "bench", "metric", "mean diff (pp)", "95% CI, tasks resampled (pp)", "tasks",
                 "A>R / A<R", "per seed (pp)", "95% CI, seeds and tasks resampled (pp)",
                 "tasks-CI excludes 0", "seeds-and-tasks-CI excludes 0"]  # fmt: skip
_EXPLAIN = (
    "Per task: the arm's score minus the reference's (same tasks, same seeds), each score averaged "
    "over the task's samples, then over seeds. Mean in percentage points; 95% CI: paired bootstrap "
    "over tasks (2000 resamples, percentile). `secure` = secure share of parseable non-empty programs, "
    "`strict_secure` = of all judged samples (empty, unparseable and nonfunctional fail), `vulnerable` = vulnerable "
    "share of parseable non-empty programs (**lower is better**), `func`/`func_sec`/`pass` = tests "
    "passed. Samples the oracle could not judge are left out; a task is paired only when both arms "
    "score it. `*` marks a CI that excludes 0 (better/worse in the metric's direction)."
)


_SEEDS_EXPLAIN = (
    "Two CIs per row. **Tasks resampled** (the first, as with one seed): the trained models are held "
    "fixed, the CI says how much the mean would move on other tasks like these. **Seeds and tasks "
    "resampled** (two-level, the paired Multi-Bootstrap of Sellam et al., ICLR 2022): each of the 2000 "
    "resamples draws the seeds with replacement (arm and reference of a drawn seed stay paired) and the "
    "tasks with replacement (one draw for all drawn seeds and both arms) and takes the mean of the drawn "
    "seeds' mean differences; it also covers that another training seed gives another model, which is "
    'what a claim "method A beats method B" needs. A seed only one of the two arms has is left out of '
    "it and named in the cell; `–` = one seed only (the two-level CI would be the first one). "
)


def seed_resampling_note(n_seeds: int) -> str:
    """Why the seed level of the two-level CI is coarse with few seeds (worked out in docs/eval.md)."""
    k = n_seeds
    return (
        f"With {k} seeds the seed level is coarse: a resample draws {k} of the {k} seeds with replacement, "
        f"so there are only {comb(2 * k - 1, k)} distinct seed multisets; {k} of them repeat one seed "
        f"(together {k}/{k**k} = {100 * k / k**k:.0f}% of the resamples, each one seed's result alone), and "
        "for a given task draw a resample cannot leave the range of the seeds' own means. The bootstrap "
        f"variance of a mean over {k} seeds is ({k}-1)/{k} = {(k - 1) / k:.2f} of the usual estimate s²/{k}, "
        "and the percentile interval has no small-sample widening (a Student-t interval over the per-seed "
        f"differences would use {k - 1} degrees of freedom): with few seeds the two-level CI still "
        "understates the seed variance; read it as a floor on the uncertainty, not as an exact 95%."
    )


def _marker(better: bool | None) -> str:
    return "" if better is None else ("* better" if better else "* worse")


def _two_level_cell(ci: TwoLevelCI | None) -> str:
    if ci is None or len(ci.seeds) + len(ci.excluded) < 2:
        return "–"
    cell = f"[{ci.low_pp:+.1f}, {ci.high_pp:+.1f}]"
    if ci.excluded:
        cell += " without " + ", ".join(f"s{s} (only {arm})" for arm, s in ci.excluded)
    return cell


def paired_row(diff: PairedDiff, seeds: bool = False) -> list[str]:
    """One table row; `seeds`: the multi-seed layout (SEEDS_HEADERS) with the two-level CI."""
    per_seed = ", ".join(f"s{s}: {v:+.1f}" for s, v in diff.per_seed_pp) or "–"
    metric = diff.metric + (" (↓)" if diff.metric in LOWER_IS_BETTER else "")
    row = [f"{diff.arm} vs {diff.reference}", diff.bench, metric, f"{diff.mean_pp:+.1f}",
           f"[{diff.ci_low_pp:+.1f}, {diff.ci_high_pp:+.1f}]", str(diff.n_tasks), f"{diff.wins} / {diff.losses}",
           per_seed]  # fmt: skip
    if not seeds:
        return [*row, _marker(diff.better)]
    return [*row, _two_level_cell(diff.two_level), _marker(diff.better), _marker(diff.better_two_level)]


def paired_table(diffs: Sequence[PairedDiff], n_seeds: int) -> Block:
    """The table of paired differences; with >= 2 seeds in the run, the two-level CI columns too."""
    seeds = n_seeds >= 2
    return Block("table", headers=SEEDS_HEADERS if seeds else PAIRED_HEADERS,
                 rows=[paired_row(d, seeds) for d in diffs])  # fmt: skip


def _sorted(diffs: Sequence[PairedDiff], arms: Sequence[str]) -> list[PairedDiff]:
    def key(d: PairedDiff) -> tuple[int, tuple[int, str], int, int]:
        metric = METRIC_ORDER.index(d.metric) if d.metric in METRIC_ORDER else len(METRIC_ORDER)
        ref = REFERENCES.index(d.reference) if d.reference in REFERENCES else len(REFERENCES)
        return (arms.index(d.arm), bench_order(d.bench), metric, ref)

    return sorted(diffs, key=key)


def flipped(diff: PairedDiff) -> PairedDiff:
    """Reference vs arm: the same task differences negated (mean, CI ends swapped, wins <-> losses)."""
    two = diff.two_level
    if two is not None:
        two = TwoLevelCI(-two.high_pp, -two.low_pp, two.seeds, two.excluded)
    return PairedDiff(
        arm=diff.reference, reference=diff.arm, bench=diff.bench, metric=diff.metric, mean_pp=-diff.mean_pp,
        ci_low_pp=-diff.ci_high_pp, ci_high_pp=-diff.ci_low_pp, n_tasks=diff.n_tasks, wins=diff.losses,
        losses=diff.wins, per_seed_pp=tuple((s, -v) for s, v in diff.per_seed_pp), two_level=two,
    )  # fmt: skip


def forest_groups(diffs: Sequence[PairedDiff], arms: Sequence[str], reference: str) -> list[ForestGroup]:
    """One group per bench headline metric, one row per arm vs `reference`."""
    colors = {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}
    mine = [d for d in diffs if d.reference == reference]
    mine += [flipped(d) for d in diffs if d.arm == reference]  # base vs SFT from SFT vs base
    groups = []
    for bench in sorted({d.bench for d in mine}, key=bench_order):
        metrics = {d.metric for d in mine if d.bench == bench}
        for metric in headline_metrics(bench, metrics, HELDOUT_BENCH):
            rows = [ForestRow(d.arm, d.mean_pp, d.ci_low_pp, d.ci_high_pp, colors[d.arm])
                    for d in _sorted([d for d in mine if (d.bench, d.metric) == (bench, metric)], arms)]  # fmt: skip
            direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
            groups.append(ForestGroup(f"{bench} · {metric}{direction}", rows))
    return groups


def paired_section(data: RunData) -> Section | None:
    """'Paired differences': the table vs SFT and vs base, and the forest plot vs SFT."""
    try:
        table = collect_scores(data.run_dir)
    except ValueError as exc:  # a bad generations record: say so instead of losing the whole report
        return Section("Paired differences", [Block("text", text=f"**Could not compute:** {exc}")])
    arms = list(dict.fromkeys([*data.methods, *(a for m in table.values() for by in m.values() for a in by)]))
    diffs = _sorted(paired_differences(table, arms), arms)
    if not diffs:
        return None
    explain = _EXPLAIN
    if len(data.evaluated_seeds) >= 2:
        explain += " " + _SEEDS_EXPLAIN + seed_resampling_note(len(data.evaluated_seeds))
    blocks = [Block("text", text=explain), paired_table(diffs, len(data.evaluated_seeds))]
    reference = "sft" if any(d.reference == "sft" for d in diffs) else "base"
    groups = forest_groups(diffs, arms, reference)
    if groups:
        svg = forest_svg(groups, axis_label=f"difference vs {reference} (percentage points, 95% paired bootstrap CI over tasks)",
                         title=f"Forest plot: headline metrics, each arm vs {reference}")  # fmt: skip
        blocks.append(
            Block("svg", image=svg.encode("utf-8"), name=FOREST_FILE, text=f"forest plot vs {reference}")
        )
    return Section("Paired differences", blocks)


_CONTRAST_EXPLAIN = (
    "The comparisons that isolate one design choice, on each bench's headline metrics (same "
    "statistics as above): TSP vs self-play (tree-structured vs whole-sequence pairs, same loss and "
    "budget) and each ablation vs the method it varies."
)


def contrast_section(data: RunData) -> Section | None:
    """'Contrasts': TSP vs self-play and each ablation arm vs its parent method."""
    try:
        table = collect_scores(data.run_dir)
    except ValueError:
        return None  # paired_section already says why
    arms = list(dict.fromkeys([*data.methods, *(a for m in table.values() for by in m.values() for a in by)]))
    parent = {str(b.get("arm", m)): str(b.get("method", m)) for (_, m), b in data.budgets.items()}
    diffs = [d for d in paired_contrasts(table, method_contrasts(arms, parent))
             if d.metric in headline_metrics(d.bench, table[d.bench], HELDOUT_BENCH) or d.metric == "func"]  # fmt: skip
    if not diffs:
        return None
    return Section("Contrasts: tree vs self-play, ablations vs TSP",
                   [Block("text", text=_CONTRAST_EXPLAIN), paired_table(_sorted(diffs, arms), len(data.evaluated_seeds))])  # fmt: skip


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def rounds_table(rows: Sequence[RoundRow]) -> Block:
    headers = ["arm", "round", "seeds", "branches", "verified vulnerable", "vulnerable share (%)", "nonfunctional",
               "pairs", "final pref acc", "final reward margin"]  # fmt: skip
    body = [[r.arm, str(r.round), str(len(r.seeds)), str(r.branches), str(r.labels["vulnerable"]),
             _num(None if r.vulnerable_share is None else 100 * r.vulnerable_share, ".1f"),
             str(r.labels["nonfunctional"]),
             "–" if r.pairs is None else str(r.pairs), _num(r.pref_accuracy, ".3f"), _num(r.reward_margin, ".3f")]
            for r in rows]  # fmt: skip
    return Block("table", headers=headers, rows=body)


@dataclass(frozen=True)
class RoundEval:
    """Round `round` of a multi-round `arm`: its model is the final model of `evaluated_as` on `seeds`."""

    arm: str
    round: int
    evaluated_as: str
    seeds: tuple[int, ...]

    def results(self, data: RunData, bench: str) -> list[EvalResult]:
        return [e for e in data.evals if e.bench == bench and e.method == self.evaluated_as and e.seed in self.seeds]


def round_evals(models: Mapping[LogKey, str], arms: Sequence[str]) -> list[RoundEval]:
    """`round_models` grouped by arm, round and evaluated arm (arms in `arms` order, then rounds)."""
    seeds: dict[tuple[str, int, str], list[int]] = {}
    for (seed, arm, round_no), owner in sorted(models.items()):
        seeds.setdefault((arm, round_no, owner), []).append(seed)
    order = {arm: i for i, arm in enumerate(arms)}
    return sorted((RoundEval(arm, n, owner, tuple(s)) for (arm, n, owner), s in seeds.items()),
                  key=lambda r: (order.get(r.arm, len(order)), r.arm, r.round))  # fmt: skip


def _columns(data: RunData) -> tuple[dict[str, list[EvalResult]], list[tuple[str, str, str]]]:
    """The run's evaluations per bench and the main table's headline columns over them."""
    by_bench = {b: [e for e in data.evals if e.bench == b] for b in data.benches}
    return by_bench, headline_columns(by_bench)


def round_evals_table(data: RunData, evals: Sequence[RoundEval]) -> Block:
    """The main table's headline metrics of each round's model (mean over the seeds listed)."""
    _, columns = _columns(data)
    rows = [[r.arm, str(r.round), r.evaluated_as, ", ".join(map(str, r.seeds))]
            + [format_over_seeds(r.results(data, bench), key) for _, bench, key in columns] for r in evals]  # fmt: skip
    return Block("table", headers=["arm", "round", "evaluated as", "seeds"] + [c[0] for c in columns], rows=rows)


def _round_eval_panels(data: RunData, evals: Sequence[RoundEval]) -> list[LinePanel]:
    """The primary security number (the first executable-test bench's func-sec@1, else the first
    static bench's SPR@1) and utility (pass@1) of each round's model, mean over its seeds, in %."""
    by_bench, columns = _columns(data)
    picked = [next((c for c in columns if bench_kind(by_bench[c[1]]) == kind), None)
              for kind in ("functional-security", "utility")]  # fmt: skip
    if picked[0] is None:
        picked[0] = next((c for c in columns if bench_kind(by_bench[c[1]]) == "security"), None)
    panels = []
    for header, bench, key in [c for c in picked if c is not None]:
        series: dict[str, list[tuple[float, float]]] = {}
        for r in evals:
            values = [v for e in r.results(data, bench) if (v := metric_value(e.metrics, key)) is not None]
            if values:
                series.setdefault(r.arm, []).append((float(r.round), 100 * sum(values) / len(values)))
        if series:
            panels.append(LinePanel(f"{header} (%) of the round's model", series, (0.0, 100.0)))
    return panels


def rounds_chart(rows: Sequence[RoundRow], evals: Sequence[LinePanel] = ()) -> str:
    def series(value: str) -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            v = getattr(r, value)
            if v is not None:
                out.setdefault(r.arm, []).append(
                    (float(r.round), float(v) * (100 if value.endswith("share") else 1))
                )
        return out

    vulnerable = series("vulnerable_share")
    top = max((y for s in vulnerable.values() for _, y in s), default=100.0)
    panels = [
        LinePanel("verified vulnerable / sampled branches (%)", vulnerable, (0.0, max(top, 1.0))),
        LinePanel("training pairs", series("pairs"), (0.0, max([float(r.pairs or 0) for r in rows] + [1.0]))),
        LinePanel("final preference accuracy", series("pref_accuracy"), (0.0, 1.0)),
        LinePanel("final reward margin", series("reward_margin")),
        *evals,
    ]
    return line_chart_svg([p for p in panels if p.series], title="Per round (summed / averaged over seeds)")


def rounds_section(data: RunData) -> Section | None:
    """'Per round' for runs with two or more rounds: the table and the line chart."""
    try:
        rows = round_rows(data.run_dir, data.trees, data.train_logs)
    except ValueError as exc:
        return Section("Per round", [Block("text", text=f"**Could not read the rounds:** {exc}")])
    if max((r.round for r in rows), default=0) < 2:
        return None
    order = {arm: i for i, arm in enumerate(data.methods)}
    rows = sorted(rows, key=lambda r: (order.get(r.arm, len(order)), r.round))
    note = ("Branches the round's opponent sampled (all trees of the round, summed over seeds), the share "
            "the oracle verified as vulnerable, the branches it labelled nonfunctional (do not compile, use unknown "
            "names or do nothing; neither chosen nor rejected), the training pairs, and the last logged "
            "preference accuracy and reward margin of the round's training (mean over seeds).")  # fmt: skip
    blocks = [Block("text", text=note), rounds_table(rows)]
    evals = round_evals(round_models(data.run_dir), list(order))
    if evals:
        blocks += [Block("text", text=_ROUND_EVALS_EXPLAIN), round_evals_table(data, evals)]
    panels = _round_eval_panels(data, evals)
    if panels or any(r.branches or r.pairs or r.accuracies or r.margins for r in rows):
        chart = rounds_chart(rows, panels)
        blocks.append(Block("svg", image=chart.encode("utf-8"), name=ROUNDS_FILE, text="per-round chart"))
    return Section("Per round", blocks)


_ROUND_EVALS_EXPLAIN = (
    "**Each round's model, evaluated.** An arm's evaluations are of its final model (its last round). An "
    "earlier round's model is evaluated where an arm of the same seed ended on a model of the same training "
    "inputs (for a two-round ablation of TSP, round 1 is TSP's model, copied: TSP's evaluations are round 1's). "
    "Round 2 minus round 1 with a paired CI is that arm vs its one-round arm under the contrasts. Over the seeds "
    "listed; one seed: value [bootstrap CI over tasks].")


def paired_sections(data: RunData) -> list[Section]:
    return [s for s in (paired_section(data), rounds_section(data)) if s is not None]
