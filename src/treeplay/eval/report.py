"""The run report: Markdown + one self-contained HTML file (charts embedded as base64 PNG).

Reads the run-dir layout `treeplay run` writes (`treeplay.run_layout`, docs/eval.md), works with
any subset of methods/seeds/benches present and says what is missing. The report is built once as
a list of sections of plain blocks and rendered to both formats. Its parts:
`report_data` (reading the run dir; the block model), `report_tables`, `report_charts`,
`report_paired` and `report_oracle` (sections), `report_render` (Markdown and HTML); trees are
drawn by `treeplay.tree.render`.
"""

from __future__ import annotations

from pathlib import Path

from treeplay.eval.report_charts import per_cwe_chart, training_curves_chart
from treeplay.eval.report_data import (  # noqa: F401  (the report's public names, importable from here)
    HELDOUT_BENCH,
    METHOD_NAMES,
    METHODS,
    Block,
    EvalResult,
    RunData,
    Section,
    bench_order,
    collect_run,
    missing_parts,
)
from treeplay.eval.report_oracle import COVERAGE_HEADERS, coverage_rows
from treeplay.eval.report_paired import contrast_section, paired_section, rounds_section
from treeplay.eval.report_render import render_html, render_markdown, slug
from treeplay.eval.report_tables import (
    NONFUNCTIONAL_NOTE,
    PAIR_CONTRAST_NOTE,
    agreement_table,
    bench_kind,
    bench_table,
    budget_table,
    main_table,
    main_table_seeds_note,
    nonfunctional_table,
    pair_contrast_table,
    per_group_table,
    training_table,
)
from treeplay.tree.records import Tree
from treeplay.tree.render import golden_with_markers  # noqa: F401  (re-exported)

BUDGET_NOTE = (
    "**Budgets** (per method and seed, all rounds). `wall_s`: what the arm's model and its evaluations "
    "took, counting a stage it copied from an earlier arm (same inputs) or whose trees it paired again "
    "at the wall time of the stage that did the work; `shared_wall_s`: that part (budgets written "
    "before 2026-11-29 counted a copy at its own few seconds and have no such field)."
)


def _seeds_text(data: RunData) -> str:
    """The evaluated seeds, and those begun without an evaluation (left out of every table)."""
    begun = [seed for seed in data.seeds if seed not in data.evaluated_seeds]
    text = ", ".join(map(str, data.evaluated_seeds)) or "none evaluated"
    return text + (f" (begun, nothing evaluated yet: {', '.join(map(str, begun))})" if begun else "")


def build_sections(data: RunData) -> list[Section]:
    sections: list[Section] = []
    overview = Section("Overview")
    overview.blocks.append(Block("text", text=(
        f"Run dir `{data.run_dir}`; seeds: {_seeds_text(data)}; "
        f"methods: {', '.join(data.methods) or 'none'}; benches: {', '.join(data.benches) or 'none'}. "
        "Rates in %. With ≥3 seeds: mean ± 95% t-interval over seeds; with 2 seeds: mean (the two seeds' "
        "values, in seed order: a t-interval on 2 seeds is too wide to read); with one seed: value "
        "[bootstrap 95% CI over tasks]. SPR@1 = secure share of the generations that parse and hold "
        "code; strict SPR@1 counts unparseable, empty and nonfunctional generations as failures. The held-out "
        "reduction compares the vulnerable share among parseable, non-empty programs (strict: "
        "unparseable and empty count as insecure). Generations the oracle could not judge "
        "(incomplete, unsupported) are left out of every rate: see Oracle coverage.")))  # fmt: skip
    missing = missing_parts(data)
    if missing or data.notes:
        overview.blocks.append(Block("text", text="**Missing or incomplete:**\n" +
                                     "\n".join(f"- {m}" for m in [*missing, *data.notes])))  # fmt: skip
    sections.append(overview)
    if data.evals:
        seeds_note = main_table_seeds_note(data)
        main = Section("Main results", [main_table(data)])
        if seeds_note:
            main.blocks.append(Block("text", text=seeds_note))
        sections.append(main)
        sections += [s for s in [paired_section(data), contrast_section(data)] if s is not None]
        for bench in data.benches:
            section = Section(f"Benchmark: {bench}", [bench_table(data, bench)])
            kind = bench_kind([e for e in data.evals if e.bench == bench])
            key = "func-sec@1" if kind == "functional-security" else "pass@1" if kind == "utility" else "spr@1"
            if kind != "utility":
                chart = per_cwe_chart(data, bench, key)
                if chart:
                    section.blocks.append(Block("image", image=chart, name=f"per-cwe-{slug(bench)}.png",
                                                text=f"{bench}: {key} per CWE"))  # fmt: skip
                table = per_group_table(data, bench, "per_cwe", key)
                if table:
                    section.blocks.append(table)
            nonfunctional = nonfunctional_table(data, bench)
            if nonfunctional:
                section.blocks += [Block("text", text=NONFUNCTIONAL_NOTE), nonfunctional]
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
        training.blocks.append(Block("text", text=BUDGET_NOTE))
        training.blocks.append(budgets)
    contrasts = pair_contrast_table(data)
    if contrasts:
        training.blocks += [Block("text", text=PAIR_CONTRAST_NOTE), contrasts]
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


def pick_example_trees(data: RunData, count: int = 2) -> list[tuple[int, str, int, Tree]]:
    """Trees with the most mixed outcomes (secure and vulnerable branches), preferring TSP's."""

    def score(item: tuple[int, str, int, Tree]) -> tuple[int, int, int]:
        labels = [b.label for b in item[3].branches]
        mixed = int("secure" in labels and "vulnerable" in labels)
        return (mixed, int(item[1] == "tsp"), min(len(labels), 12))

    ranked = sorted(data.trees, key=score, reverse=True)
    chosen, seen = [], set()
    for item in ranked:
        if item[3].task_id in seen:
            continue
        seen.add(item[3].task_id)
        chosen.append(item)
        if len(chosen) == count:
            break
    return chosen


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
