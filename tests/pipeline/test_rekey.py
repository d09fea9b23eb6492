"""`treeplay rekey`: finished stages judged under oracle fingerprint OLD are re-keyed to the installed
oracle's only when their stored programs, judged again by the real oracle, keep every verdict.

The run dir is written by the real stage machinery (`run_stage`, `stage.json`, `inputs.json`) under
fingerprint OLD, with the model work replaced: the data stage's trees hold two real branch programs
and each eval stage one real generation, labelled by the real oracle as the tree builder and the
evaluation do. Plan (4 stages, by hand): base eval, tsp round-1 data, tsp round-1 train, tsp eval."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_run import OLD, TINY_CONFIG

from treeplay.eval.records import Generation
from treeplay.jsonl import write_jsonl
from treeplay.oracle import Oracle, default_oracle
from treeplay.oracle.records import Finding, Verdict
from treeplay.pipeline import Pipeline, load_config
from treeplay.rekey import (
    DIFFERS,
    NOT_COMPARED,
    OTHER_INPUTS,
    REKEYED,
    UPSTREAM,
    WOULD_REKEY,
    Rekey,
    RekeyError,
)
from treeplay.rekey_programs import StoredProgram, compare
from treeplay.run_lock import LOCK_FILE
from treeplay.stages import ArmBudget, Stage, run_stage, walk
from treeplay.tasks import Task
from treeplay.tree.labels import label_branch
from treeplay.tree.records import Branch, Node, Tree

CONFIG = TINY_CONFIG
STAGES = ["seed 0 / base / eval securityeval", "seed 0 / tsp / round 1 / data", "seed 0 / tsp / round 1 / train",
          "seed 0 / tsp / eval securityeval"]  # fmt: skip
DATA = Path("seed-0/tsp/round-1/data")
TRAIN = Path("seed-0/tsp/round-1/train")
BASE_EVAL = Path("seed-0/base/eval/securityeval")
TSP_EVAL = Path("seed-0/tsp/eval/securityeval")
# two whole programs (SafeCoder train tasks have an empty prefix): bandit flags the first (shell=True)
BRANCHES = ("import subprocess\n\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)\n",
            "def add(a, b):\n    return a + b\n")
COMPLETION = "    with open(filename) as f:\n        return yaml.load(f)\n"  # the SecurityEval task: yaml.load


def _config(directory: Path, **eval_overrides: Any) -> Path:
    raw = json.loads(json.dumps(CONFIG))
    raw["eval"].update(eval_overrides)
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _judge(items: list[tuple[str, Task]]) -> list[Verdict]:
    oracle = Oracle(dataclasses.replace(default_oracle().config, use_cache=False))
    return oracle.judge_many([(code, task.language, task) for code, task in items])


def _write_tree(directory: Path, task: Task, verdicts: list[Verdict]) -> None:
    branches = []
    for completion, verdict in zip(BRANCHES, verdicts, strict=True):
        label = label_branch(verdict, None, task_cwe=task.primary_cwe)
        branches.append(Branch("root", task.prefix, completion, (), (), label.label, label.findings, label.cwe,
                               label.first_flagged_line))  # fmt: skip
    root = Node("root", None, None, 0, None, "root", "p")
    tree = Tree(task.id, None, "none", (root,), tuple(branches), 1, "fake", "c", task=task.to_dict())
    write_jsonl(directory / "trees.jsonl", [tree])
    (directory / "pairs.jsonl").write_text("", encoding="utf-8")


def _write_generation(directory: Path, task: Task, verdict: Verdict) -> None:
    completion = COMPLETION
    record = Generation(task.id, task.language, task.cwe, "securityeval", "fake", 0, completion,
                        task.prefix + completion, "stop", 3, verdict, None)  # fmt: skip
    (directory / "generations.jsonl").write_text(json.dumps(record.to_json()) + "\n", encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class Judged:
    """The run's programs and what the real oracle said of them when the run was made."""

    train_task: Task
    bench_task: Task
    verdicts: list[Verdict]  # the two branches, then the evaluation's program


@pytest.fixture(scope="module")
def judged(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    from treeplay.eval.evaluate import resolve_bench
    from treeplay.run_config import load_train_tasks

    config = load_config(_config(tmp_path_factory.mktemp("config"))).model_copy(update={"data_root": str(shared_data)})
    train_task = load_train_tasks(config)[0]
    bench_task = resolve_bench("securityeval", shared_data, limit=1)[0]
    items = [*((train_task.prefix + b, train_task) for b in BRANCHES), (bench_task.prefix + COMPLETION, bench_task)]
    return Judged(train_task, bench_task, _judge(items))


def _fake_run(config_path: Path, run_dir: Path, judged: Judged) -> list[str]:
    """Every stage through `run_stage` under fingerprint OLD, the model work replaced by the judged
    programs; an SFT data record carries no fingerprint (as before SFT records had one)."""
    pipeline = Pipeline(load_config(config_path), run_dir, fingerprint=OLD)
    pipeline.load_tasks()

    def work(stage: Stage) -> dict[str, Any]:
        if stage.kind == "data" and stage.arm == "sft":
            return {"pairs": 1}
        if stage.kind == "data":
            _write_tree(stage.directory, judged.train_task, judged.verdicts[:2])
            return {"trees": 1, "pairs": 0, "oracle": OLD}
        if stage.kind == "train":
            return {"final_model_dir": str(stage.directory / "final"), "steps": 1}
        _write_generation(stage.directory, judged.bench_task, judged.verdicts[2])
        return {"tasks": 1, "oracle": OLD}

    names = []

    def on_stage(stage: Stage) -> dict[str, Any]:
        names.append(stage.name)
        return run_stage(dataclasses.replace(stage, run=lambda: work(stage)))

    walk(pipeline.steps(), on_stage, ArmBudget.write)
    return names


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, judged: Judged) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("TREEPLAY_DATA", str(shared_data))
    base = tmp_path_factory.mktemp("rekey")
    assert _fake_run(_config(base), base / "run", judged) == STAGES
    mp.undo()
    return base / "run"


class SharedOracle:
    """The real oracle (installed policy, no verdict cache), judging each distinct program once per
    module: the tests re-judge the same four programs, and an analyzer run costs seconds."""

    def __init__(self) -> None:
        self.oracle = Oracle(dataclasses.replace(default_oracle().config, use_cache=False))
        self.memo: dict[tuple[str, str, str], Verdict] = {}
        self.judged: list[int] = []  # programs sent per call that reached the oracle or the memo

    def judge_many(self, items: list[tuple[str, str, Task]]) -> list[Verdict]:
        self.judged.append(len(items))
        keys = [(code, language, task.id) for code, language, task in items]
        todo = {key: item for key, item in zip(keys, items, strict=True) if key not in self.memo}
        if todo:
            self.memo.update(zip(todo, self.oracle.judge_many(list(todo.values())), strict=True))
        return [self.memo[key] for key in keys]


@pytest.fixture(scope="module")
def judging() -> SharedOracle:
    return SharedOracle()


@pytest.fixture
def run_dir(template: Path, tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch,
            judging: SharedOracle) -> Path:  # fmt: skip
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    monkeypatch.setattr(Rekey, "_oracle", lambda self: judging)
    judging.judged.clear()
    shutil.copytree(template, tmp_path / "run")
    return tmp_path / "run"


def _record(run_dir: Path, stage: Path) -> dict[str, Any]:
    return json.loads((run_dir / stage / "stage.json").read_text())


def _current_hashes(config_path: Path, run_dir: Path) -> dict[str, str]:
    planned = Pipeline(load_config(config_path), run_dir, fingerprint=default_oracle().fingerprint()).plan()
    return {p.stage.name: p.stage.inputs_hash for p in planned}


def _rekey(config: Path, run_dir: Path, lines: list[str] | None = None, **options: Any) -> Any:
    say = lines.append if lines is not None else (lambda line: None)
    return Rekey(load_config(config), run_dir, say=say, **options).run()


def _digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != LOCK_FILE}  # fmt: skip


def test_stages_of_another_oracle_with_unchanged_verdicts_are_rekeyed(tmp_path, run_dir):
    from typer.testing import CliRunner

    from treeplay.cli import app

    new = default_oracle().fingerprint()
    old_hashes = {stage: _record(run_dir, stage)["inputs_hash"] for stage in (BASE_EVAL, DATA, TRAIN, TSP_EVAL)}
    trees_before = (run_dir / DATA / "trees.jsonl").read_bytes()
    result = _rekey(_config(tmp_path), run_dir)
    assert [(o.name, o.outcome, o.programs) for o in result.outcomes] == [
        (STAGES[0], REKEYED, 1), (STAGES[1], REKEYED, 2), (STAGES[2], REKEYED, 0), (STAGES[3], REKEYED, 1)]  # fmt: skip
    expected = _current_hashes(_config(tmp_path), run_dir)
    for name, stage in zip(STAGES, (BASE_EVAL, DATA, TRAIN, TSP_EVAL), strict=True):
        record = _record(run_dir, stage)
        assert record["inputs_hash"] == expected[name] != old_hashes[stage]
        assert json.loads((run_dir / stage / "inputs.json").read_text()) == {"inputs_hash": expected[name]}
        assert record["rekeyed"][0]["from_hash"] == old_hashes[stage]
        assert record.get("oracle") == (None if stage == TRAIN else new)
    assert _record(run_dir, DATA)["rekeyed"][0]["from_oracle"] == OLD
    assert (run_dir / DATA / "trees.jsonl").read_bytes() == trees_before  # only the hashes move
    log = json.loads(result.log.read_text())
    assert log["old_oracles"] == [OLD] and log["new_oracle"] == new and log["finished"] is True
    assert [(s["old_hash"], s["new_hash"]) for s in log["stages"]] == [
        (old_hashes[s], expected[n]) for n, s in zip(STAGES, (BASE_EVAL, DATA, TRAIN, TSP_EVAL), strict=True)]  # fmt: skip
    # `treeplay run --check` now finds every stage done; a second rekey has nothing to do
    check = CliRunner().invoke(app, ["run", str(_config(tmp_path)), "--check", "--run-dir", str(run_dir)])
    assert "run dir: 4 of 4 stages done (inputs unchanged: skipped), 0 to run" in check.output
    assert "stages to run:" not in check.output
    again = _rekey(_config(tmp_path), run_dir)
    assert again.outcomes == [] and again.judged == 0 and again.done == 4


def test_a_differing_verdict_leaves_the_stage_and_what_follows_it(tmp_path, run_dir):
    from typer.testing import CliRunner

    from treeplay.cli import app

    trees = run_dir / DATA / "trees.jsonl"
    tree = json.loads(trees.read_text())
    assert tree["branches"][1]["findings"] == []  # `add` is flagged by nothing
    tree["branches"][1]["label"] = "vulnerable"  # as if the old oracle had said otherwise
    trees.write_text(json.dumps(tree) + "\n")
    before = {s: (run_dir / s / "stage.json").read_bytes() for s in (DATA, TRAIN, TSP_EVAL)}
    result = CliRunner().invoke(app, ["rekey", str(_config(tmp_path)), "--run-dir", str(run_dir)])
    assert result.exit_code == 1
    task_id = tree["task_id"]
    assert f"{trees}: task {task_id} sample 1: label: 'vulnerable' -> 'secure'" in result.output
    assert f"[2/4] {STAGES[1]}: 2 programs re-judged, 1 differ: verdicts differ" in result.output
    assert f"[3/4] {STAGES[2]}: upstream redone ({STAGES[1]} will be redone)" in result.output
    assert f"  {STAGES[1]}: verdicts differ (`treeplay run` redoes it)" in result.output  # the summary
    assert f"  {STAGES[3]}: upstream redone ({STAGES[2]} will be redone)" in result.output
    assert {s: (run_dir / s / "stage.json").read_bytes() for s in (DATA, TRAIN, TSP_EVAL)} == before
    assert _record(run_dir, BASE_EVAL)["rekeyed"][0]["to_oracle"] == default_oracle().fingerprint()
    log = json.loads(next(run_dir.glob("rekey-*.json")).read_text())
    assert [s["outcome"] for s in log["stages"]] == [REKEYED, DIFFERS, UPSTREAM, UPSTREAM]
    assert log["stages"][1]["differences"] == [
        {"file": str(trees), "task_id": task_id, "sample": 1, "changes": ["label: 'vulnerable' -> 'secure'"]}]


def test_a_stage_whose_config_changed_too_is_not_rekeyed(tmp_path, run_dir):
    changed = _config(tmp_path, temperature=0.9)  # eval settings changed as well as the oracle
    evals = {s: (run_dir / s / "stage.json").read_bytes() for s in (BASE_EVAL, TSP_EVAL)}
    result = _rekey(changed, run_dir)
    assert [(o.name, o.outcome) for o in result.outcomes] == [
        (STAGES[0], OTHER_INPUTS), (STAGES[1], REKEYED), (STAGES[2], REKEYED), (STAGES[3], OTHER_INPUTS)]  # fmt: skip
    assert [o.programs for o in result.outcomes] == [0, 2, 0, 0]  # the evaluations are not even judged
    assert {s: (run_dir / s / "stage.json").read_bytes() for s in (BASE_EVAL, TSP_EVAL)} == evals


def test_a_stage_whose_programs_cannot_be_read_is_never_rekeyed(tmp_path, run_dir):
    generations = run_dir / BASE_EVAL / "generations.jsonl"
    generations.unlink()
    before = (run_dir / BASE_EVAL / "stage.json").read_bytes()
    result = _rekey(_config(tmp_path), run_dir)
    assert [(o.name, o.outcome) for o in result.outcomes] == [
        (STAGES[0], NOT_COMPARED), (STAGES[1], REKEYED), (STAGES[2], REKEYED), (STAGES[3], REKEYED)]  # fmt: skip
    assert result.outcomes[0].note == f"its stored verdicts cannot be compared: {generations}: missing"
    assert (run_dir / BASE_EVAL / "stage.json").read_bytes() == before


def test_dry_run_judges_and_writes_nothing(tmp_path, run_dir, judging):
    before = _digest(run_dir)
    lines: list[str] = []
    result = _rekey(_config(tmp_path), run_dir, lines, dry_run=True)
    assert [o.outcome for o in result.outcomes] == [WOULD_REKEY] * 4
    assert result.judged == 3 and result.log is None  # 2 branches, 1 program in both evaluations
    assert judging.judged == [3]  # the 3 distinct programs, in one batch
    assert _digest(run_dir) == before
    assert f"[2/4] {STAGES[1]}: 2 programs re-judged, 0 differ: would be re-keyed" in lines


def test_a_record_without_fingerprint_is_named_and_nothing_is_judged(tmp_path, run_dir, judging):
    marker = run_dir / TSP_EVAL / "stage.json"
    record = json.loads(marker.read_text())
    del record["oracle"]
    marker.write_text(json.dumps(record))
    before = _digest(run_dir)
    with pytest.raises(RekeyError) as error:
        _rekey(_config(tmp_path), run_dir)
    assert f"{marker}: field 'oracle' missing" in str(error.value)
    assert "cannot be re-keyed automatically" in str(error.value)
    assert _digest(run_dir) == before and judging.judged == []
    with pytest.raises(RekeyError, match="does not exist"):
        _rekey(_config(tmp_path), tmp_path / "no-such-run")
    from typer.testing import CliRunner

    from treeplay.cli import app

    result = CliRunner().invoke(app, ["rekey", str(_config(tmp_path)), "--run-dir", str(run_dir)])
    assert result.exit_code == 2 and f"{marker}: field 'oracle' missing" in result.output
    # given the fingerprint it was judged with, the stage is checked (hash, verdicts) like the others
    checked = _rekey(_config(tmp_path), run_dir, dry_run=True, assume_oracle=OLD)
    assert [o.outcome for o in checked.outcomes] == [WOULD_REKEY] * 4 and _digest(run_dir) == before
    wrong = _rekey(_config(tmp_path), run_dir, dry_run=True, assume_oracle="another0ld0rac1e")
    assert [o.outcome for o in wrong.outcomes] == [WOULD_REKEY] * 3 + [OTHER_INPUTS]


def test_an_interrupted_rekey_continues_where_it_stopped(tmp_path, run_dir, monkeypatch):
    """Killed after the data stage was rewritten: the train stage still has the hash made from the
    data stage's old one; the rerun finds it through the data stage's `rekeyed` entry."""
    rewrite = Rekey._rewrite
    calls: list[str] = []

    def interrupted(self: Rekey, stage: Stage, *args: Any) -> None:
        if stage.kind == "train":
            raise KeyboardInterrupt
        calls.append(stage.name)
        rewrite(self, stage, *args)

    monkeypatch.setattr(Rekey, "_rewrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _rekey(_config(tmp_path), run_dir)
    assert calls == STAGES[:2]
    monkeypatch.setattr(Rekey, "_rewrite", rewrite)
    result = _rekey(_config(tmp_path), run_dir)
    assert [(o.name, o.outcome) for o in result.outcomes] == [(STAGES[2], REKEYED), (STAGES[3], REKEYED)]
    assert result.done == 2
    expected = _current_hashes(_config(tmp_path), run_dir)
    assert _record(run_dir, TRAIN)["inputs_hash"] == expected[STAGES[2]]


# ---- comparing one program (no oracle run) --------------------------------------------------------

TASK = Task(id="t", language="py", cwe=("CWE-78",), instruction="i", prefix="")
FINDING = Finding("CWE-78", 2, 2, "bandit", "B602", "high", "shell=True")


def _generation(verdict: Verdict) -> StoredProgram:
    from treeplay.rekey_programs import verdict_view

    return StoredProgram("generation", Path("g.jsonl"), TASK, 0, "code", verdict_view(verdict))


def test_compare_ignores_timing_and_analyzer_order_only():
    stored = Verdict("vulnerable", (FINDING,), ("bandit", "semgrep"), 1.0, True)
    same = Verdict("vulnerable", (FINDING,), ("semgrep", "bandit"), 9.0, True)
    assert compare(_generation(stored), same) is None
    moved = Verdict("vulnerable", (dataclasses.replace(FINDING, line=3),), ("bandit", "semgrep"), 1.0, True)
    difference = compare(_generation(stored), moved)
    assert difference is not None and difference.changes == (
        'findings: - {"analyzer": "bandit", "cwe": "CWE-78", "end_line": 2, "line": 2, "message": "shell=True", '
        '"rule": "B602", "severity": "high"}, + {"analyzer": "bandit", "cwe": "CWE-78", "end_line": 2, "line": 3, '
        '"message": "shell=True", "rule": "B602", "severity": "high"}',)
    failed = Verdict("incomplete", (), ("bandit",), 1.0, False, "semgrep: timeout", ("semgrep",))
    difference = compare(_generation(Verdict("secure", (), ("bandit", "semgrep"), 1.0, False)), failed)
    assert difference is not None and difference.changes == (
        "analyzers_run: ['bandit', 'semgrep'] -> ['bandit']", "error: None -> 'semgrep: timeout'",
        "failed_analyzers: [] -> ['semgrep']", "status: 'secure' -> 'incomplete'")  # fmt: skip


def test_compare_of_a_branch_goes_through_its_label():
    stored = {"label": "vulnerable", "cwe": "CWE-78", "first_flagged_line": 2,
              "findings": [json.dumps(dataclasses.asdict(FINDING), sort_keys=True)]}  # fmt: skip
    branch = StoredProgram("branch", Path("t.jsonl"), TASK, 3, "code", stored)
    # a verdict that is not the stored one field for field but labels the branch the same: equal
    assert compare(branch, Verdict("vulnerable", (FINDING,), ("bandit",), 0.5, True)) is None
    difference = compare(branch, Verdict("secure", (), ("bandit",), 0.5, False))
    assert difference is not None and difference.render().startswith(
        "t.jsonl: task t sample 3: cwe: 'CWE-78' -> None; findings: - {")
    assert difference.changes[-2:] == ("first_flagged_line: 2 -> None", "label: 'vulnerable' -> 'secure'")



def test_the_judging_oracle_is_the_installed_one_without_its_cache(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    (tmp_path / "run").mkdir()
    oracle = Rekey(load_config(_config(tmp_path)), tmp_path / "run")._oracle()
    assert oracle.fingerprint() == default_oracle().fingerprint() and not oracle.config.use_cache


def test_an_sft_data_record_without_fingerprint_matches_the_runs_other_records(tmp_path, judged, monkeypatch,
                                                                                shared_data, judging):  # fmt: skip
    """SFT data stages judge nothing and did not record the oracle: the fingerprints the run's
    other records carry are tried, the hash check decides."""
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    monkeypatch.setattr(Rekey, "_oracle", lambda self: judging)
    config = _config(tmp_path)
    config.write_text(yaml.safe_dump({**CONFIG, "methods": ["sft"]}), encoding="utf-8")
    sft = ["seed 0 / base / eval securityeval", "seed 0 / sft / round 1 / data", "seed 0 / sft / round 1 / train",
           "seed 0 / sft / eval securityeval"]  # fmt: skip
    assert _fake_run(config, tmp_path / "run", judged) == sft
    assert "oracle" not in _record(tmp_path / "run", Path("seed-0/sft/round-1/data"))
    result = _rekey(config, tmp_path / "run")
    assert [(o.name, o.outcome, o.old_oracle) for o in result.outcomes] == [
        (sft[0], REKEYED, OLD), (sft[1], REKEYED, OLD), (sft[2], REKEYED, None), (sft[3], REKEYED, OLD)]  # fmt: skip
    record = _record(tmp_path / "run", Path("seed-0/sft/round-1/data"))
    assert record["oracle"] == default_oracle().fingerprint() and record["rekeyed"][0]["from_oracle"] == OLD


def test_an_arm_with_the_same_data_inputs_keeps_its_own_fate(tmp_path, judged, monkeypatch, shared_data, judging):
    """A variant whose round-1 data inputs equal TSP's has TSP's data hash (the run copies the
    trees): when TSP's stored trees differ, the variant's own copy is still checked and re-keyed,
    and so are the variant's train and eval stages."""
    monkeypatch.setenv("TREEPLAY_DATA", str(shared_data))
    monkeypatch.setattr(Rekey, "_oracle", lambda self: judging)
    config = _config(tmp_path)
    variant = {"method": "tsp", "train": {"sft_alpha": 0.0}}
    config.write_text(yaml.safe_dump({**CONFIG, "variants": {"tsp-dpo": variant}}), encoding="utf-8")
    names = [*STAGES, "seed 0 / tsp-dpo / round 1 / data", "seed 0 / tsp-dpo / round 1 / train",
             "seed 0 / tsp-dpo / eval securityeval"]  # fmt: skip
    assert _fake_run(config, tmp_path / "run", judged) == names
    trees = tmp_path / "run" / DATA / "trees.jsonl"
    tree = json.loads(trees.read_text())
    tree["branches"][0]["label"] = "secure"  # bandit flags it: stored as vulnerable
    trees.write_text(json.dumps(tree) + "\n")
    result = _rekey(config, tmp_path / "run")
    assert [(o.name, o.outcome) for o in result.outcomes] == [
        (names[0], REKEYED), (names[1], DIFFERS), (names[2], UPSTREAM), (names[3], UPSTREAM),
        (names[4], REKEYED), (names[5], REKEYED), (names[6], REKEYED)]  # fmt: skip
    assert result.outcomes[1].differences[0].changes[-1] == "label: 'secure' -> 'vulnerable'"


def test_rekey_refuses_a_run_dir_another_command_is_writing_and_a_dry_run_still_reads_it(tmp_path, run_dir, judging):
    from treeplay.run_lock import hold_run_dir

    before = _digest(run_dir)
    with hold_run_dir(run_dir, "treeplay run tiny.yaml"):
        with pytest.raises(RekeyError) as caught:
            _rekey(_config(tmp_path), run_dir)
        assert f"run dir {run_dir} is being written by another treeplay command (pid {os.getpid()}, " \
               "`treeplay run tiny.yaml`, since 20" in str(caught.value)
        assert judging.judged == []  # refused before any judging
        dry = _rekey(_config(tmp_path), run_dir, dry_run=True)  # read-only: no lock needed
        assert [o.outcome for o in dry.outcomes] == [WOULD_REKEY] * 4
    assert _digest(run_dir) == before and (run_dir / LOCK_FILE).is_file()  # only the lock file was added
