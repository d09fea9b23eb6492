"""The run report: Markdown + one self-contained HTML file (charts embedded as base64 PNG).

Reads the run-dir layout `treeplay run` writes (see docs/eval.md), works with any subset of
methods/seeds/benches present and says what is missing. The report is built once as a list of
sections of plain blocks (text, table, image, pre, tree) and rendered to both formats.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treeplay.eval.evaluate import GENERATIONS_FILE, METRICS_FILE, compute_metrics
from treeplay.eval.metrics import SeedStat, mean_ci_over_seeds, vulnerability_reduction
from treeplay.eval.report_oracle import COVERAGE_HEADERS, coverage_rows
from treeplay.eval.report_paired import contrast_section, paired_section, rounds_section
from treeplay.jsonl import read_jsonl

METHODS = ("base", "sft", "selfplay", "tsp")
METHOD_NAMES = {"base": "Base model", "sft": "SFT (golden)", "selfplay": "Self-play (root pairs)", "tsp": "TSP (tree)"}
HELDOUT_BENCH = "sec-eval:not-trained"
_SEED_DIR = re.compile(r"^seed-(\d+)$")
_ROUND_DIR = re.compile(r"^round-(\d+)$")


# ---- reading the run dir


@dataclass(frozen=True)
class EvalResult:
    seed: int
    method: str
    bench: str
    metrics: dict[str, Any]
    recomputed: bool = False  # metrics.json missing: recomputed from generations.jsonl


@dataclass
class RunData:
    run_dir: Path
    config_text: str | None = None
    seeds: list[int] = field(default_factory=list)
    evals: list[EvalResult] = field(default_factory=list)
    train_logs: dict[tuple[int, str, int], list[dict[str, Any]]] = field(default_factory=dict)
    budgets: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    trees: list[tuple[int, str, int, dict[str, Any]]] = field(default_factory=list)  # seed, method, round, tree
    notes: list[str] = field(default_factory=list)

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
    metrics_path = bench_dir / METRICS_FILE
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        return EvalResult(seed, method, str(metrics.get("bench") or bench_dir.name), metrics)
    gen_path = bench_dir / GENERATIONS_FILE
    if not gen_path.exists():
        return None
    records = list(read_jsonl(gen_path, tolerate_truncated_tail=True))
    if not records:
        return None
    bench = str(records[0].get("bench") or bench_dir.name)
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r["task_id"]] += 1
    n = max(counts.values())
    records = [r for r in records if counts[r["task_id"]] == n]  # complete tasks only; never rewrite here
    metrics = compute_metrics(records, humaneval=bench == "humaneval")
    metrics.update(bench=bench, generations=len(records), tasks_evaluated=len({r["task_id"] for r in records}))
    return EvalResult(seed, method, bench, metrics, recomputed=True)


def _read_jsonl_safely(path: Path, data: RunData) -> list[dict[str, Any]]:
    try:
        return list(read_jsonl(path, tolerate_truncated_tail=True))
    except ValueError as exc:
        data.notes.append(f"could not read {path.relative_to(data.run_dir)}: {exc}")
        return []


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
    data = RunData(run_dir=root)
    config = root / "config.yaml"
    data.config_text = config.read_text(encoding="utf-8") if config.exists() else None
    seed_dirs = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _SEED_DIR.match(p.name))),
        key=lambda item: item[0],
    )
    data.seeds = [s for s, _ in seed_dirs]
    for seed, seed_dir in seed_dirs:
        for method_dir in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
            method = method_dir.name
            for bench_dir in sorted(p for p in (method_dir / "eval").glob("*") if p.is_dir()):
                result = _read_eval(seed, method, bench_dir)
                if result is not None:
                    data.evals.append(result)
                    if result.recomputed:
                        data.notes.append(
                            f"seed {seed} / {method} / {result.bench}: metrics.json missing (evaluation "
                            "unfinished?); metrics recomputed from the generations written so far"
                        )
            budget = method_dir / "budget.json"
            if budget.exists():
                data.budgets[(seed, method)] = json.loads(budget.read_text(encoding="utf-8"))
            for round_dir in sorted(p for p in method_dir.iterdir() if _ROUND_DIR.match(p.name)):
                round_no = int(round_dir.name.split("-")[1])
                for log in (round_dir / "train" / "metrics.jsonl", round_dir / "train" / "log.jsonl"):
                    if log.exists():
                        rows = [_normalise_log_row(r) for r in _read_jsonl_safely(log, data)]
                        data.train_logs[(seed, method, round_no)] = rows
                        break
                trees = round_dir / "data" / "trees.jsonl"
                if trees.exists():
                    data.trees.extend((seed, method, round_no, t) for t in _read_jsonl_safely(trees, data))
    return data


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
    for seed in data.seeds:
        for method in data.methods:
            for bench in data.benches:
                if data.result(seed, method, bench) is None:
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
    if not any(b.startswith("cweval") for b in data.benches):
        missing.append("no CWEval evaluation: func-sec@1 not reported")
    if "humaneval" not in data.benches:
        missing.append("no HumanEval evaluation: utility (pass@1) not reported")
    return missing


# ---- formatting helpers


def _natural(name: str) -> tuple[str, int, str]:
    """'CWE-20' before 'CWE-113': sort by the text before the number, then the number."""
    match = re.match(r"^(.*?)(\d+)(.*)$", name)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (name, -1, "")


def _value(metrics: dict[str, Any], key: str) -> float | None:
    entry = metrics.get(key)
    return entry.get("value") if isinstance(entry, dict) else None


def format_over_seeds(results: Sequence[EvalResult], key: str) -> str:
    """'mean ± CI' (t over seeds) with ≥2 seeds; one seed: 'value [bootstrap CI]'; '–' if absent."""
    values = [v for r in results if (v := _value(r.metrics, key)) is not None]
    if not values:
        return "–"
    if len(values) == 1:
        entry = next(r.metrics[key] for r in results if _value(r.metrics, key) is not None)
        text = f"{100 * values[0]:.1f}"
        if entry.get("ci_low") is not None:
            text += f" [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"
        return text
    stat = mean_ci_over_seeds(values)
    return stat.format() if stat else "–"


def _format_stat(stat: SeedStat | None, *, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    return "–" if stat is None else stat.format(scale=scale, digits=digits) + unit


def bench_kind(results: Sequence[EvalResult]) -> str:
    metrics = results[0].metrics if results else {}
    if "pass@1" in metrics:
        return "utility"
    if "func-sec@1" in metrics:
        return "functional-security"
    return "security"


# ---- report model: sections of blocks


@dataclass
class Block:
    kind: str  # "text" | "table" | "image" (PNG) | "svg" (SVG text in `image`) | "pre" | "tree"
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: bytes = b""
    name: str = ""
    tree: dict[str, Any] = field(default_factory=dict)


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def main_table(data: RunData) -> Block:
    """The paper-style table: method × headline metrics (mean ± 95% CI over seeds)."""
    benches = data.benches
    by_bench = {b: [e for e in data.evals if e.bench == b] for b in benches}
    columns: list[tuple[str, str, str]] = []  # (header, bench, metric key)
    for bench in benches:
        kind = bench_kind(by_bench[bench])
        if kind == "security":
            columns += [(f"{bench} SPR@1", bench, "spr@1"), (f"{bench} strict SPR@1", bench, "strict_spr@1")]
        elif kind == "functional-security":
            columns += [(f"{bench} func-sec@1", bench, "func-sec@1"), (f"{bench} func@1", bench, "func@1")]
        else:
            columns.append((f"{bench} pass@1", bench, "pass@1"))
    headers = ["Method"] + [c[0] for c in columns]
    heldout = HELDOUT_BENCH in benches
    if heldout:
        headers += HELDOUT_HEADERS
    rows = []
    for method in data.methods:
        row = [METHOD_NAMES.get(method, method)]
        for _, bench, key in columns:
            row.append(format_over_seeds([e for e in by_bench[bench] if e.method == method], key))
        if heldout:
            row += heldout_cells(data, method)
        rows.append(row)
    return Block("table", headers=headers, rows=rows)


def _heldout_share(result: EvalResult | None, key: str) -> float | None:
    return None if result is None else _value(result.metrics, key)


def heldout_cells(data: RunData, method: str) -> list[str]:
    """Held-out CWEs: vulnerable programs (parseable, non-empty) and the reduction vs base / SFT
    (same seed) of their share among parseable non-empty programs, then the strict reduction
    (unparseable and empty count as insecure). Empty or broken output never counts as a reduction."""
    counts: list[float] = []
    vs: dict[tuple[str, str], list[float]] = {(r, k): [] for k in _HELDOUT_KEYS for r in ("base", "sft")}
    for seed in data.seeds:
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
        "functional-security": ["func-sec@1", "func@1", "spr@1", "strict_spr@1", "unparseable_share"],
        "utility": ["pass@1"],
    }[kind]
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
    names = sorted({g for e in results for g in (e.metrics.get(group) or {})}, key=_natural)
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


# ---- charts


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def per_cwe_chart(data: RunData, bench: str, key: str = "spr@1") -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    results = [e for e in data.evals if e.bench == bench]
    cwes = sorted({c for e in results for c in (e.metrics.get("per_cwe") or {})}, key=_natural)
    methods = [m for m in data.methods if any(e.method == m for e in results)]
    if not cwes or not methods:
        return None
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(cwes) * max(1, len(methods)) / 2 + 3), 3.6))
    x = np.arange(len(cwes))
    for i, method in enumerate(methods):
        means, errs = [], []
        for cwe in cwes:
            values = [
                v
                for e in results
                if e.method == method and (v := _value((e.metrics.get("per_cwe") or {}).get(cwe, {}), key)) is not None
            ]
            stat = mean_ci_over_seeds(values)
            means.append(100 * stat.mean if stat else np.nan)
            errs.append(100 * stat.half_width if stat and stat.half_width is not None else 0.0)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=method)
    ax.set_xticks(x, cwes, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"{key} (%)")
    ax.set_ylim(0, 118)
    ax.set_title(f"{bench}: {key} per CWE (mean over seeds)")
    ax.legend(fontsize=8, ncols=len(methods))
    return _png(fig)


def training_curves_chart(data: RunData) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(data.train_logs.values()):
        return None
    panels = ("loss", "reward_margin", "pref_accuracy")
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.4))
    colors = {m: f"C{i}" for i, m in enumerate(data.methods)}
    for (seed, method), runs in _logs_by_run(data).items():
        steps: list[int] = []
        series: dict[str, list[float | None]] = {p: [] for p in panels}
        offset = 0
        for _, log in runs:  # rounds in order, steps continue across rounds
            for row in log:
                steps.append(offset + int(row.get("step", len(steps))))
                for p in panels:
                    value = row.get(p)
                    series[p].append(float(value) if isinstance(value, int | float) else None)
            offset = steps[-1] if steps else offset
        for ax, p in zip(axes, panels, strict=True):
            points = [(s, v) for s, v in zip(steps, series[p], strict=True) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), color=colors[method], lw=1, alpha=0.85,
                        linestyle=("-", "--", ":", "-.")[data.seeds.index(seed) % 4] if seed in data.seeds else "-",
                        label=f"{method} s{seed}")  # fmt: skip
    for ax, p in zip(axes, panels, strict=True):
        ax.set_title(p)
        ax.set_xlabel("optimizer step (all rounds)")
        if ax.lines:
            ax.legend(fontsize=7)
    return _png(fig)


def _logs_by_run(data: RunData) -> dict[tuple[int, str], list[tuple[int, list[dict[str, Any]]]]]:
    runs: dict[tuple[int, str], list[tuple[int, list[dict[str, Any]]]]] = defaultdict(list)
    for (seed, method, round_no), log in sorted(data.train_logs.items()):
        runs[(seed, method)].append((round_no, log))
    return dict(runs)


def training_table(data: RunData) -> Block | None:
    rows = []
    for (seed, method), runs in _logs_by_run(data).items():
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


def budget_table(data: RunData) -> Block | None:
    if not data.budgets:
        return None
    keys = ["optimizer_steps", "tokens", "pairs", "wall_s"]
    rows = []
    kinds = sorted({k for b in data.budgets.values() for k in (b.get("pairs_by_mode") or {})})
    for (seed, method), budget in sorted(data.budgets.items(), key=lambda kv: (METHODS.index(kv[0][1])
                                                                               if kv[0][1] in METHODS else 99, kv[0][0])):  # fmt: skip
        cells = []
        for k in keys:
            value = budget.get(k)
            cells.append(f"{value:.0f}" if isinstance(value, int | float) else "–")
        by_mode = budget.get("pairs_by_mode") or {}
        cells += [str(by_mode.get(k, 0)) for k in kinds]
        rows.append([method, str(seed), *cells, "untrained" if budget.get("untrained") else ""])
    return Block("table", headers=["method", "seed", *keys, *(f"pairs: {k}" for k in kinds), "note"], rows=rows)


# ---- example trees


def pick_example_trees(data: RunData, count: int = 2) -> list[tuple[int, str, int, dict[str, Any]]]:
    """Trees with the most mixed outcomes (secure and vulnerable branches), preferring TSP's."""

    def score(item: tuple[int, str, int, dict[str, Any]]) -> tuple[int, int, int]:
        labels = [b.get("label") for b in item[3].get("branches") or []]
        mixed = int("secure" in labels and "vulnerable" in labels)
        return (mixed, int(item[1] == "tsp"), min(len(labels), 12))

    ranked = sorted(data.trees, key=score, reverse=True)
    chosen, seen = [], set()
    for item in ranked:
        if item[3].get("task_id") in seen:
            continue
        seen.add(item[3].get("task_id"))
        chosen.append(item)
        if len(chosen) == count:
            break
    return chosen


def golden_with_markers(tree: dict[str, Any]) -> str:
    """The golden path with «node-id» markers at the trunk nodes' character offsets."""
    golden = tree.get("golden") or ""
    trunk = sorted(
        (n for n in tree.get("nodes") or [] if n.get("parent") is None), key=lambda n: int(n.get("char_offset", 0))
    )
    out, last = [], 0
    for node in trunk:
        offset = max(last, min(len(golden), int(node.get("char_offset", 0))))
        out.append(golden[last:offset])
        out.append(f"«{node['id']}»")
        last = offset
    out.append(golden[last:])
    return "".join(out)


def _clip(text: str, lines: int = 10) -> str:
    parts = text.splitlines()
    return "\n".join(parts[:lines]) + (f"\n… ({len(parts) - lines} more lines)" if len(parts) > lines else "")


def tree_markdown(tree: dict[str, Any]) -> str:
    lines = [f"**{tree.get('task_id')}** — golden path ({tree.get('golden_source')}), "
             f"{len(tree.get('nodes') or [])} nodes, {len(tree.get('branches') or [])} branches", "",
             "```", golden_with_markers(tree) or "(no golden path)", "```", ""]  # fmt: skip
    for node in tree.get("nodes") or []:
        branches = [b for b in tree.get("branches") or [] if b.get("node_id") == node["id"]]
        lines.append(f"- node `{node['id']}` ({node.get('strategy')}, offset {node.get('char_offset')}, "
                     f"depth {node.get('depth', 1)}): {len(branches)} branches")  # fmt: skip
        for b in branches:
            where = f", first flagged line {b['first_flagged_line']}" if b.get("first_flagged_line") else ""
            lines.append(f"  - **{b.get('label')}** {b.get('cwe') or ''}{where}")
            lines.append("    ```")
            lines.extend("    " + line for line in _clip(b.get("completion", ""), 6).splitlines())
            lines.append("    ```")
    return "\n".join(lines)


_LABEL_COLORS = {"secure": "#1a7f37", "vulnerable": "#cf222e", "unparseable": "#8250df", "nonfunctional": "#9a6700"}


def tree_html(tree: dict[str, Any]) -> str:
    marked = html.escape(golden_with_markers(tree) or "(no golden path)")
    marked = re.sub(r"«([\w.-]+)»", r'<span class="node">\1</span>', marked)
    parts = [
        f"<p><b>{html.escape(str(tree.get('task_id')))}</b> — golden path ({html.escape(str(tree.get('golden_source')))}), "
        f"{len(tree.get('nodes') or [])} nodes, {len(tree.get('branches') or [])} branches</p>",
        f"<pre class='golden'>{marked}</pre>",
    ]
    for node in tree.get("nodes") or []:
        branches = [b for b in tree.get("branches") or [] if b.get("node_id") == node["id"]]
        items = []
        for b in branches:
            label = str(b.get("label"))
            color = _LABEL_COLORS.get(label, "#57606a")
            where = f", first flagged line {b['first_flagged_line']}" if b.get("first_flagged_line") else ""
            items.append(
                f"<li><span class='label' style='background:{color}'>{html.escape(label)}</span> "
                f"{html.escape(str(b.get('cwe') or ''))}{where}"
                f"<pre>{html.escape(_clip(b.get('completion', ''), 8))}</pre></li>"
            )
        parts.append(
            f"<details open><summary>node <span class='node'>{html.escape(node['id'])}</span> "
            f"({html.escape(str(node.get('strategy')))}, offset {node.get('char_offset')}, "
            f"depth {node.get('depth', 1)}) — {len(branches)} branches</summary><ul>{''.join(items)}</ul></details>"
        )
    return "\n".join(parts)


def tree_block_html(tree: dict[str, Any]) -> str:
    """The tree stage's page (diffs, findings) in an inline iframe when the tree carries its task
    snapshot; otherwise the simple rendering above. Both stay self-contained (no external resource)."""
    if tree.get("task"):
        try:
            from treeplay.tasks.records import Task
            from treeplay.tree.records import tree_from_dict
            from treeplay.tree.render import tree_html as stage_tree_html

            page = stage_tree_html(tree_from_dict(tree), Task.from_dict(tree["task"]))
        except (ImportError, KeyError, TypeError, ValueError):
            return tree_html(tree)
        return f"<iframe class='tree' srcdoc=\"{html.escape(page, quote=True)}\"></iframe>"
    return tree_html(tree)


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


# ---- building and rendering


def build_sections(data: RunData) -> list[Section]:
    sections: list[Section] = []
    overview = Section("Overview")
    overview.blocks.append(Block("text", text=(
        f"Run dir `{data.run_dir}`; seeds: {', '.join(map(str, data.seeds)) or 'none'}; "
        f"methods: {', '.join(data.methods) or 'none'}; benches: {', '.join(data.benches) or 'none'}. "
        "Rates in %. With ≥2 seeds: mean ± 95% t-interval over seeds; with one seed: value "
        "[bootstrap 95% CI over tasks]. SPR@1 = secure share of the generations that parse and hold "
        "code; strict SPR@1 counts unparseable and empty generations as failures. The held-out "
        "reduction compares the vulnerable share among parseable, non-empty programs (strict: "
        "unparseable and empty count as insecure). Generations the oracle could not judge "
        "(incomplete, unsupported) are left out of every rate: see Oracle coverage.")))  # fmt: skip
    missing = missing_parts(data)
    if missing or data.notes:
        overview.blocks.append(Block("text", text="**Missing or incomplete:**\n" +
                                     "\n".join(f"- {m}" for m in [*missing, *data.notes])))  # fmt: skip
    sections.append(overview)
    if data.evals:
        sections.append(Section("Main results", [main_table(data)]))
        sections += [s for s in [paired_section(data), contrast_section(data)] if s is not None]
        for bench in data.benches:
            section = Section(f"Benchmark: {bench}", [bench_table(data, bench)])
            kind = bench_kind([e for e in data.evals if e.bench == bench])
            key = "func-sec@1" if kind == "functional-security" else "pass@1" if kind == "utility" else "spr@1"
            if kind != "utility":
                chart = per_cwe_chart(data, bench, key)
                if chart:
                    section.blocks.append(Block("image", image=chart, name=f"per-cwe-{_slug(bench)}.png",
                                                text=f"{bench}: {key} per CWE"))  # fmt: skip
                table = per_group_table(data, bench, "per_cwe", key)
                if table:
                    section.blocks.append(table)
            agreement = agreement_table(data, bench)
            if agreement:
                section.blocks += agreement
            languages = {g for e in data.evals if e.bench == bench for g in (e.metrics.get("per_language") or {})}
            if len(languages) > 1:
                table = per_group_table(data, bench, "per_language", key)
                if table:
                    section.blocks.append(table)
            sections.append(section)
        rows = coverage_rows((e.bench, e.metrics) for e in sorted(data.evals, key=lambda e: bench_order(e.bench)))
        sections.append(Section("Oracle coverage", [Block("table", headers=COVERAGE_HEADERS, rows=rows)]))
    sections += [s for s in [rounds_section(data)] if s is not None]
    training = Section("Training")
    curves = training_curves_chart(data)
    if curves:
        training.blocks.append(Block("image", image=curves, name="training-curves.png", text="training curves"))
    table = training_table(data)
    if table:
        training.blocks.append(table)
    budgets = budget_table(data)
    if budgets:
        training.blocks.append(Block("text", text="**Budgets** (per method and seed, all rounds):"))
        training.blocks.append(budgets)
    if training.blocks:
        sections.append(training)
    examples = pick_example_trees(data)
    if examples:
        section = Section("Example trees")
        for seed, method, round_no, tree in examples:
            section.blocks.append(Block("text", text=f"{method}, seed {seed}, round {round_no}:"))
            section.blocks.append(Block("tree", tree=tree))
        sections.append(section)
    if data.config_text is not None:
        sections.append(Section("Resolved config", [Block("pre", text=data.config_text)]))
    return sections


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def render_markdown(sections: Sequence[Section], assets_dir: Path, *, title: str) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if block.kind == "text":
                out += [block.text, ""]
            elif block.kind == "table":
                out.append("| " + " | ".join(block.headers) + " |")
                out.append("|" + "---|" * len(block.headers))
                out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in block.rows]
                out.append("")
            elif block.kind in ("image", "svg"):  # svg: hand-written text (treeplay.eval.svg)
                assets_dir.mkdir(parents=True, exist_ok=True)
                (assets_dir / block.name).write_bytes(block.image)
                out += [f"![{block.text}]({assets_dir.name}/{block.name})", ""]
            elif block.kind == "pre":
                out += ["```", block.text.rstrip(), "```", ""]
            elif block.kind == "tree":
                out += [tree_markdown(block.tree), ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:14px}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}img{max-width:100%}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}.node{background:#0969da;color:#fff;border-radius:3px;padding:0 3px;font-size:11px}
figure.svg{margin:.5em 0;overflow-x:auto}iframe.tree{width:100%;height:640px;border:1px solid #d0d7de}.label{color:#fff;border-radius:3px;padding:1px 5px;font-size:12px}ul{list-style:none;padding-left:1em}
"""


def _inline_md(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def render_html(sections: Sequence[Section], *, title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if block.kind == "text":
                lines = block.text.splitlines()
                bullets = [line[2:] for line in lines if line.startswith("- ")]
                others = [line for line in lines if not line.startswith("- ")]
                body.append("<p>" + "<br>".join(_inline_md(line) for line in others) + "</p>")
                if bullets:
                    body.append("<ul class='missing'>" + "".join(f"<li>{_inline_md(b)}</li>" for b in bullets) + "</ul>")
            elif block.kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif block.kind == "image":
                encoded = base64.b64encode(block.image).decode("ascii")
                body.append(f"<img alt='{html.escape(block.text)}' src='data:image/png;base64,{encoded}'>")
            elif block.kind == "svg":
                body.append(f"<figure class='svg'>{block.image.decode('utf-8')}</figure>")
            elif block.kind == "pre":
                body.append(f"<details><summary>show</summary><pre>{html.escape(block.text)}</pre></details>")
            elif block.kind == "tree":
                body.append(tree_block_html(block.tree))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(run_dir: Path | str) -> tuple[Path, Path]:
    """Write RUN_DIR/report.md (+ RUN_DIR/report-assets/*.png) and self-contained RUN_DIR/report.html."""
    root = Path(run_dir)
    data = collect_run(root)
    sections = build_sections(data)
    title = f"treeplay report: {root.resolve().name}"
    md_path, html_path = root / "report.md", root / "report.html"
    md_path.write_text(render_markdown(sections, root / "report-assets", title=title), encoding="utf-8")
    html_path.write_text(render_html(sections, title=title), encoding="utf-8")
    return md_path, html_path
