"""issue 14 items 1 and 3: `treeplay run CONFIG --check` on every shipped config, the exact blocker
for a language without a judge, and a method with zero training pairs failing its stage."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from treeplay.oracle import OracleConfig, default_oracle
from treeplay.pipeline import Arm, Pipeline, RunConfig, Stage, StageError, load_config, run_config
from treeplay.run_check import check_run

REPO = Path(__file__).resolve().parents[2]
GPU_CONFIGS = {"codellama-7b.yaml": "/models/CodeLlama-7b-Instruct-hf",
               "qwen2.5-coder-7b.yaml": "/models/Qwen2.5-Coder-7B-Instruct"}
# languages that had no judge before oracle v3 and their task counts, counted by hand in the shared
# data: SafeCoder sec-new-desc.train.jsonl holds 23 Java and 75 Ruby rows; sec_eval trained-new holds
# 5 Java and 7 Ruby scenarios. Whether they are blockers comes from the oracle's registry (since
# oracle v3 both have judges, so the GPU and cross-language configs no longer list them).
TRAIN_UNJUDGED = {"java": 23, "rb": 75}
TRAINED_NEW_UNJUDGED = {"java": 5, "rb": 7}
# languages of the tasks each config judges (hand-listed from the configs and the shared data):
# embedded*: SecurityEval and Python SafeCoder rows; the others hold sec-eval trained-new scenarios
# (C, C++, Go, Java, JS, Python, Ruby) or every SafeCoder language.
ALL_LANGUAGES = ["c", "cpp", "go", "java", "js", "py", "rb"]


def _judge_blocker(source: str, where: str, counts: dict[str, int]) -> list[str]:
    config = OracleConfig()  # the oracle's registry says which languages have a judge
    missing = {lang: n for lang, n in counts.items() if not config.has_judge(lang)}
    if not missing:
        return []
    listed = ", ".join(f"{lang} ({n} tasks)" for lang, n in sorted(missing.items()))
    return [f"{source}: field {where}: no oracle judge for {listed} (judged: {', '.join(config.judged_languages())})"]


def _analyzer_blockers(source: str, languages: list[str]) -> list[str]:
    oracle = default_oracle()  # an analyzer missing on this machine is a blocker: say which
    return [f"{source}: oracle: analyzer {name!r} for {lang} cannot run: {oracle._unavailable[name]} "
            "(its verdicts would be incomplete)"
            for lang in languages for name in oracle.config.analyzers_for(lang) if oracle.analyzer(name) is None]


def expected_blockers(name: str, source: str) -> list[str]:
    expected: list[str] = []
    if name in GPU_CONFIGS:
        expected += _judge_blocker(source, "train_tasks", TRAIN_UNJUDGED)
    if name in GPU_CONFIGS or name == "embedded-crosslang.yaml":
        expected += _judge_blocker(source, "eval.benches (sec-eval:trained-new)", TRAINED_NEW_UNJUDGED)
    languages = {"embedded.yaml": ["py"], "embedded-full.yaml": ["py"]}.get(name, ALL_LANGUAGES)
    expected += _analyzer_blockers(source, [lang for lang in languages if OracleConfig().has_judge(lang)])
    if name in GPU_CONFIGS:
        if importlib.util.find_spec("vllm") is None:
            expected.append(f'{source}: field backend: vllm is not installed (pip install -e ".[gpu]")')
        import torch

        if not torch.cuda.is_available():
            expected.append(f"{source}: field device: cuda requested but no CUDA device is visible")
        if not Path(GPU_CONFIGS[name]).is_dir():
            expected.append(f"{source}: field model: {GPU_CONFIGS[name]} is not a local directory")
    return expected


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_check_every_shipped_config(name: str, shared_data: Path, tmp_path: Path) -> None:
    source = f"configs/{name}"
    config = load_config(REPO / source)
    report = check_run(config.model_copy(update={"data_root": str(shared_data)}), tmp_path / "run", source=source)
    assert report.problems == expected_blockers(name, source)
    assert report.plan[0].startswith(f"{len(config.seeds)} seed(s) x arms base+")
    if config.model == "embedded":
        assert "tok/s (docs/policy.md)" in report.plan[-1]


def _fake_language_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from treeplay.tasks import records

    monkeypatch.setattr(records, "LANGUAGES", (*records.LANGUAGES, "cobol"))
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"id": f"c{i}", "language": "cobol", "cwe": ["CWE-89"], "instruction": "x", "prefix": "MOVE A TO B.\n"}
            for i in range(2)]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "cobol.yaml"
    config.write_text(yaml.safe_dump({"name": "cobol", "train_tasks": {"path": str(tasks)}, "eval": {"benches": []}}))
    return config


def test_language_without_a_judge_is_named_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake_language_config(tmp_path, monkeypatch)
    report = check_run(load_config(path), tmp_path / "run", source=str(path))
    judged = ", ".join(OracleConfig().judged_languages())
    assert report.problems == [f"{path}: field train_tasks: no oracle judge for cobol (2 tasks) (judged: {judged})"]
    # `treeplay run` runs the same check before any work
    from treeplay.pipeline import ConfigError

    with pytest.raises(ConfigError, match="no oracle judge for cobol"):
        run_config(load_config(path), tmp_path / "run", source=str(path))
    assert not (tmp_path / "run").exists()


def test_cli_check_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from treeplay.cli import app

    path = _fake_language_config(tmp_path, monkeypatch)
    result = CliRunner().invoke(app, ["run", str(path), "--check", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "blockers:" in result.output and "no oracle judge for cobol (2 tasks)" in result.output


def _arm(config: RunConfig, name: str) -> Arm:
    return next(arm for arm in config.arms() if arm.name == name)


def _pipeline_with_empty_pairs(tmp_path: Path, allow: bool) -> tuple[Pipeline, Stage]:
    config = load_config(REPO / "configs" / "embedded.yaml").model_copy(update={"allow_untrained": allow})
    pipeline = Pipeline(config, tmp_path / "run")
    data_dir = tmp_path / "run" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "pairs.jsonl").write_text("")
    data = Stage("data", data_dir, "h", lambda: {})
    return pipeline, pipeline.stages.train_stage(0, _arm(config, "tsp"), 1, "embedded", "m", data)


def test_zero_training_pairs_fail_the_stage(tmp_path: Path) -> None:
    _, stage = _pipeline_with_empty_pairs(tmp_path, allow=False)
    with pytest.raises(StageError, match=r"seed 0 / tsp / round 1: 0 training pairs .*`allow_untrained: true`"):
        stage.run()


def test_zero_training_pairs_reported_untrained_when_allowed(tmp_path: Path) -> None:
    _, stage = _pipeline_with_empty_pairs(tmp_path, allow=True)
    record = stage.run()
    assert record["steps"] == 0 and record["final_model_dir"] == "embedded"
    assert record["untrained"].startswith("seed 0 / tsp / round 1: 0 training pairs")


def test_stage_digests_follow_the_oracle_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 14 item 6: upgrading/installing an analyzer or editing a rule file redoes data and eval stages
    import shutil

    from treeplay.oracle import config as oracle_config
    from treeplay.oracle import core as oracle_core

    pipeline = Pipeline(load_config(REPO / "configs" / "embedded.yaml"), tmp_path / "run")

    def hashes() -> tuple[str, str]:
        monkeypatch.setattr(oracle_core, "_DEFAULT", {})  # a fresh oracle, as in a new process
        return (pipeline.stages.eval_stages(0, "base", "embedded", "m")[0].inputs_hash,
                pipeline.stages.data_stage(0, _arm(pipeline.config, "tsp"), 1, "embedded", "m").inputs_hash)

    before = hashes()
    assert hashes() == before
    monkeypatch.setattr(oracle_core, "analyzer_version", lambda name: "99-upgraded")
    upgraded = hashes()
    assert upgraded[0] != before[0] and upgraded[1] != before[1]
    rules = tmp_path / "rules"
    shutil.copytree(oracle_config.RULES_DIR, rules)
    monkeypatch.setattr(oracle_config, "RULES_DIR", rules)
    assert hashes() == upgraded
    with (rules / "python.yaml").open("a") as fh:
        fh.write("# edited\n")
    edited = hashes()
    assert edited[0] != upgraded[0] and edited[1] != upgraded[1]
