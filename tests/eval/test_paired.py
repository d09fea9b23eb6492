"""Paired differences, forest plot and per-round chart on small synthetic run dirs.

Every expected number below is worked out by hand in the comments from the records written here.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from generation_fixtures import generation_json

from treeplay.eval.paired import (
    collect_scores,
    method_contrasts,
    paired_bootstrap_ci,
    paired_contrasts,
    paired_differences,
)
from treeplay.eval.records import GenerationError
from treeplay.eval.report import write_report
from treeplay.jsonl import write_jsonl

SVG = "{http://www.w3.org/2000/svg}"


def sec(task: str, status: str, completion: str = "x = 1\n", bench: str = "securityeval") -> dict[str, Any]:
    return generation_json(task, cwe=["CWE-89"], bench=bench, completion=completion,
                           verdict={"status": status, "findings": []}, tests=None)  # fmt: skip


def with_tests(
    task: str, functional: bool, security: bool | None, outcome: str = "ok", bench: str = "sallm"
) -> dict:
    tests: dict[str, Any] = {"outcome": outcome, "functional_pass": functional, "security_pass": False}
    if security is not None:  # a run that lists its security test (None: no test listed)
        tests.update(security_pass=security, tests=[{"name": "t_sec", "kind": "security", "passed": security}])
    verdict = None if bench == "humaneval" else {"status": "secure", "findings": []}
    return generation_json(task, cwe=["CWE-20"], bench=bench, completion="x = 1\n", verdict=verdict, tests=tests)


def write_gens(run: Path, seed: int, arm: str, bench: str, records: list[dict[str, Any]]) -> None:
    write_jsonl(run / f"seed-{seed}" / arm / "eval" / bench.replace(":", "-") / "generations.jsonl", records)


# sft / tsp on securityeval, 2 samples per task.
#   task  sft samples          secure strict vuln | tsp samples               secure strict vuln
#   t1    secure, vulnerable     .5    .5    .5   | secure, secure             1      1     0
#   t2    vulnerable x2          0     0     1    | secure, incomplete         1      1     0   (incomplete left out)
#   t3    secure, secure(empty)  1     .5    0    | vulnerable, unparseable    0      0     1
#   t4    secure, secure         1     1     0    | incomplete, unsupported    -      -     -   (no counted sample)
#   t5    secure, secure         1     1     0    | (missing in tsp)
# Paired tasks t1..t3:
#   secure  d = +.5, +1, -1   -> mean 1/6 = +16.7 pp, 2 wins / 1 loss
#   strict  d = +.5, +1, -.5  -> mean 1/3 = +33.3 pp, 2 wins / 1 loss
#   vuln    d = -.5, -1, +1   -> mean -1/6 = -16.7 pp, 1 win / 2 losses
SFT = [sec("t1", "secure"), sec("t1", "vulnerable"), sec("t2", "vulnerable"), sec("t2", "vulnerable"),
       sec("t3", "secure"), sec("t3", "secure", completion="pass\n"), sec("t4", "secure"), sec("t4", "secure"),
       sec("t5", "secure"), sec("t5", "secure")]  # fmt: skip
TSP = [sec("t1", "secure"), sec("t1", "secure"), sec("t2", "secure"), sec("t2", "incomplete"),
       sec("t3", "vulnerable"), sec("t3", "unparseable"), sec("t4", "incomplete"), sec("t4", "unsupported")]  # fmt: skip


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    write_gens(root, 0, "sft", "securityeval", SFT)
    write_gens(root, 0, "tsp", "securityeval", TSP)
    return root


def by_key(diffs: list[Any]) -> dict[tuple[str, str, str, str], Any]:
    return {(d.arm, d.bench, d.metric, d.reference): d for d in diffs}


def test_security_differences_match_hand_computation(run: Path) -> None:
    diffs = by_key(paired_differences(collect_scores(run), ["sft", "tsp"]))
    assert set(diffs) == {
        ("tsp", "securityeval", m, "sft") for m in ("secure", "strict_secure", "vulnerable")
    }
    secure = diffs[("tsp", "securityeval", "secure", "sft")]
    assert secure.mean_pp == pytest.approx(100 / 6)
    assert (secure.n_tasks, secure.wins, secure.losses) == (3, 2, 1)
    strict = diffs[("tsp", "securityeval", "strict_secure", "sft")]
    assert strict.mean_pp == pytest.approx(100 / 3)
    assert (strict.n_tasks, strict.wins, strict.losses) == (3, 2, 1)
    vulnerable = diffs[("tsp", "securityeval", "vulnerable", "sft")]
    assert vulnerable.mean_pp == pytest.approx(-100 / 6)
    assert (vulnerable.n_tasks, vulnerable.wins, vulnerable.losses) == (3, 1, 2)
    for d in (secure, strict, vulnerable):
        assert d.ci_low_pp <= d.mean_pp <= d.ci_high_pp
        assert d.ci_low_pp < d.ci_high_pp  # the differences vary: the CI has a width
        assert d.per_seed_pp == ()  # one seed: no seed-level view


def test_task_scores_leave_out_unjudged_and_missing_tasks(run: Path) -> None:
    table = collect_scores(run)
    # t2 of tsp: one secure sample and one incomplete one -> 1.0, not 0.5; t4 has no counted sample.
    assert table["securityeval"]["secure"]["tsp"][0] == {"t1": 1.0, "t2": 1.0, "t3": 0.0}
    assert table["securityeval"]["strict_secure"]["sft"][0] == {
        "t1": 0.5,
        "t2": 0.0,
        "t3": 0.5,
        "t4": 1.0,
        "t5": 1.0,
    }


def test_bootstrap_ci_degenerate_when_all_differences_equal() -> None:
    low, high = paired_bootstrap_ci([0.25, 0.25, 0.25, 0.25])
    assert low == high
    assert low == pytest.approx(0.25)
    low, high = paired_bootstrap_ci([0.0, 1.0, 0.5, 0.0, 1.0])
    assert low <= 0.5 <= high and low < high
    assert paired_bootstrap_ci([0.0, 1.0, 0.5]) == paired_bootstrap_ci([0.0, 1.0, 0.5])  # fixed RNG seed


def test_functional_metrics_exclude_test_errors(tmp_path: Path) -> None:
    # s1: sft functional pass, security fail; tsp both pass. s2: sft fails; tsp's test run errored
    # (neither pass nor fail) -> s2 unpaired. func: d(s1) = 0; func_sec: d(s1) = +1 -> +100 pp, CI [100, 100].
    write_gens(tmp_path, 0, "sft", "sallm", [with_tests("s1", True, False), with_tests("s2", False, False)])
    write_gens(
        tmp_path,
        0,
        "tsp",
        "sallm",
        [with_tests("s1", True, True), with_tests("s2", True, True, outcome="error")],
    )
    diffs = by_key(paired_differences(collect_scores(tmp_path), ["sft", "tsp"]))
    func = diffs[("tsp", "sallm", "func", "sft")]
    assert (func.mean_pp, func.n_tasks, func.wins, func.losses) == (0.0, 1, 0, 0)
    func_sec = diffs[("tsp", "sallm", "func_sec", "sft")]
    assert (func_sec.n_tasks, func_sec.wins) == (1, 1)
    assert func_sec.mean_pp == pytest.approx(100.0)
    assert func_sec.ci_low_pp == func_sec.ci_high_pp == pytest.approx(100.0)
    assert func_sec.better is True  # CI [100, 100] excludes 0, higher is better
    assert func.better is None  # CI [0, 0] does not exclude 0


def test_two_seeds_average_then_pair_and_seed_view(tmp_path: Path) -> None:
    # HumanEval, 1 sample. sft: seed 0 h1 pass, h2 fail; seed 1 both fail -> h1 .5, h2 0.
    # tsp: seed 0 both pass; seed 1 both fail -> h1 .5, h2 .5. d = 0, +.5 -> +25 pp.
    # Seed view: seed 0 d = 0, +1 -> +50 pp; seed 1 d = 0, 0 -> 0 pp.
    he = "humaneval"
    write_gens(
        tmp_path,
        0,
        "sft",
        he,
        [with_tests("h1", True, None, bench=he), with_tests("h2", False, None, bench=he)],
    )
    write_gens(
        tmp_path,
        1,
        "sft",
        he,
        [with_tests("h1", False, None, bench=he), with_tests("h2", False, None, bench=he)],
    )
    write_gens(
        tmp_path,
        0,
        "tsp",
        he,
        [with_tests("h1", True, None, bench=he), with_tests("h2", True, None, bench=he)],
    )
    write_gens(
        tmp_path,
        1,
        "tsp",
        he,
        [with_tests("h1", False, None, bench=he), with_tests("h2", False, None, bench=he)],
    )
    diffs = by_key(paired_differences(collect_scores(tmp_path), ["sft", "tsp"]))
    assert set(diffs) == {("tsp", "humaneval", "pass", "sft")}
    d = diffs[("tsp", "humaneval", "pass", "sft")]
    assert d.mean_pp == pytest.approx(25.0)
    assert (d.n_tasks, d.wins, d.losses) == (2, 1, 0)
    assert [s for s, _ in d.per_seed_pp] == [0, 1]
    assert [v for _, v in d.per_seed_pp] == pytest.approx([50.0, 0.0])


def test_a_seed_only_the_reference_has_is_left_out_of_the_task_means(tmp_path: Path) -> None:
    # HumanEval, 1 sample. tsp: seeds 0, 1; base: seeds 0, 1, 2 (a variant run on fewer seeds).
    #   base  seed 0: h1 pass, h2 fail; seed 1: h1 pass, h2 fail; seed 2: h1 fail, h2 fail
    #   tsp   seed 0: h1 pass, h2 pass; seed 1: h1 fail, h2 pass
    # Over the common seeds 0, 1: base h1 1, h2 0; tsp h1 .5, h2 1 -> d = -.5, +1 -> +25 pp, 1 win 1 loss.
    # (Averaging base over all its 3 seeds would give h1 2/3, h2 0 -> d = -1/6, +1 -> +41.7 pp.)
    he = "humaneval"
    plan = {("base", 0): (True, False), ("base", 1): (True, False), ("base", 2): (False, False),
            ("tsp", 0): (True, True), ("tsp", 1): (False, True)}  # fmt: skip
    for (arm, seed), (h1, h2) in plan.items():
        write_gens(tmp_path, seed, arm, he, [with_tests("h1", h1, None, bench=he), with_tests("h2", h2, None, bench=he)])
    d = by_key(paired_differences(collect_scores(tmp_path), ["base", "tsp"]))[("tsp", "humaneval", "pass", "base")]
    assert d.mean_pp == pytest.approx(25.0)
    assert (d.n_tasks, d.wins, d.losses) == (2, 1, 1)
    # bootstrap over the two task differences -.5 and +1: the CI spans both
    assert (d.ci_low_pp, d.ci_high_pp) == pytest.approx((-50.0, 100.0))
    assert d.two_level is not None and d.two_level.excluded == (("base", 2),)


def test_bad_record_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "seed-0" / "sft" / "eval" / "securityeval" / "generations.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(sec("t1", "secure")) + "\n" + json.dumps({"verdict": None}) + "\n")
    with pytest.raises(GenerationError, match=r"generations\.jsonl:2: field 'task_id': missing"):
        collect_scores(tmp_path)


def parse_svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    return root


def add_rounds(run: Path) -> None:
    """tsp, seed 0: round 1 trees (5 branches, 1 vulnerable, 1 nonfunctional), 3 pairs, last accuracy .75 /
    margin .4; round 2 without trees.jsonl: stage.json counts (3 vulnerable of 6, 2 nonfunctional), 5 pairs,
    accuracy 1.0 / margin .9."""
    r1, r2 = run / "seed-0" / "tsp" / "round-1", run / "seed-0" / "tsp" / "round-2"
    branches = [{"node_id": "n0", "prefix": "", "completion": "x\n", "label": lab}
                for lab in ("vulnerable", "secure", "secure", "unparseable", "nonfunctional")]
    node = {"id": "n0", "parent": None, "char_offset": 0, "strategy": "diff", "prefix_hash": "h"}
    write_jsonl(r1 / "data" / "trees.jsonl",
                [{"task_id": "t1", "golden_source": "none", "branches": branches, "nodes": [node]}])  # fmt: skip
    (r1 / "data" / "stage.json").write_text(json.dumps({"inputs_hash": "a", "pairs": 3}))
    write_jsonl(r1 / "train" / "metrics.jsonl", [{"step": 1, "loss": 0.7, "rewards/accuracy": 0.5,
                "rewards/margin": 0.1}, {"step": 2, "loss": 0.6, "rewards/accuracy": 0.75, "rewards/margin": 0.4}])  # fmt: skip
    (r2 / "data").mkdir(parents=True)
    (r2 / "data" / "stage.json").write_text(
        json.dumps({"pairs": 5, "branches": {"vulnerable": 3, "secure": 1, "nonfunctional": 2}})
    )
    write_jsonl(r2 / "train" / "metrics.jsonl", [{"step": 1, "loss": 0.5, "rewards/accuracy": 1.0,
                                                  "rewards/margin": 0.9}])  # fmt: skip


def test_report_has_paired_section_forest_plot_and_round_chart(run: Path) -> None:
    add_rounds(run)
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    assert "## Paired differences" in md
    assert "| tsp vs sft | securityeval | secure | +16.7 |" in md
    assert "| tsp vs sft | securityeval | strict_secure | +33.3 |" in md
    assert "| tsp vs sft | securityeval | vulnerable (↓) | -16.7 |" in md
    assert "(report-assets/forest.svg)" in md
    forest = parse_svg((run / "report-assets" / "forest.svg").read_text())
    titles = [t.text for t in forest.iter(f"{SVG}text")]
    assert "securityeval · strict_secure" in titles and "securityeval · secure" in titles
    assert "+33.3 [" in " ".join(t for t in titles if t)
    assert len(forest.findall(f".//{SVG}rect[@width='8']")) == 2  # one mean marker per headline row
    # Per round: round 1 from trees.jsonl, round 2 from stage.json's label counts.
    assert "## Per round" in md
    assert "| tsp | 1 | 1 | 5 | 1 | 20.0 | 1 | 3 | 0.750 | 0.400 |" in md
    assert "| tsp | 2 | 1 | 6 | 3 | 50.0 | 2 | 5 | 1.000 | 0.900 |" in md
    rounds = parse_svg((run / "report-assets" / "rounds.svg").read_text())
    # vulnerable share, pairs, accuracy, margin, and SPR@1 of tsp's round-2 model (its final one, the only
    # round evaluated: round 1 has no train record to match)
    assert len(rounds.findall(f".//{SVG}polyline")) == 5
    assert "| tsp | 2 | tsp | 0 |" in md and "| tsp | 1 | tsp" not in md
    page = html_path.read_text()
    inline = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(inline) == 2
    for svg in inline:
        parse_svg(svg)


def test_no_round_section_for_single_round_runs(run: Path) -> None:
    md_path, _ = write_report(run)
    md = md_path.read_text()
    assert "## Paired differences" in md
    assert "## Per round" not in md


def test_sft_is_compared_with_base_once(run: Path) -> None:
    # base wrote the same generations as sft: sft vs base is 0 on every paired task (5 of them),
    # and the inverse comparison (base vs sft) is not listed again.
    write_gens(run, 0, "base", "securityeval", SFT)
    diffs = by_key(paired_differences(collect_scores(run), ["base", "sft", "tsp"]))
    assert ("base", "securityeval", "secure", "sft") not in diffs
    same = diffs[("sft", "securityeval", "secure", "base")]
    assert (same.mean_pp, same.n_tasks, same.wins, same.losses) == (0.0, 5, 0, 0)
    assert ("tsp", "securityeval", "secure", "base") in diffs
    # The forest plot vs SFT still shows base: sft vs base negated (here 0 on all 5 tasks).
    from treeplay.eval.report_paired import forest_groups

    groups = forest_groups(list(diffs.values()), ["base", "sft", "tsp"], "sft")
    assert [g.title for g in groups] == ["securityeval · strict_secure", "securityeval · secure"]
    base = groups[1].rows[0]
    assert (base.label, base.mean, base.low, base.high) == ("base", 0.0, 0.0, 0.0)
    assert [r.label for r in groups[1].rows] == ["base", "tsp"]
    assert groups[1].rows[1].mean == pytest.approx(100 / 6)


def test_forest_plot_with_only_zero_differences_has_an_axis() -> None:
    from treeplay.eval.svg import ForestGroup, ForestRow, forest_svg

    svg = forest_svg(
        [ForestGroup("humaneval · pass", [ForestRow("tsp", 0.0, 0.0, 0.0)])], axis_label="pp", title="t"
    )
    labels = [t.text for t in parse_svg(svg).iter(f"{SVG}text")]
    # axis padded to [-1, 1] around the single value 0: ticks -1 .. 1
    assert labels[-6:] == ["-1", "-0.5", "0", "0.5", "1", "pp"]


def test_flipped_difference_negates_and_swaps() -> None:
    from treeplay.eval.paired import PairedDiff
    from treeplay.eval.report_paired import flipped

    d = PairedDiff("sft", "base", "sallm", "func", 10.0, 2.0, 20.0, 5, 3, 1, ((0, 8.0), (1, 12.0)))
    f = flipped(d)
    assert (f.arm, f.reference, f.mean_pp, f.ci_low_pp, f.ci_high_pp) == ("base", "sft", -10.0, -20.0, -2.0)
    assert (f.n_tasks, f.wins, f.losses, f.per_seed_pp) == (5, 1, 3, ((0, -8.0), (1, -12.0)))


def test_contrasts_are_tsp_vs_selfplay_and_each_ablation_vs_its_method(tmp_path: Path) -> None:
    arms = ["base", "sft", "tsp", "selfplay", "tsp-dpo", "tsp-oracle-nodes", "sft-long"]
    parent = {"tsp-dpo": "tsp", "tsp-oracle-nodes": "tsp", "sft-long": "sft", "tsp": "tsp"}
    assert method_contrasts(arms, parent) == [
        ("tsp", "selfplay"), ("tsp-dpo", "tsp"), ("tsp-oracle-nodes", "tsp"), ("sft-long", "sft")]
    assert method_contrasts(["sft", "tsp", "tsp-dpo"], {"tsp-dpo": "tsp"}) == [("tsp-dpo", "tsp")]
    # the TSP samples of the module fixture as self-play, the SFT ones as TSP: tsp vs selfplay is the
    # negation of the hand-computed tsp-vs-sft differences (secure -1/6, vulnerable +1/6)
    root = tmp_path / "run"
    write_gens(root, 0, "selfplay", "securityeval", TSP)
    write_gens(root, 0, "tsp", "securityeval", SFT)
    diffs = by_key(paired_contrasts(collect_scores(root), [("tsp", "selfplay")]))
    assert diffs[("tsp", "securityeval", "secure", "selfplay")].mean_pp == pytest.approx(-100 / 6)
    assert diffs[("tsp", "securityeval", "vulnerable", "selfplay")].mean_pp == pytest.approx(100 / 6)
    assert paired_contrasts(collect_scores(root), [("tsp-dpo", "tsp")]) == []  # arm absent: nothing


def test_each_rounds_model_is_evaluated_as_the_arm_that_ended_on_it(tmp_path: Path) -> None:
    """tsp-2rounds' round 1 trained the model tsp ended on (same train inputs hash "r1"), so round 1's
    numbers are tsp's evaluations and round 2's its own; tsp-lr's round 1 matches no arm's final model
    and gets no row. SALLM func-sec@1 by hand: tsp 1 of 2 tasks = 50.0, tsp-2rounds 2 of 2 = 100.0,
    tsp-lr 0 of 2 = 0.0."""
    run = tmp_path / "run"
    write_gens(run, 0, "tsp", "sallm", [with_tests("t1", True, True), with_tests("t2", True, False)])
    write_gens(run, 0, "tsp-2rounds", "sallm", [with_tests("t1", True, True), with_tests("t2", True, True)])
    write_gens(run, 0, "tsp-lr", "sallm", [with_tests("t1", False, False), with_tests("t2", False, False)])
    for arm, round_no, inputs in [("tsp", 1, "r1"), ("tsp-2rounds", 1, "r1"), ("tsp-2rounds", 2, "r2"),
                                  ("tsp-lr", 1, "other"), ("tsp-lr", 2, "r3")]:  # fmt: skip
        train = run / "seed-0" / arm / f"round-{round_no}" / "train"
        train.mkdir(parents=True)
        (train / "stage.json").write_text(json.dumps({"inputs_hash": inputs, "steps": 8}))
    md = write_report(run)[0].read_text()
    section = md[md.index("## Per round"):]
    rows = [line for line in section.splitlines() if re.match(r"\| tsp\S* \| \d \| tsp", line)]
    assert [row.split(" | ")[:5] for row in rows] == [
        ["| tsp-2rounds", "1", "tsp", "0", "50.0 [0.0, 100.0]"],
        ["| tsp-2rounds", "2", "tsp-2rounds", "0", "100.0 [100.0, 100.0]"],
        ["| tsp-lr", "2", "tsp-lr", "0", "0.0 [0.0, 0.0]"],
    ]
    chart = parse_svg((run / "report-assets" / "rounds.svg").read_text())
    assert "sallm func-sec@1 (%) of the round's model" in [t.text for t in chart.iter(f"{SVG}text")]


def test_a_one_round_run_has_no_round_evaluations(run: Path) -> None:
    train = run / "seed-0" / "tsp" / "round-1" / "train"
    train.mkdir(parents=True)
    (train / "stage.json").write_text(json.dumps({"inputs_hash": "r1"}))
    md = write_report(run)[0].read_text()
    assert "## Per round" not in md and "Each round's model, evaluated" not in md
