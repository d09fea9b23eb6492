"""The report's PNG charts (matplotlib, headless): per-CWE bars and the training curves."""

from __future__ import annotations

import io
from typing import Any

from treeplay.eval.metrics import mean_ci_over_seeds
from treeplay.eval.report_data import RunData, logs_by_run
from treeplay.eval.report_tables import metric_value, natural_order


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
    cwes = sorted({c for e in results for c in (e.metrics.get("per_cwe") or {})}, key=natural_order)
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
                if e.method == method and (v := metric_value((e.metrics.get("per_cwe") or {}).get(cwe, {}), key)) is not None
            ]
            stat = mean_ci_over_seeds(values)
            means.append(100 * stat.mean if stat else np.nan)
            half = stat.half_width if stat is not None and stat.n_seeds >= 3 else None  # t on 2 seeds: off the chart
            errs.append(100 * half if half is not None else 0.0)
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=errs, capsize=2, label=method)
    ax.set_xticks(x, cwes, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"{key} (%)")
    ax.set_ylim(0, 118)
    ax.set_title(f"{bench}: {key} per CWE (mean over seeds; 95% t-interval from 3 seeds)")
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
    for (seed, method), runs in logs_by_run(data).items():
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
