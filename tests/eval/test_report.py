"""Report generation on a small synthetic run dir with metrics computed from constructed records."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from generation_fixtures import generation_json

from treeplay.eval.evaluate import compute_metrics
from treeplay.eval.records import Generation
from treeplay.eval.report import collect_run, golden_with_markers, missing_parts, write_report
from treeplay.jsonl import write_jsonl
from treeplay.tasks.records import Task
from treeplay.tree.records import tree_from_dict


def generation(task: str, cwe: str, status: str, language: str = "py", bench: str = "securityeval") -> dict[str, Any]:
    return generation_json(task, language=language, cwe=[cwe], bench=bench, completion="x = 1\n",
                           verdict={"status": status, "findings": [], "target_hit": status == "vulnerable"})  # fmt: skip


def write_eval(run: Path, seed: int, method: str, bench: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    out = run / f"seed-{seed}" / method / "eval" / bench.replace(":", "-")
    write_jsonl(out / "generations.jsonl", records)
    generations = [Generation.from_json(out / "generations.jsonl", i, r) for i, r in enumerate(records, start=1)]
    metrics = compute_metrics(generations, humaneval=bench == "humaneval")
    metrics.update(bench=bench, generations=len(records), tasks_evaluated=len({r["task_id"] for r in records}))
    (out / "metrics.json").write_text(json.dumps(metrics))
    return metrics


TREE = {
    "task_id": "CWE-089_q.py", "golden": "cur.execute(q, (name,))\nreturn cur.fetchall()\n",
    "golden_source": "task", "round": 1, "model_id": "embedded", "config_hash": "h",
    "nodes": [
        {"id": "n0", "parent": None, "branch_of_parent": None, "char_offset": 0, "token_offset": 0,
         "strategy": "diff", "prefix_hash": "a", "depth": 1},
        {"id": "n1", "parent": None, "branch_of_parent": None, "char_offset": 24, "token_offset": 7,
         "strategy": "oracle", "prefix_hash": "b", "depth": 1},
    ],
    "branches": [
        {"node_id": "n0", "prefix": "def f(name):\n", "completion": "cur.execute('..' + name)\n", "token_ids": [],
         "logprobs": [], "label": "vulnerable", "cwe": "CWE-89", "first_flagged_line": 2},
        {"node_id": "n0", "prefix": "def f(name):\n", "completion": "cur.execute(q, (name,))\n", "token_ids": [],
         "logprobs": [], "label": "secure"},
    ],
}  # fmt: skip
# The same tree with the task snapshot the tree builder stores: rendered by treeplay.tree.render.
TREE_WITH_TASK = dict(TREE, task_id="CWE-089_r.py", task=Task(
    id="CWE-089_r.py", language="py", cwe=("CWE-89",), instruction="Query users by name", prefix="def f(name):\n",
).to_dict())  # fmt: skip


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seeds: [0, 1]\nmethods: [base, tsp]\n")
    for seed in (0, 1):
        # base: 2 of 4 secure on securityeval; tsp: 3 (seed 0) / 4 (seed 1) of 4.
        base = ["secure", "vulnerable", "secure", "vulnerable"]
        tsp = ["secure", "secure", "secure", "unparseable" if seed == 0 else "secure"]
        for method, statuses in (("base", base), ("tsp", tsp)):
            write_eval(run, seed, method, "securityeval",
                       [generation(f"t{i}", "CWE-89" if i < 2 else "CWE-79", s) for i, s in enumerate(statuses)])  # fmt: skip
            held = ["vulnerable"] * (4 if method == "base" else 1) + ["secure"] * (0 if method == "base" else 3)
            write_eval(run, seed, method, "sec-eval:not-trained",
                       [generation(f"h{i}", "CWE-020", s, bench="sec-eval:not-trained") for i, s in enumerate(held)])  # fmt: skip
        tsp_dir = run / f"seed-{seed}" / "tsp"
        for round_no in (1, 2):
            # the trainer's own log file and key names (treeplay.train.trainer writes metrics.jsonl)
            log = [{"step": s, "loss": 0.7 - 0.05 * s - 0.1 * round_no, "lr": 1e-5, "rewards/margin": 0.1 * s,
                    "rewards/accuracy": 0.5 + 0.1 * s, "logps/chosen": -10.0, "logps/rejected": -12.0} for s in range(1, 5)]  # fmt: skip
            write_jsonl(tsp_dir / f"round-{round_no}" / "train" / "metrics.jsonl", log)
            write_jsonl(tsp_dir / f"round-{round_no}" / "data" / "trees.jsonl", [TREE, TREE_WITH_TASK])
        (tsp_dir / "budget.json").write_text(json.dumps({"optimizer_steps": 8, "tokens": 12000, "pairs": 16, "wall_s": 30.5}))
    return run


def table_row(markdown: str, first_cell: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_tables_hold_the_computed_metrics(run_dir: Path) -> None:
    md_path, _ = write_report(run_dir)
    markdown = md_path.read_text()
    headers = table_row(markdown, "Method")
    base, tsp = table_row(markdown, "Base model"), table_row(markdown, "TSP (tree)")
    spr = headers.index("securityeval SPR@1")
    assert base[spr] == "50.0 (50.0, 50.0)"  # 2/4 secure in both seeds: two seeds show both values
    # TSP: seed 0 -> 3/3 parseable secure, seed 1 -> 4/4: SPR 100 in both; strict 75 and 100.
    assert tsp[spr] == "100.0 (100.0, 100.0)"
    strict = headers.index("securityeval strict SPR@1")
    # seeds 75 and 100: mean 87.5; not the t-interval 87.5 ± 158.8 (t(1) = 12.706)
    assert tsp[strict] == "87.5 (75.0, 100.0)"
    # held-out: base 4 vulnerable, tsp 1 -> reduction 75% vs base in both seeds; no SFT run.
    assert tsp[headers.index("held-out vulns (count)")] == "1.0 (1.0, 1.0)"
    assert tsp[headers.index("reduction vs base %")] == "75.0 (75.0, 75.0)"
    assert tsp[headers.index("reduction vs SFT %")] == "–"
    # what is missing is said
    assert "methods not run: sft, selfplay" in markdown
    assert "no HumanEval evaluation" in markdown
    assert "seed 0 / base: no training log" not in markdown  # base is never trained
    assert (run_dir / "report-assets" / "training-curves.png").stat().st_size > 1000


def test_bench_tables_show_answer_size_in_lines_not_percent(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seeds: [0]\nmethods: [base, tsp]\n")
    # base answers with 3 lines, TSP with 1: the shortening docs/results.md found on HumanEval
    for method, body in (("base", "    a = f(x)\n    b = g(a)\n    return b\n"), ("tsp", "    return f(x)\n")):
        write_eval(run, 0, method, "securityeval", [
            generation_json(f"t{i}", cwe=["CWE-89"], bench="securityeval", completion=body,
                            verdict={"status": "secure", "findings": []}) for i in range(2)])  # fmt: skip
    markdown = write_report(run)[0].read_text()
    section = markdown[markdown.index("Benchmark: securityeval"):]
    headers = table_row(section, "Method")
    lines = headers.index("code_lines")
    assert table_row(section, "Base model")[lines] == "3.0 [3.0, 3.0]"
    assert table_row(section, "TSP (tree)")[lines] == "1.0 [1.0, 1.0]"
    one_line = headers.index("one_line_share")
    assert table_row(section, "Base model")[one_line] == "0.0 [0.0, 0.0]"  # a share, shown in %
    assert table_row(section, "TSP (tree)")[one_line] == "100.0 [100.0, 100.0]"


def test_bench_tables_show_the_share_of_answers_cut_at_the_token_limit(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seeds: [0]\nmethods: [base, tsp]\n")
    # base: all 4 answers stop; TSP: 1 of 4 runs into the limit (25%)
    for method, cut in (("base", 0), ("tsp", 1)):
        write_eval(run, 0, method, "securityeval", [
            generation_json(f"t{i}", cwe=["CWE-89"], bench="securityeval", finish_reason="length" if i < cut else "stop",
                            verdict={"status": "secure", "findings": []}) for i in range(4)])  # fmt: skip
    markdown = write_report(run)[0].read_text()
    section = markdown[markdown.index("Benchmark: securityeval"):]
    column = table_row(section, "Method").index("cut_share")
    assert table_row(section, "Base model")[column].startswith("0.0 ")
    assert table_row(section, "TSP (tree)")[column].startswith("25.0 ")


def test_html_is_self_contained(run_dir: Path) -> None:
    _, html_path = write_report(run_dir)
    page = html_path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) >= 3  # per-CWE bars for 2 benches + training curves
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)  # nothing external
    assert page.count("<table>") >= 4
    assert "<span class='node'>n0</span>" in page and "vulnerable</span>" in page  # simple rendering
    frame = re.search(r'<iframe class=\'tree\' srcdoc="([^"]*)"', page)  # the tree stage's page, inline
    assert frame is not None
    inner = html.unescape(frame.group(1))
    assert "Query users by name" in inner and "<html" in inner


def test_missing_and_partial_runs(tmp_path: Path) -> None:
    run = tmp_path / "partial"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    # an evaluation killed before metrics.json: recomputed from generations
    killed = run / "seed-0" / "tsp" / "eval" / "securityeval"
    write_jsonl(killed / "generations.jsonl", [generation("t0", "CWE-89", "vulnerable")])
    data = collect_run(run)
    assert {e.method for e in data.evals} == {"base", "tsp"}
    assert any("recomputed" in note for note in data.notes)
    missing = missing_parts(data)
    assert "config.yaml (the resolved config) is missing" in missing
    assert "seed 0 / tsp: no training log" in missing
    md_path, _ = write_report(run)
    assert "| TSP (tree) | 0.0 [0.0, 0.0] |" in md_path.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "nothing was run yet" in write_report(empty)[0].read_text()


def test_a_seed_begun_without_an_evaluation_is_not_counted_as_a_seed(tmp_path: Path) -> None:
    """A run stopped just after seed 1's first (data) stage: seed 1 has a directory and no result."""
    run = tmp_path / "begun"
    for method, status in (("base", "vulnerable"), ("sft", "secure")):
        write_eval(run, 0, method, "securityeval", [generation("t0", "CWE-89", status)])
    write_jsonl(run / "seed-1" / "sft" / "round-1" / "data" / "pairs.jsonl", [])
    md = write_report(run)[0].read_text()
    assert "seeds: 0 (begun, nothing evaluated yet: 1);" in md
    assert "Seeds and tasks resampled" not in md and "With 2 seeds the seed level is coarse" not in md
    missing = missing_parts(collect_run(run))
    assert "base: not run on seed 1 (no seed-S/base/ directory)" in missing
    assert "seed 1 / sft: no evaluation on securityeval" in missing  # begun: its gaps one by one


def test_main_table_rows_compare_the_same_seeds(tmp_path: Path) -> None:
    """TSP has seeds 0 and 1, base only seed 0: the main table shows TSP's seed 0 beside base's seed 0
    (not its two-seed mean), names the seed it left out, and the per-bench table keeps both seeds. An
    arm with only a data stage gets no row of dashes."""
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation(f"t{i}", "CWE-89", s) for i, s in
                                                enumerate(["secure", "secure", "vulnerable", "vulnerable"])])  # fmt: skip
    for seed, status in ((0, "secure"), (1, "vulnerable")):
        write_eval(run, seed, "tsp", "securityeval", [generation(f"t{i}", "CWE-89", status) for i in range(4)])
    write_jsonl(run / "seed-0" / "selfplay" / "round-1" / "data" / "pairs.jsonl", [])
    md = write_report(run)[0].read_text()
    main = md[md.index("## Main results"):md.index("## Paired")]
    spr = table_row(main, "Method").index("securityeval SPR@1")
    assert table_row(main, "Base model")[spr] == "50.0 [0.0, 100.0]"
    assert table_row(main, "TSP (tree)")[spr] == "100.0 [100.0, 100.0]"  # seed 0 only, as base
    assert "left out of this table" in main and "securityeval: seed 1 (only tsp)" in main
    assert "| Self-play" not in main
    section = md[md.index("Benchmark: securityeval"):]
    assert table_row(section, "TSP (tree)")[table_row(section, "Method").index("spr@1")] == "50.0 (100.0, 0.0)"


def test_a_variant_short_of_a_seed_does_not_take_it_from_the_methods(tmp_path: Path) -> None:
    """Base and TSP on seeds 0-2, the ablation tsp-sibling on seeds 0-1 only: the methods' rows stay
    over three seeds (mean ± t-interval), the variant's row is over its two, and the note says so."""
    run = tmp_path / "run"
    for seed, status in ((0, "secure"), (1, "secure"), (2, "vulnerable")):
        write_eval(run, seed, "base", "securityeval", [generation(f"t{i}", "CWE-89", status) for i in range(2)])
        write_eval(run, seed, "tsp", "securityeval", [generation(f"t{i}", "CWE-89", "secure") for i in range(2)])
    for seed, status in ((0, "secure"), (1, "vulnerable")):
        write_eval(run, seed, "tsp-sibling", "securityeval", [generation(f"t{i}", "CWE-89", status) for i in range(2)])
    md = write_report(run)[0].read_text()
    main = md[md.index("## Main results"):md.index("## Paired")]
    spr = table_row(main, "Method").index("securityeval SPR@1")
    assert table_row(main, "TSP (tree)")[spr] == "100.0 ± 0.0"  # seeds 0, 1, 2 all 100
    assert table_row(main, "Base model")[spr].startswith("66.7 ± ")  # 100, 100, 0
    assert table_row(main, "tsp-sibling")[spr] == "50.0 (100.0, 0.0)"  # its own two seeds
    assert "securityeval: tsp-sibling has no seed 2 (its cells are over seeds 0, 1)" in main
    assert "left out of this table" not in main


def test_main_table_says_when_arms_share_no_seed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    write_eval(run, 1, "tsp", "securityeval", [generation("t0", "CWE-89", "vulnerable")])
    md = write_report(run)[0].read_text()
    main = md[md.index("## Main results"):md.index("## Benchmark")]
    assert "on securityeval the arms share no seed" in main
    assert "left out of this table" not in main


def test_a_variant_left_off_a_bench_by_design_is_said_so(tmp_path: Path) -> None:
    """tsp-dpo evaluated on sallm only (`variants.tsp-dpo.benches`): its missing securityeval is
    by design; tsp's missing sallm is a real gap. With sallm run, func-sec@1 is reported."""
    run = tmp_path / "run"
    for method, bench in [("base", "securityeval"), ("base", "sallm"), ("tsp", "securityeval"), ("tsp-dpo", "sallm")]:
        write_eval(run, 0, method, bench, [generation("t0", "CWE-89", "secure", bench=bench)])
    (run / "config.yaml").write_text("name: x\nvariants:\n  tsp-dpo:\n    method: tsp\n    benches: [sallm]\n")
    missing = missing_parts(collect_run(run))
    assert "seed 0 / tsp-dpo: not evaluated on securityeval (by design: the config's variants.tsp-dpo.benches)" in missing
    assert "seed 0 / tsp: no evaluation on sallm" in missing
    assert not any("func-sec@1 not reported" in m for m in missing)
    (run / "config.yaml").write_text("name: x\n")  # no variants: the same gap is a plain gap
    assert "seed 0 / tsp-dpo: no evaluation on securityeval" in missing_parts(collect_run(run))


def test_benches_the_config_does_not_name_are_left_out_with_a_note(tmp_path: Path) -> None:
    """A run dir seeded by `cp -al` from another run carries that run's base evaluations; the report
    shows only the benches of this run's own config and says what it left out."""
    run = tmp_path / "run"
    write_eval(run, 0, "base", "sallm", [generation("t0", "CWE-89", "secure", bench="sallm")])
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "vulnerable")])
    write_eval(run, 0, "base", "sec-eval:not-trained",
               [generation("h0", "CWE-020", "vulnerable", bench="sec-eval:not-trained")])  # fmt: skip
    (run / "config.yaml").write_text("name: x\neval:\n  benches: [sallm]\n")
    data = collect_run(run)
    assert data.benches == ["sallm"]
    assert ("2 evaluation(s) on benches this run's config does not name (securityeval, sec-eval:not-trained) "
            "were left out: they come from another run whose directories this one was seeded from") in data.notes
    assert "seed 0 / base: no evaluation on securityeval" not in missing_parts(data)
    (run / "config.yaml").write_text("name: x\n")  # a config without eval.benches keeps everything
    assert sorted(collect_run(run).benches) == ["sallm", "sec-eval:not-trained", "securityeval"]


def test_golden_markers_follow_node_offsets() -> None:
    marked = golden_with_markers(tree_from_dict(TREE))
    assert marked.startswith("«n0»cur.execute(q, (name,))\n«n1»return")


def test_a_bad_tree_record_is_a_note_naming_file_line_and_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    bad = dict(TREE, nodes=[dict(TREE["nodes"][0]), dict(TREE["nodes"][1], char_offset="24")])
    trees = run / "seed-0" / "tsp" / "round-1" / "data" / "trees.jsonl"
    write_jsonl(trees, [TREE, bad])
    data = collect_run(run)
    assert data.trees == []  # the file's trees are dropped, as for unreadable JSON
    assert data.notes == [f"could not read seed-0/tsp/round-1/data/trees.jsonl: {trees}:2: bad tree record: "
                          "field 'nodes[1].char_offset': expected int, got str"]  # fmt: skip
    markdown = write_report(run)[0].read_text()
    assert "field 'nodes[1].char_offset'" in markdown and "## Example trees" not in markdown


def test_training_table_reads_the_trainers_log(run_dir: Path) -> None:
    md_path, _ = write_report(run_dir)
    row = next(line for line in md_path.read_text().splitlines() if line.startswith("| tsp | 0 | 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # steps, first loss, last loss, last margin (rewards/margin), last pref acc (rewards/accuracy)
    assert cells[3:] == ["4", "0.450", "0.300", "0.400", "0.900"]


def test_metrics_written_under_older_definitions_are_recomputed_and_said_so(tmp_path: Path) -> None:
    # metrics v1 credited a nonfunctional secure program in strict SPR@1; v2 counts it as a failure.
    run = tmp_path / "stale"
    broken = generation_json("t0", cwe=["CWE-89"], completion="import nosuchmodule\n",
                             verdict={"status": "secure", "findings": [], "functional": "nonfunctional"})  # fmt: skip
    write_eval(run, 0, "base", "securityeval", [broken, generation("t1", "CWE-89", "secure")])
    write_eval(run, 0, "tsp", "securityeval", [broken, generation("t1", "CWE-89", "secure")])
    base_metrics = run / "seed-0" / "base" / "eval" / "securityeval" / "metrics.json"
    old = json.loads(base_metrics.read_text())
    # as a v1 evaluation wrote it: no version, strict SPR@1 1.0, plus fields only the evaluation knows
    old.pop("metrics_version")
    old["strict_spr@1"] = {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n_tasks": 2}
    old["timings_this_run"] = {"sampling": 12.5}
    base_metrics.write_text(json.dumps(old))
    current = run / "seed-0" / "tsp" / "eval" / "securityeval" / "metrics.json"
    kept = json.loads(current.read_text())
    kept["strict_spr@1"]["value"] = 0.25  # a current-version file is read as written, not recomputed
    current.write_text(json.dumps(kept))

    data = collect_run(run)
    base = data.result(0, "base", "securityeval")
    assert base is not None and base.recomputed == "stale (metrics v1)"
    assert base.metrics["strict_spr@1"]["value"] == pytest.approx(0.5)  # t0 broken: 0, t1: 1
    assert base.metrics["timings_this_run"] == {"sampling": 12.5}
    assert base.metrics["generations"] == 2
    tsp = data.result(0, "tsp", "securityeval")
    assert tsp is not None and tsp.recomputed == "" and tsp.metrics["strict_spr@1"]["value"] == 0.25
    notes = [n for n in data.notes if "older metric definitions" in n]
    assert len(notes) == 1 and notes[0].startswith("1 evaluation(s)") and "stale (metrics v1)" in notes[0]
    assert base_metrics.read_text() == json.dumps(old)  # the report never rewrites a run's files


def _judged(task: str, status: str, completion: str, **verdict: Any) -> dict[str, Any]:
    return generation_json(task, language=verdict.pop("language", "py"), cwe=["CWE-020"], bench="sec-eval:not-trained",
                           completion=completion, verdict={"status": status, "findings": [], "target_hit": False, **verdict})  # fmt: skip


def test_empty_or_broken_output_is_no_heldout_reduction_and_coverage_is_listed(tmp_path: Path) -> None:
    # issue 14 items 2, 5, 7, 8: base writes 2 vulnerable + 2 secure programs (and one incomplete,
    # one unsupported generation, which no rate counts); "tsp" writes only unparseable or empty
    # output. Old code: vulnerable share 0.5 -> 0.0 = "100% reduction".
    run = tmp_path / "run"
    ran = {"analyzers_run": ["bandit", "semgrep"]}
    base = [_judged("h0", "vulnerable", "x = 1\n", **ran), _judged("h1", "vulnerable", "x = 1\n", **ran),
            _judged("h2", "secure", "x = 1\n", **ran), _judged("h3", "secure", "x = 1\n", **ran),
            _judged("h4", "incomplete", "x = 1\n", analyzers_run=["bandit"], failed_analyzers=["semgrep"]),
            _judged("h5", "unsupported", "x = 1\n", language="rb")]  # fmt: skip
    lazy = [_judged("h0", "unparseable", "x = (\n"), _judged("h1", "unparseable", "x = (\n"),
            _judged("h2", "secure", "    pass\n", **ran), _judged("h3", "secure", '    """TODO"""\n', **ran)]  # fmt: skip
    base_metrics = write_eval(run, 0, "base", "sec-eval:not-trained", base)
    write_eval(run, 0, "tsp", "sec-eval:not-trained", lazy)
    assert base_metrics["vulnerable_attempted_share"]["value"] == 0.5  # h4, h5 left out
    assert base_metrics["counts"]["incomplete"] == 1 and base_metrics["counts"]["unsupported"] == 1
    assert base_metrics["unsupported_languages"] == ["rb"]
    markdown = write_report(run)[0].read_text()
    headers, tsp = table_row(markdown, "Method"), table_row(markdown, "TSP (tree)")
    assert tsp[headers.index("held-out vulns (count)")] == "0.0"
    assert tsp[headers.index("reduction vs base %")] == "–"  # no parseable non-empty program
    assert tsp[headers.index("strict reduction vs base %")] == "-100.0"  # insecure 0.5 -> 1.0
    coverage = table_row(markdown, "sec-eval:not-trained")
    assert coverage[1:] == ["bandit (7), semgrep (6)", "semgrep (1)", "1", "1", "rb"]


def test_budget_table_counts_pair_kinds_and_flags_untrained(tmp_path: Path) -> None:
    # issue 14 items 3 and 10: golden-vs-unparseable pairs are counted apart; an untrained method is said
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    write_eval(run, 0, "tsp", "securityeval", [generation("t0", "CWE-89", "secure")])
    write_eval(run, 0, "sft", "securityeval", [generation("t0", "CWE-89", "secure")])
    budgets = {
        "tsp": {"optimizer_steps": 4, "tokens": 100, "pairs": 5, "wall_s": 31.0, "shared_wall_s": 30.0, "untrained": [],
                "pairs_by_mode": {"golden-vs-branch": 3, "golden-vs-unparseable": 2}},
        "sft": {"optimizer_steps": 0, "tokens": 0, "pairs": 0, "wall_s": 1.0, "pairs_by_mode": {},
                "untrained": ["seed 0 / sft / round 1: 0 training pairs"]},
    }  # fmt: skip
    for method, budget in budgets.items():
        (run / "seed-0" / method / "budget.json").write_text(json.dumps(budget))
    # the sampling budget comes from the arm's trees over both rounds: 2 + 1 branches, 3 + 2 + 4 tokens
    two = dict(TREE, branches=[dict(TREE["branches"][0], token_ids=[1, 2, 3], logprobs=[-1.0] * 3),
                               dict(TREE["branches"][1], token_ids=[4, 5], logprobs=[-1.0] * 2)])
    one = dict(TREE, round=2, branches=[dict(TREE["branches"][1], token_ids=[6, 7, 8, 9], logprobs=[-1.0] * 4)])
    write_jsonl(run / "seed-0" / "tsp" / "round-1" / "data" / "trees.jsonl", [two])
    write_jsonl(run / "seed-0" / "tsp" / "round-2" / "data" / "trees.jsonl", [one])
    markdown = write_report(run)[0].read_text()
    headers = table_row(markdown, "method | seed | optimizer_steps")
    assert headers[-7:] == ["wall_s", "shared_wall_s", "sampled branches", "sampled tokens",
                            "pairs: golden-vs-branch", "pairs: golden-vs-unparseable", "note"]  # fmt: skip
    assert table_row(markdown, "tsp | 0 | 4")[-7:] == ["31", "30", "3", "9", "3", "2", ""]
    assert table_row(markdown, "sft | 0 | 0")[-7:] == ["1", "–", "–", "–", "0", "0", "untrained"]  # no field: older budget
    assert ("seed 0 / sft: UNTRAINED, evaluated as the model it started from "
            "(seed 0 / sft / round 1: 0 training pairs)") in markdown


def _pair_json(mode: str, chosen: str, rejected: str) -> dict[str, Any]:
    return {"task_id": "t0", "node_id": "n1", "mode": mode, "language": "py", "cwe": "CWE-89",
            "instruction": "i", "prefix": "def f(q):\n", "chosen": chosen, "rejected": rejected}  # fmt: skip


def test_pair_contrast_table_lists_each_mode_of_each_round(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    data_dir = run / "seed-0" / "tsp" / "round-1" / "data"
    write_jsonl(data_dir / "pairs.jsonl", [
        _pair_json("golden-vs-branch", "cur.execute(q, (name,))\n", "# run it\ncur.execute(q % name)\n"),  # 24 vs 30
        _pair_json("golden-vs-branch", "return cur.fetchall()\n", "x\n"),  # 22 vs 2
        _pair_json("sibling", "a\n", "bb\n"),  # 2 vs 3
    ])  # fmt: skip
    write_jsonl(run / "seed-0" / "sft" / "round-1" / "data" / "pairs.jsonl", [_pair_json("sft", "# c\nx = 1\n", "")])
    markdown = write_report(run)[0].read_text()
    assert table_row(markdown, "method | seed | round | pair mode")[4:] == [
        "pairs", "chosen side", "chars chosen", "chars rejected", "chosen longer", "opens with comment: chosen",
        "rejected", "calls the chosen side adds (net pairs)"]  # fmt: skip
    # medians 23 and 16 characters; 1 of 2 chosen sides longer; 1 of 2 rejected sides open with a comment;
    # execute is called on both sides of pair 1 (net 0), fetchall only on the chosen side of pair 2
    assert table_row(markdown, "tsp | 0 | 1 | golden-vs-branch") == [
        "tsp", "0", "1", "golden-vs-branch", "2", "dataset", "23", "16", "50", "0", "50", "fetchall +1"]  # fmt: skip
    assert table_row(markdown, "tsp | 0 | 1 | sibling")[4:] == ["1", "model", "2", "3", "0", "0", "0", "–"]
    assert table_row(markdown, "sft | 0 | 1 | sft")[4:] == ["1", "dataset", "10", "–", "–", "100", "–", "–"]


def test_a_bad_pair_record_is_a_note_naming_file_line_and_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    pairs = run / "seed-0" / "tsp" / "round-1" / "data" / "pairs.jsonl"
    write_jsonl(pairs, [_pair_json("sibling", "a", "b"), dict(_pair_json("sibling", "a", "b"), chosen=3)])
    data = collect_run(run)
    assert data.pair_contrasts == {}
    assert data.notes == [f"could not read seed-0/tsp/round-1/data/pairs.jsonl: {pairs}:2: bad Pair record: "
                          "field 'chosen': expected str, got int"]  # fmt: skip


def _nonfunctional(task: str, error: str | None, functional: str = "nonfunctional") -> dict[str, Any]:
    return generation_json(task, cwe=["CWE-89"], completion="return jsonify(x)\n",
                           verdict={"status": "secure", "findings": [], "functional": functional,
                                    "functional_error": error})  # fmt: skip


def test_nonfunctional_table_names_the_reasons_per_method_and_seed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [
        _nonfunctional("t0", "line 3: undefined name 'jsonify'; line 5: undefined name 'os'"),
        _nonfunctional("t1", None, functional="ok"),
    ])  # fmt: skip
    write_eval(run, 0, "tsp", "securityeval", [
        _nonfunctional("t0", "line 2: undefined name 'jsonify'"),
        _nonfunctional("t1", "line 4: undefined name 'jsonify'; line 9: undefined name 'jsonify'"),  # once
        _nonfunctional("t2", "line 1: import of unknown module 'flask_x'; line 7: undefined name 'jsonify'"),
    ])  # fmt: skip
    write_eval(run, 0, "base", "humaneval", [generation_json("h0", bench="humaneval", completion="x\n")])
    markdown = write_report(run)[0].read_text()
    assert markdown.count("**Why answers are nonfunctional**") == 1  # HumanEval has no verdicts: no table
    assert table_row(markdown, "method | seed | judged | nonfunctional")[4:] == ["most frequent reasons (answers)"]
    assert table_row(markdown, "Base model | 0 | 2") == [
        "Base model", "0", "2", "1", "undefined name 'jsonify' (1), undefined name 'os' (1)"]  # fmt: skip
    assert table_row(markdown, "TSP (tree) | 0 | 3") == [
        "TSP (tree)", "0", "3", "3", "undefined name 'jsonify' (3), import of unknown module 'flask_x' (1)"]  # fmt: skip


def test_a_bad_generation_record_is_a_note_naming_file_line_and_field(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [_nonfunctional("t0", "line 2: undefined name 'jsonify'")])
    gens = run / "seed-0" / "base" / "eval" / "securityeval" / "generations.jsonl"
    bad = _nonfunctional("t1", None)
    bad["verdict"]["functional_error"] = 7
    write_jsonl(gens, [_nonfunctional("t0", "line 2: undefined name 'jsonify'"), bad])
    data = collect_run(run)
    assert data.nonfunctional == {}  # the metrics.json is read as written; the reasons are dropped
    assert len(data.notes) == 1
    note = data.notes[0]
    assert note.startswith(f"could not read seed-0/base/eval/securityeval/generations.jsonl: {gens}:2: ")
    assert "verdict.functional_error" in note
    assert "**Why answers are nonfunctional**" not in write_report(run)[0].read_text()


def test_metrics_to_recompute_from_a_bad_generation_record_are_a_note_not_a_crash(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_eval(run, 0, "base", "securityeval", [generation("t0", "CWE-89", "secure")])
    write_eval(run, 0, "tsp", "securityeval", [generation("t0", "CWE-89", "secure")])
    tsp = run / "seed-0" / "tsp" / "eval" / "securityeval"
    (tsp / "metrics.json").unlink()  # unfinished evaluation: its metrics come from generations.jsonl
    bad = generation("t1", "CWE-89", "secure")
    bad["verdict"]["status"] = 3
    write_jsonl(tsp / "generations.jsonl", [generation("t0", "CWE-89", "secure"), bad])
    data = collect_run(run)
    assert [(e.seed, e.method) for e in data.evals] == [(0, "base")]
    assert len(data.notes) == 1
    assert data.notes[0].startswith(f"could not read seed-0/tsp/eval/securityeval: {tsp / 'generations.jsonl'}:2: ")
    assert "verdict.status" in data.notes[0]
    write_report(run)  # renders with the note


def test_an_arm_not_run_on_a_seed_is_one_line(tmp_path: Path) -> None:
    """tsp-dpo ran on seed 0 only (no seed-1/tsp-dpo/): seed 1 gets one "not run" line, not one line
    per bench, budget and log; its seed-0 gaps (no sallm, no budget) are still listed one by one."""
    run = tmp_path / "run"
    for seed in (0, 1):
        for method in ("base", "tsp"):
            for bench in ("securityeval", "sallm"):
                write_eval(run, seed, method, bench, [generation("t0", "CWE-89", "secure", bench=bench)])
    write_eval(run, 0, "tsp-dpo", "securityeval", [generation("t0", "CWE-89", "secure")])
    missing = missing_parts(collect_run(run))
    assert "tsp-dpo: not run on seed 1 (no seed-S/tsp-dpo/ directory)" in missing
    assert not any(m.startswith("seed 1 / tsp-dpo") for m in missing)
    assert "seed 0 / tsp-dpo: no evaluation on sallm" in missing
    assert "seed 0 / tsp-dpo: no budget.json" in missing
    assert "seed 1 / tsp: no budget.json" in missing  # an arm that ran on the seed keeps its gaps
