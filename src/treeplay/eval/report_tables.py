"""The report's tables: the main method x metric table, per-bench, per-CWE/language, held-out
reduction, oracle-vs-test agreement, training and budget tables (each a `Block`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from treeplay.eval.metrics import SeedStat, mean_ci_over_seeds, vulnerability_reduction
from treeplay.eval.report_data import (
    HELDOUT_BENCH,
    METHOD_NAMES,
    METHODS,
    Block,
    EvalResult,
    RunData,
    logs_by_run,
)


def natural_order(name: str) -> tuple[str, int, str]:
    """'CWE-20' before 'CWE-113': sort by the text before the number, then the number."""
    match = re.match(r"^(.*?)(\d+)(.*)$", name)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (name, -1, "")


def method_rank(method: str) -> int:
    """Where a method's rows go: the order of `METHODS`, then variants (any other name)."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def metric_value(metrics: dict[str, Any], key: str) -> float | None:
    entry = metrics.get(key)
    return entry.get("value") if isinstance(entry, dict) else None


# metrics that are not rates: shown as they are, not in %
UNSCALED = frozenset({"code_lines"})


def format_over_seeds(results: Sequence[EvalResult], key: str) -> str:
    """'mean ± CI' (t over seeds) with ≥3 seeds, 'mean (a, b)' with 2 (`SeedStat.format`); one seed:
    'value [bootstrap CI]'; '–' if absent. Rates in %, `UNSCALED` metrics as they are."""
    scale = 1.0 if key in UNSCALED else 100.0
    values = [v for r in results if (v := metric_value(r.metrics, key)) is not None]
    if not values:
        return "–"
    if len(values) == 1:
        entry = next(r.metrics[key] for r in results if metric_value(r.metrics, key) is not None)
        text = f"{scale * values[0]:.1f}"
        if entry.get("ci_low") is not None:
            text += f" [{scale * entry['ci_low']:.1f}, {scale * entry['ci_high']:.1f}]"
        return text
    stat = mean_ci_over_seeds(values)
    return stat.format(scale=scale) if stat else "–"


def _format_stat(stat: SeedStat | None, *, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "–" if stat is None else stat.format(scale=scale, digits=digits) + unit


def bench_kind(results: Sequence[EvalResult]) -> str:
    metrics = results[0].metrics if results else {}
    if "pass@1" in metrics:
        return "utility"
    if "func-sec@1" in metrics:
        return "functional-security"
    return "security"


def _seeds(data: RunData, bench: str, method: str | None = None) -> set[int]:
    """The seeds evaluated on `bench` (by `method` only, if given)."""
    return {e.seed for e in data.evals if e.bench == bench and method in (None, e.method)}


def _common_seeds(data: RunData, bench: str) -> set[int]:
    """The seeds on which every main arm (base and the methods of `METHODS`) evaluated on `bench` was
    evaluated there. An ablation variant does not narrow them: a variant not run on a seed leaves the
    methods' comparison on all their seeds (its own row is over the seeds it has, said under the table).
    Without any main arm on the bench, the variants' common seeds."""
    main = [s for m in data.methods if m in METHODS and (s := _seeds(data, bench, m))]
    seed_sets = main or [s for m in data.methods if (s := _seeds(data, bench, m))]
    return set.intersection(*seed_sets) if seed_sets else set()


def shared_seeds(data: RunData, bench: str) -> list[int]:
    """The seeds the main table uses on `bench` (`_common_seeds`): its rows compare the same seeds (an
    arm's mean over seeds 0-1 beside another's seed 0 alone would mix a seed effect into the method
    difference). All seeds when the arms share none (said under the table)."""
    return sorted(_common_seeds(data, bench) or _seeds(data, bench))


def _variants_short_of(data: RunData, bench: str, common: set[int]) -> list[str]:
    """'tsp-sibling has no seed 2 (its cells are over seeds 0, 1)' for each variant evaluated on `bench`
    on only some of `common`."""
    parts = []
    for method in data.methods:
        own = _seeds(data, bench, method)
        if method not in METHODS and own and common - own:
            missing, kept = (", ".join(map(str, sorted(s))) for s in (common - own, own & common))
            parts.append(f"{method} has no seed {missing} (its cells are over seeds {kept})")
    return parts


def main_table_seeds_note(data: RunData) -> str | None:
    """Which seeds each bench's columns leave out of the main table, and which variants' rows are
    over fewer seeds than the methods' (None: every seed of every arm is in)."""
    parts, short, disjoint = [], [], []
    for bench in data.benches:
        common = _common_seeds(data, bench)
        if not common:
            disjoint.append(bench)
            continue
        extra = sorted(_seeds(data, bench) - common)
        for seed in extra:
            arms = sorted({e.method for e in data.evals if (e.bench, e.seed) == (bench, seed)}, key=method_rank)
            parts.append(f"{bench}: seed {seed} (only {', '.join(arms)})")
        short += [f"{bench}: {part}" for part in _variants_short_of(data, bench, common)]
    notes = []
    if parts:
        notes.append("**Seeds:** each bench's columns use the seeds on which base and every method were evaluated "
                     "there, so the rows compare the same seeds; left out of this table (kept in the per-bench tables and "
                     "the paired differences): " + "; ".join(parts) + ".")
    if short:
        notes.append("**Ablation rows over fewer seeds:** a variant not run on every seed does not narrow the "
                     "methods' seeds; its row is over the seeds it has, so compare it through the paired "
                     "differences (same seeds): " + "; ".join(short) + ".")
    if disjoint:
        notes.append(f"**Seeds:** on {', '.join(disjoint)} the arms share no seed, so those rows are over "
                     "different seeds (a seed effect is mixed into their differences).")
    return "\n\n".join(notes) or None


def headline_columns(by_bench: dict[str, list[EvalResult]]) -> list[tuple[str, str, str]]:
    """(header, bench, metric key) of the main table's columns: per bench in the given order, SPR@1 and
    strict SPR@1 (static security), func-sec@1 and func@1 (executable tests), or pass@1 (utility)."""
    columns: list[tuple[str, str, str]] = []
    for bench, results in by_bench.items():
        kind = bench_kind(results)
        if kind == "security":
            columns += [(f"{bench} SPR@1", bench, "spr@1"), (f"{bench} strict SPR@1", bench, "strict_spr@1")]
        elif kind == "functional-security":
            columns += [(f"{bench} func-sec@1", bench, "func-sec@1"), (f"{bench} func@1", bench, "func@1")]
        else:
            columns.append((f"{bench} pass@1", bench, "pass@1"))
    return columns


def main_table(data: RunData) -> Block:
    """The paper-style table: method × headline metrics (mean ± 95% CI over the seeds all main arms
    share, `shared_seeds`), one row per arm with at least one evaluation."""
    benches = data.benches
    seeds = {b: shared_seeds(data, b) for b in benches}
    by_bench = {b: [e for e in data.evals if e.bench == b and e.seed in seeds[b]] for b in benches}
    columns = headline_columns(by_bench)
    headers = ["Method"] + [c[0] for c in columns]
    heldout = HELDOUT_BENCH in benches
    if heldout:
        headers += HELDOUT_HEADERS
    rows = []
    for method in [m for m in data.methods if any(e.method == m for e in data.evals)]:
        row = [METHOD_NAMES.get(method, method)]
        for _, bench, key in columns:
            row.append(format_over_seeds([e for e in by_bench[bench] if e.method == method], key))
        if heldout:
            row += heldout_cells(data, method, seeds[HELDOUT_BENCH])
        rows.append(row)
    return Block("table", headers=headers, rows=rows)


def _heldout_share(result: EvalResult | None, key: str) -> float | None:
    return None if result is None else metric_value(result.metrics, key)


def heldout_cells(data: RunData, method: str, seeds: Sequence[int]) -> list[str]:
    """Held-out CWEs: vulnerable programs (parseable, non-empty) and the reduction vs base / SFT
    (same seed) of their share among parseable non-empty programs, then the strict reduction
    (unparseable and empty count as insecure). Empty or broken output never counts as a reduction."""
    counts: list[float] = []
    vs: dict[tuple[str, str], list[float]] = {(r, k): [] for k in _HELDOUT_KEYS for r in ("base", "sft")}
    for seed in seeds:
        mine = data.result(seed, method, HELDOUT_BENCH)
        if mine is None or "vulnerable_attempted" not in (mine.metrics.get("counts") or {}):
            continue
        counts.append(int(mine.metrics["counts"]["vulnerable_attempted"]))
        for ref, key in vs:
            own, theirs = _heldout_share(mine, key), _heldout_share(data.result(seed, ref, HELDOUT_BENCH), key)
            if ref != method and own is not None and theirs is not None:
                reduction = vulnerability_reduction(own, theirs)
                if reduction is not None:
                    vs[(ref, key)].append(reduction)
    return [_format_stat(mean_ci_over_seeds(counts), digits=1)] + [
        _format_stat(mean_ci_over_seeds(vs[(ref, key)]), digits=1) for key in _HELDOUT_KEYS for ref in ("base", "sft")
    ]


_HELDOUT_KEYS = ("vulnerable_attempted_share", "insecure_strict_share")
HELDOUT_HEADERS = ["held-out vulns (count)", "reduction vs base %", "reduction vs SFT %",
                   "strict reduction vs base %", "strict reduction vs SFT %"]


def bench_table(data: RunData, bench: str) -> Block:
    results = [e for e in data.evals if e.bench == bench]
    kind = bench_kind(results)
    keys = {
        "security": ["spr@1", "strict_spr@1", "unparseable_share", "empty_share", "nonfunctional_share", "vulnerable_share"],
        "functional-security": ["func-sec@1", "func@1", "spr@1", "strict_spr@1", "unparseable_share",
                                "nonfunctional_share"],
        "utility": ["pass@1"],
    }[kind] + ["code_lines", "one_line_share", "cut_share"]  # answer size and answers cut at the token limit (docs/eval.md)
    headers = ["Method", "seeds", *keys, "tasks", "generations"]
    rows = []
    for method in data.methods:
        mine = [e for e in results if e.method == method]
        if not mine:
            continue
        tasks = sorted({int(e.metrics.get("tasks_evaluated", 0)) for e in mine})
        gens = sorted({int(e.metrics.get("generations", 0)) for e in mine})
        rows.append(
            [METHOD_NAMES.get(method, method), str(len(mine))]
            + [format_over_seeds(mine, k) for k in keys]
            + ["/".join(map(str, tasks)), "/".join(map(str, gens))]
        )
    return Block("table", headers=headers, rows=rows)


def per_group_table(data: RunData, bench: str, group: str, key: str = "spr@1") -> Block | None:
    """Rows: CWE (or language); columns: methods; cells: metric over seeds and generation count."""
    results = [e for e in data.evals if e.bench == bench]
    names = sorted({g for e in results for g in (e.metrics.get(group) or {})}, key=natural_order)
    if not names:
        return None
    methods = [m for m in data.methods if any(e.method == m for e in results)]
    rows = []
    for name in names:
        row = [name]
        for method in methods:
            sub = [
                EvalResult(e.seed, e.method, bench, e.metrics[group][name])
                for e in results
                if e.method == method and name in (e.metrics.get(group) or {})
            ]
            gens = sum(int((s.metrics.get("counts") or {}).get("generations", 0)) for s in sub)
            row.append(f"{format_over_seeds(sub, key)} (n={gens})" if sub else "–")
        rows.append(row)
    return Block("table", headers=[group.replace("per_", "").upper(), *methods], rows=rows)


def training_table(data: RunData) -> Block | None:
    rows = []
    for (seed, method), runs in logs_by_run(data).items():
        for round_no, log in runs:
            if not log:
                continue
            first, last = log[0], log[-1]

            def num(row: dict[str, Any], key: str) -> str:
                value = row.get(key)
                return f"{value:.3f}" if isinstance(value, int | float) else "–"

            rows.append([method, str(seed), str(round_no), str(len(log)), num(first, "loss"), num(last, "loss"),
                         num(last, "reward_margin"), num(last, "pref_accuracy")])  # fmt: skip
    if not rows:
        return None
    headers = ["method", "seed", "round", "steps", "first loss", "last loss", "last margin", "last pref acc"]
    return Block("table", headers=headers, rows=rows)


def sampled_budget(data: RunData, seed: int, method: str) -> tuple[int, int] | None:
    """(branches, their tokens) in the arm's trees over all rounds: the sampling budget it used
    (kept tokens: budget-cut text trimmed to its last line, empty and repeated branches dropped).
    None for an arm without trees (SFT)."""
    branches = [b for s, m, _, tree in data.trees if (s, m) == (seed, method) for b in tree.branches]
    if not branches:
        return None
    return len(branches), sum(len(b.token_ids) for b in branches)


def budget_table(data: RunData) -> Block | None:
    if not data.budgets:
        return None
    keys = ["optimizer_steps", "tokens", "pairs", "wall_s", "shared_wall_s"]
    rows = []
    kinds = sorted({k for b in data.budgets.values() for k in (b.get("pairs_by_mode") or {})})
    for (seed, method), budget in sorted(data.budgets.items(), key=lambda kv: (method_rank(kv[0][1]), kv[0][0])):
        cells = []
        for k in keys:
            value = budget.get(k)
            cells.append(f"{value:.0f}" if isinstance(value, int | float) else "–")
        sampled = sampled_budget(data, seed, method)
        cells += [str(sampled[0]), str(sampled[1])] if sampled else ["–", "–"]
        by_mode = budget.get("pairs_by_mode") or {}
        cells += [str(by_mode.get(k, 0)) for k in kinds]
        rows.append([method, str(seed), *cells, "untrained" if budget.get("untrained") else ""])
    headers = ["method", "seed", *keys, "sampled branches", "sampled tokens", *(f"pairs: {k}" for k in kinds), "note"]
    return Block("table", headers=headers, rows=rows)


def agreement_table(data: RunData, bench: str) -> list[Block]:
    """The oracle-vs-security-test 2x2 counts per method and seed (empty when the bench has none)."""
    from treeplay.eval.agreement import agreement_rows

    tables = [
        (f"{METHOD_NAMES.get(e.method, e.method)} (seed {e.seed})", e.metrics["oracle_vs_test"])
        for method in data.methods
        for e in data.evals
        if e.bench == bench and e.method == method and e.metrics.get("oracle_vs_test")
    ]
    if not tables:
        return []
    headers, rows = agreement_rows(tables)
    note = ("**Static oracle vs executed security test** (generations; only those the oracle judged "
            "and whose security test ran). 'oracle secure / test FAIL' is the oracle's blind spot.")  # fmt: skip
    return [Block("text", text=note), Block("table", headers=headers, rows=rows)]


PAIR_CONTRAST_NOTE = (
    "**What the pairs contrast besides security** (per method, seed, round and pair mode). A pair teaches "
    "whatever separates its chosen from its rejected side. Where the chosen side is the dataset's golden "
    "code and the rejected side the model's sample, it also teaches who wrote it: a longer or shorter "
    "answer, a comment habit, a helper it calls. Lengths are median characters; shares in %. The calls "
    "column lists the names called on the chosen side of more pairs than on the rejected side (net pairs: "
    "chosen-only minus rejected-only), the top 3: intended ones (a sanitiser) and incidental ones alike."
)
PAIR_CONTRAST_HEADERS = ["method", "seed", "round", "pair mode", "pairs", "chosen side", "chars chosen",
                         "chars rejected", "chosen longer", "opens with comment: chosen", "rejected",
                         "calls the chosen side adds (net pairs)"]  # fmt: skip


def pair_contrast_table(data: RunData) -> Block | None:
    """One row per (method, seed, round, pair mode) of the data stages' pairs (None: no pairs read)."""
    if not data.pair_contrasts:
        return None

    def share(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.0f}"

    def chars(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}"

    def calls(top: tuple[tuple[str, int], ...]) -> str:
        return ", ".join(f"{name} +{count}" for name, count in top) or "–"

    rows = []
    for key in sorted(data.pair_contrasts, key=lambda k: (method_rank(k[1]), k[0], k[2])):
        seed, method, round_no = key
        for c in data.pair_contrasts[key]:
            rows.append([method, str(seed), str(round_no), c.mode, str(c.pairs),
                         "dataset" if c.chosen_by_dataset else "model", chars(c.chosen_chars),
                         chars(c.rejected_chars), share(c.chosen_longer), share(c.chosen_opens_with_comment),
                         share(c.rejected_opens_with_comment), calls(c.chosen_calls)])  # fmt: skip
    return Block("table", headers=PAIR_CONTRAST_HEADERS, rows=rows)


NONFUNCTIONAL_NOTE = (
    "**Why answers are nonfunctional** (per method and seed; the oracle's static sanity check: unknown "
    "import, undefined name, no compiling code, nothing implemented). Reasons without their line number, "
    "each counted once per answer; an answer may give several (counts of answers: the bench table's "
    "nonfunctional_share divides by the parseable, non-empty ones). A trained habit the prompts do not "
    "support, such as calling a helper they never import, shows here by name."
)
NONFUNCTIONAL_HEADERS = ["method", "seed", "judged", "nonfunctional", "most frequent reasons (answers)"]


def nonfunctional_table(data: RunData, bench: str, top: int = 3) -> Block | None:
    """One row per method and seed of the bench (None: no answer of the bench judged nonfunctional)."""
    keys = [k for k in data.nonfunctional if k[2] == bench and data.nonfunctional[k].judged]
    if not any(data.nonfunctional[k].nonfunctional for k in keys):
        return None
    rows = []
    for seed, method, _ in sorted(keys, key=lambda k: (method_rank(k[1]), k[1], k[0])):
        summary = data.nonfunctional[(seed, method, bench)]
        reasons = ", ".join(f"{reason} ({count})" for reason, count in summary.top(top)) or "–"
        rows.append([METHOD_NAMES.get(method, method), str(seed), str(summary.judged), str(summary.nonfunctional), reasons])
    return Block("table", headers=NONFUNCTIONAL_HEADERS, rows=rows)
