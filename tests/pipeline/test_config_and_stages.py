"""Run-config validation and the stage skip/resume logic of `treeplay run`."""

import json
from pathlib import Path

import pytest

from treeplay.pipeline import ConfigError, Stage, digest, load_config, run_stage

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_validate(name):
    # schema only; tests/pipeline/test_run_check.py runs `--check` (data, judges, extras) on each
    config = load_config(REPO / "configs" / name)
    assert len(config.seeds) == len(set(config.seeds)) >= 1
    assert set(config.methods) <= {"sft", "selfplay", "tsp"} and config.methods


def test_unknown_field_is_named(tmp_path):
    path = write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\nroundz: 2\n")
    with pytest.raises(ConfigError, match=r"run.yaml: line 3: field roundz: Extra inputs"):
        load_config(path)


def test_bad_value_in_nested_section_is_named(tmp_path):
    path = write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\neval: {n: 0}\n")
    with pytest.raises(ConfigError, match=r"field eval.n"):
        load_config(path)


def test_bad_tree_and_train_sections_fail_before_any_work(tmp_path):
    path = write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\ntree: {strategies: magic}\n")
    with pytest.raises(ConfigError, match=r"field tree: unknown risk-node strategy 'magic'"):
        load_config(path)
    path = write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\ntrain: {learning_rat: 1}\n")
    with pytest.raises(ConfigError, match=r"learning_rat"):
        load_config(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "name: x\ntrain_tasks: [\n  - a: b\n  c\n")
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: invalid YAML"):
        load_config(path)


def test_stage_runs_once_then_is_skipped(tmp_path):
    calls = []

    def work():
        calls.append(1)
        (tmp_path / "s" / "out.txt").write_text("x")
        return {"n": 1}

    stage = Stage("s", tmp_path / "s", digest("a"), work)
    assert run_stage(stage)["n"] == 1
    assert run_stage(stage)["n"] == 1
    assert calls == [1]
    record = json.loads((tmp_path / "s" / "stage.json").read_text())
    assert record["inputs_hash"] == digest("a")


def test_changed_inputs_redo_the_stage_from_scratch(tmp_path):
    def first():
        (tmp_path / "s" / "stale.txt").write_text("old")
        return {}

    run_stage(Stage("s", tmp_path / "s", digest("a"), first))
    seen = []

    def second():
        seen.append((tmp_path / "s" / "stale.txt").exists())
        return {}

    run_stage(Stage("s", tmp_path / "s", digest("b"), second))
    assert seen == [False]


def test_a_finished_stage_of_other_inputs_is_moved_aside_not_deleted(tmp_path):
    run_dir = tmp_path / "run"
    directory = run_dir / "seed-0" / "base" / "eval" / "sallm"

    def first():
        (directory / "generations.jsonl").write_text("old results\n")
        return {"oracle": "fp-old"}

    run_stage(Stage("s", directory, digest("a"), first), run_dir / "superseded")
    seen = []

    def second():
        seen.append(sorted(p.name for p in directory.iterdir()))
        return {"oracle": "fp-new"}

    run_stage(Stage("s", directory, digest("b"), second), run_dir / "superseded")
    assert seen == [["inputs.json"]]  # the new stage starts clean
    kept = run_dir / "superseded" / digest("a") / "seed-0" / "base" / "eval" / "sallm"
    assert (kept / "generations.jsonl").read_text() == "old results\n"
    assert json.loads((kept / "stage.json").read_text())["oracle"] == "fp-old"


def test_superseding_the_same_inputs_twice_keeps_both_copies(tmp_path):
    # inputs a, then b, then a again (a rerun, whose results can differ), then b: both results of
    # inputs a are kept, the second one beside the first under "<hash>.2"
    run_dir = tmp_path / "run"
    directory = run_dir / "seed-0" / "tsp" / "eval" / "sallm"

    def write(text):
        def body():
            (directory / "generations.jsonl").write_text(text)
            return {}
        return body

    for inputs, text in [("a", "first a\n"), ("b", "b\n"), ("a", "second a\n"), ("b", "b again\n")]:
        run_stage(Stage("s", directory, digest(inputs), write(text)), run_dir / "superseded")
    relative = Path("seed-0") / "tsp" / "eval" / "sallm" / "generations.jsonl"
    archive = run_dir / "superseded"
    assert (archive / digest("a") / relative).read_text() == "first a\n"
    assert (archive / f"{digest('a')}.2" / relative).read_text() == "second a\n"
    assert (archive / digest("b") / relative).read_text() == "b\n"
    assert (directory / "generations.jsonl").read_text() == "b again\n"
    assert sorted(p.name for p in archive.iterdir()) == sorted([digest("a"), f"{digest('a')}.2", digest("b")])


def test_superseded_note_names_the_count_and_the_other_oracle(tmp_path):
    from treeplay.stages import PlannedStage, superseded_note

    def finished(name, oracle):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "stage.json").write_text(json.dumps({"inputs_hash": "old", "oracle": oracle}))
        return Stage(name, directory, digest(name), lambda: {})

    train = Stage("train", tmp_path / "train", digest("t"), lambda: {})  # a record without an oracle (train stages)
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stage.json").write_text(json.dumps({"inputs_hash": "old"}))
    planned = [PlannedStage(finished("eval", "fp-1"), False), PlannedStage(finished("data", "fp-2"), True),
               PlannedStage(train, False), PlannedStage(finished("eval2", "fp-2"), False)]
    note = superseded_note(planned, "fp-2", tmp_path / "superseded")
    assert note == (f"3 finished stage(s) have other inputs now and will be redone; their results move to "
                    f"{tmp_path / 'superseded'}/<old inputs hash>/ (nothing is deleted); 1 of them were judged by "
                    "another oracle (fingerprint fp-1; installed fp-2): its rules, settings or analyzers changed; "
                    "if the change keeps every verdict, `treeplay rekey CONFIG` keeps them instead (it re-judges "
                    "their stored programs first)")
    assert superseded_note([PlannedStage(finished("done", "fp-1"), True)], "fp-2", tmp_path) is None


def test_interrupted_stage_resumes_with_its_partial_output(tmp_path):
    directory = tmp_path / "s"

    def crash():
        (directory / "partial.jsonl").write_text('{"done": 1}\n')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(Stage("s", directory, digest("a"), crash))
    seen = []

    def resume():
        seen.append((directory / "partial.jsonl").read_text())
        return {}

    run_stage(Stage("s", directory, digest("a"), resume))
    assert seen == ['{"done": 1}\n']


def test_selfplay_command_rejects_bad_options_before_loading_anything(tmp_path):
    from typer.testing import CliRunner

    from treeplay.cli import app

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("")
    result = CliRunner().invoke(
        app, ["selfplay", "--tasks", str(tasks), "--out", str(tmp_path / "r"), "--method", "magic"]
    )
    assert result.exit_code == 2
    assert "methods" in result.stderr
    config = tmp_path / "c.yaml"
    config.write_text("tree: {k: 0}\n")
    result = CliRunner().invoke(
        app, ["selfplay", "--tasks", str(tasks), "--out", str(tmp_path / "r"), "--config", str(config)]
    )
    assert result.exit_code == 2
    assert "field tree.k: Input should be greater than or equal to 1" in result.stderr


VARIANTS = """name: x
train_tasks: {path: a.jsonl}
methods: [tsp, sft]
rounds: 2
eval: {benches: [securityeval, humaneval]}
tree: {strategies: "diff,oracle", k: 4}
train: {max_steps: 8, sft_alpha: 0.1}
variants:
  tsp-dpo: {method: tsp, train: {sft_alpha: 0.0, first_w: 0}, rounds: 1}
  tsp-oracle-nodes: {method: tsp, tree: {strategies: oracle}, benches: [securityeval]}
"""


def test_variants_become_arms_after_the_methods_with_their_overrides(tmp_path):
    config = load_config(write(tmp_path, VARIANTS))
    arms = config.arms()
    assert [a.name for a in arms] == ["tsp", "sft", "tsp-dpo", "tsp-oracle-nodes"]  # config order
    dpo, oracle = arms[2], arms[3]
    assert dpo.method == "tsp" and dpo.rounds == 1 and oracle.rounds == 2
    assert dpo.train == {"max_steps": 8, "sft_alpha": 0.0, "first_w": 0}
    assert oracle.tree == {"strategies": "oracle", "k": 4}
    assert oracle.benches == ("securityeval",) and dpo.benches == ("securityeval", "humaneval")


@pytest.mark.parametrize(("variant", "message"), [
    ("tsp: {method: tsp}", "variant name 'tsp' must be"),
    ("Bad_Name: {method: tsp}", "variant name 'Bad_Name' must be"),
    ("v1: {method: tsp, benches: [sallm]}", r"variants.v1.benches: \['sallm'\] are not in eval.benches"),
    ("v1: {method: dpo}", "variants.v1.method"),
])
def test_bad_variants_are_named(tmp_path, variant, message):
    text = "name: x\ntrain_tasks: {path: a.jsonl}\neval: {benches: [securityeval]}\nvariants:\n  " + variant + "\n"
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_an_ablation_reuses_round_one_data_of_its_parent_arm(tmp_path, monkeypatch):
    """tsp-dpo differs from tsp only in the loss: its round-1 data stage has the same inputs and
    copies tsp's trees (and record) instead of sampling again, and pairs the copied trees again, so
    its pairs carry the fields of this code (a copy of pairs written by older code would not)."""
    from types import SimpleNamespace

    from treeplay.pipeline import Pipeline

    config = load_config(write(tmp_path, VARIANTS))
    pipeline = Pipeline(config, tmp_path / "run")
    arms = {a.name: a for a in config.arms()}
    tsp, dpo = arms["tsp"], arms["tsp-dpo"]
    first = pipeline.stages.data_stage(0, tsp, 1, "embedded", "h0")
    second = pipeline.stages.data_stage(0, dpo, 1, "embedded", "h0")
    assert first.inputs_hash == second.inputs_hash and first.directory != second.directory
    first.directory.mkdir(parents=True)
    (first.directory / "trees.jsonl").write_text('{"task_id": "a"}\n')
    (first.directory / "pairs.jsonl").write_text('{"p": 1}\n{"p": 2}\n')
    (first.directory / "stage.json").write_text(json.dumps(
        {"inputs_hash": first.inputs_hash, "wall_s": 9.5, "trees": 1, "pairs": 2, "pairs_by_mode": {"sibling": 2}}))
    pipeline.stages.data_done[first.inputs_hash] = first.directory
    paired = []

    def pair_again(arm, trees_path, pairs_path):
        paired.append((arm.name, trees_path.read_text()))
        pairs_path.write_text('{"p": "again"}\n')
        return [], [SimpleNamespace(mode="golden-vs-branch")]

    monkeypatch.setattr(pipeline.stages, "_pair_trees", pair_again)
    record = run_stage(second)
    assert paired == [("tsp-dpo", '{"task_id": "a"}\n')]  # the copied trees, paired for tsp-dpo
    assert (second.directory / "pairs.jsonl").read_text() == '{"p": "again"}\n'
    assert record["pairs"] == 1 and record["trees"] == 1 and record["pairs_by_mode"] == {"golden-vs-branch": 1}
    assert record["copied_from"] == str(first.directory)
    # the oracle-nodes variant has other tree settings: no reuse
    other = pipeline.stages.data_stage(0, arms["tsp-oracle-nodes"], 1, "embedded", "h0")
    assert other.inputs_hash != first.inputs_hash


ROUNDS = VARIANTS.replace("variants:\n", "variants:\n  tsp-1round: {method: tsp, rounds: 1}\n")


def _finished_training(directory: Path, inputs_hash: str) -> None:
    """What a train stage leaves: its model, its logs, resume checkpoints and its record (paths as the
    trainer writes them, relative to the working directory)."""
    (directory / "final").mkdir(parents=True)
    (directory / "final" / "adapter_model.safetensors").write_bytes(b"weights")
    (directory / "checkpoints" / "step-4").mkdir(parents=True)
    (directory / "checkpoints" / "step-4" / "state.pt").write_bytes(b"resume")
    (directory / "metrics.jsonl").write_text('{"step": 8, "loss": 0.5}\n')
    (directory / "result.json").write_text(json.dumps({"final_model_dir": str(directory / "final"), "steps": 8}))
    (directory / "stage.json").write_text(json.dumps({
        "inputs_hash": inputs_hash, "wall_s": 600.0, "final_model_dir": str(directory / "final"), "adapter": True,
        "steps": 8, "tokens": 900, "pairs": 20}))  # fmt: skip


def _round_one_train_stages(tmp_path: Path) -> tuple[Stage, Stage]:
    """The round-1 train stages of tsp and tsp-1round, seed 0, on the same data stage."""
    from treeplay.pipeline import Pipeline

    config = load_config(write(tmp_path, ROUNDS))
    pipeline = Pipeline(config, tmp_path / "run")
    arms = {a.name: a for a in config.arms()}
    data = pipeline.stages.data_stage(0, arms["tsp"], 1, "embedded", "h0")
    return (pipeline.stages.train_stage(0, arms["tsp"], 1, "embedded", "h0", data),
            pipeline.stages.train_stage(0, arms["tsp-1round"], 1, "embedded", "h0", data))  # fmt: skip


def test_a_variant_with_other_rounds_copies_the_trained_model_of_its_parent_arm(tmp_path, monkeypatch):
    """tsp-1round differs from tsp (2 rounds) only in its number of rounds: its round-1 train stage has
    tsp's inputs and copies tsp's finished model instead of training again (the training would cost
    as much as tsp's); the copy names its own directory, so the evaluations load this arm's files."""
    import treeplay.train

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(treeplay.train, "train", no_training)
    first, second = _round_one_train_stages(tmp_path)
    assert first.inputs_hash == second.inputs_hash and first.directory != second.directory
    _finished_training(first.directory, first.inputs_hash)
    second.directory.mkdir(parents=True)
    (second.directory / "checkpoints").mkdir()  # this arm's own training, killed before the copy existed

    record = run_stage(second)

    copy = tmp_path / "run" / "seed-0" / "tsp-1round" / "round-1" / "train"
    assert second.directory == copy
    assert (copy / "final" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert (copy / "metrics.jsonl").read_text() == '{"step": 8, "loss": 0.5}\n'
    assert not (copy / "checkpoints").exists()  # resume state: not copied, and this arm's leftovers are gone
    assert json.loads((copy / "result.json").read_text())["final_model_dir"] == str(copy / "final")
    assert record["final_model_dir"] == str(copy / "final")
    assert record["copied_from"] == str(first.directory)
    assert (record["steps"], record["tokens"], record["pairs"]) == (8, 900, 20)
    assert json.loads((copy / "stage.json").read_text())["inputs_hash"] == first.inputs_hash
    assert json.loads((copy / "stage.json").read_text())["wall_s"] < 600.0  # this stage's own (short) time
    assert not copy.with_name("train.copying").exists()


def test_a_train_stage_whose_twin_is_not_finished_trains_itself(tmp_path, monkeypatch):
    """Only a finished stage of the same inputs is copied: one of other inputs is not."""
    import treeplay.train

    trained = []

    def fake_train(config, pairs, model_in, directory, resume):
        trained.append(directory)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(treeplay.train, "train", fake_train)
    monkeypatch.setattr("treeplay.train.data.read_pairs", lambda path: ["a pair"])
    first, second = _round_one_train_stages(tmp_path)
    _finished_training(first.directory, "another-hash")  # tsp's model, of other inputs
    with pytest.raises(RuntimeError, match="stop after the call"):
        run_stage(second)
    assert trained == [second.directory]


SIBLING = VARIANTS.replace("variants:\n", "variants:\n  tsp-sibling: {method: tsp, pair_mode: sibling}\n")


def test_a_pair_mode_ablation_trains_on_its_parent_arms_trees(tmp_path, monkeypatch):
    """tsp-sibling differs from tsp only in the pair mode, which does not enter a tree: its data stage
    has its own inputs (other pairs) but starts its tree builder from tsp's finished trees, so it
    samples none again and both arms train on the same trees."""
    from treeplay.pipeline import Pipeline

    config = load_config(write(tmp_path, SIBLING))
    pipeline = Pipeline(config, tmp_path / "run")
    arms = {a.name: a for a in config.arms()}
    seen: dict[str, str] = {}

    def fake_build(seed, arm, round_, opponent, tree_cfg, directory):  # what the builder would resume from
        trees = directory / "trees.jsonl"
        seen[arm.name] = trees.read_text() if trees.exists() else "<none>"
        return {"trees": 1, "pairs": 0}

    monkeypatch.setattr(pipeline.stages, "_build_tree_data", fake_build)
    tsp = pipeline.stages.data_stage(0, arms["tsp"], 1, "embedded", "h0")
    sibling = pipeline.stages.data_stage(0, arms["tsp-sibling"], 1, "embedded", "h0")
    oracle_nodes = pipeline.stages.data_stage(0, arms["tsp-oracle-nodes"], 1, "embedded", "h0")
    assert sibling.inputs_hash != tsp.inputs_hash
    run_stage(tsp)
    assert seen["tsp"] == "<none>"
    (tsp.directory / "trees.jsonl").write_text('{"task_id": "a"}\n')  # what tsp's builder wrote
    record = run_stage(sibling)
    assert seen["tsp-sibling"] == '{"task_id": "a"}\n'
    assert record["trees_from"] == str(tsp.directory)
    assert not (sibling.directory / "trees.jsonl.copying").exists()
    run_stage(oracle_nodes)  # other tree settings: samples its own trees
    assert seen["tsp-oracle-nodes"] == "<none>"


def test_a_pair_mode_ablation_keeps_its_own_partial_trees(tmp_path, monkeypatch):
    """A killed tsp-sibling data stage resumes from the trees it has, not from a fresh copy."""
    from treeplay.pipeline import Pipeline

    config = load_config(write(tmp_path, SIBLING))
    pipeline = Pipeline(config, tmp_path / "run")
    arms = {a.name: a for a in config.arms()}
    monkeypatch.setattr(pipeline.stages, "_build_tree_data", lambda *args: {"trees": 1, "pairs": 0})
    tsp = pipeline.stages.data_stage(0, arms["tsp"], 1, "embedded", "h0")
    sibling = pipeline.stages.data_stage(0, arms["tsp-sibling"], 1, "embedded", "h0")
    run_stage(tsp)
    (tsp.directory / "trees.jsonl").write_text('{"task_id": "a"}\n{"task_id": "b"}\n')
    sibling.directory.mkdir(parents=True)
    (sibling.directory / "trees.jsonl").write_text('{"task_id": "own"}\n')
    record = run_stage(sibling)
    assert (sibling.directory / "trees.jsonl").read_text() == '{"task_id": "own"}\n'
    assert "trees_from" not in record


def test_a_bench_eval_stage_does_not_depend_on_the_other_benches(tmp_path):
    """Adding a bench to a finished run must not redo the evals it already has."""
    from treeplay.pipeline import Pipeline

    one = load_config(write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\neval: {benches: [securityeval]}\n"))
    two = load_config(write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\neval: {benches: [securityeval, humaneval]}\n"))
    first = Pipeline(one, tmp_path / "run", fingerprint="fixed").stages.eval_stages(0, "base", "embedded", "h0")
    second = Pipeline(two, tmp_path / "run", fingerprint="fixed").stages.eval_stages(0, "base", "embedded", "h0")
    assert [s.directory.name for s in second] == ["securityeval", "humaneval"]
    assert first[0].inputs_hash == second[0].inputs_hash
    assert second[0].inputs_hash != second[1].inputs_hash
    hotter = load_config(write(tmp_path, "name: x\ntrain_tasks: {path: a.jsonl}\neval: {benches: [securityeval], temperature: 0.8}\n"))
    assert Pipeline(hotter, tmp_path / "run", fingerprint="fixed").stages.eval_stages(0, "base", "embedded", "h0")[0].inputs_hash != first[0].inputs_hash


def test_round_robin_cwe_order_spreads_a_limit_over_cwes():
    from treeplay.pipeline import round_robin_by_cwe
    from treeplay.tasks import Task

    def task(i: str, cwe: str) -> Task:
        return Task(id=i, language="py", cwe=(cwe,), instruction="", prefix="")

    tasks = [task("a1", "CWE-502"), task("a2", "CWE-502"), task("a3", "CWE-502"),
             task("b1", "CWE-89"), task("c1", "CWE-79"), task("c2", "CWE-79")]
    assert [t.id for t in round_robin_by_cwe(tasks)] == ["a1", "b1", "c1", "a2", "c2", "a3"]


def test_an_arms_budget_counts_what_it_shares_with_an_earlier_arm_at_the_cost_of_the_stage_that_ran_it(tmp_path):
    """A copied stage takes a second, but the arm's model cost what the original stage cost: the
    budget counts that, and says how much of it an earlier arm ran. Stages that did the work take
    100 s (data), 10 s (train), 5 s (eval); a copy 1 s; pairing an earlier arm's trees 2 s."""
    from treeplay.pipeline import Pipeline
    from treeplay.stages import walk

    config = load_config(write(tmp_path, ROUNDS.replace("variants:\n", "variants:\n  tsp-sibling: "
                                                        "{method: tsp, pair_mode: sibling, rounds: 1}\n")))  # fmt: skip
    pipeline = Pipeline(config, tmp_path / "run")
    hashes: set[str] = set()
    trees: set[str | None] = set()
    budgets: dict[str, dict] = {}

    def on_stage(stage: Stage) -> dict:
        if stage.inputs_hash in hashes:
            wall = 1.0
        elif stage.kind == "data" and stage.samples_key in trees:
            wall = 2.0
        else:
            wall = {"data": 100.0, "train": 10.0, "eval": 5.0}[str(stage.kind)]
        hashes.add(stage.inputs_hash)
        trees.add(stage.samples_key)
        return {"wall_s": wall, "final_model_dir": str(stage.directory / "final"), "steps": 4}

    walk(pipeline.steps(), on_stage, lambda budget: budgets.__setitem__(budget.arm, budget.record))
    assert [a.name for a in config.arms()] == ["tsp", "sft", "tsp-sibling", "tsp-1round", "tsp-dpo",
                                               "tsp-oracle-nodes"]  # fmt: skip
    walls = {arm: (b["wall_s"], b["shared_wall_s"]) for arm, b in budgets.items()}
    assert walls["tsp"] == (2 * 100 + 2 * 10 + 2 * 5, 0)  # two rounds, two benches
    assert walls["tsp-1round"] == (100 + 10 + 2 * 5, 100 + 10)  # tsp's round 1, copied
    assert walls["tsp-dpo"] == (100 + 10 + 2 * 5, 100)  # tsp's round-1 data, its own training
    assert walls["tsp-sibling"] == (100 + 2 + 10 + 2 * 5, 100)  # tsp's round-1 trees, its own pairs
    assert walls["tsp-oracle-nodes"] == (2 * 100 + 2 * 10 + 5, 0)  # other trees, one bench
    assert budgets["tsp-1round"]["optimizer_steps"] == 4  # steps stay the model's own: one round
