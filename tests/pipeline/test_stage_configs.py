"""Stage configs: every field is exactly one option of its command, YAML -> config -> YAML round
trips, and the run config reports a bad section key with its path."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from treeplay.cli import app
from treeplay.config_cli import Section, config_options
from treeplay.config_fields import default_of
from treeplay.eval.config import EvalConfig
from treeplay.policy.config import PolicyConfig
from treeplay.policy.records import SamplingParams
from treeplay.run_config import ConfigError, load_config, parse_config
from treeplay.train.config import TrainConfig
from treeplay.tree.config import TreeConfig

REPO = Path(__file__).resolve().parents[2]

# command -> the config dataclasses whose fields it must expose (written from the issue, by hand)
COMMANDS: dict[tuple[str, ...], tuple[type, ...]] = {
    ("tree", "build"): (PolicyConfig, TreeConfig),
    ("train",): (TrainConfig,),
    ("eval",): (PolicyConfig, EvalConfig),
    ("sample",): (PolicyConfig, SamplingParams),
}


def _command(path: tuple[str, ...]) -> Any:
    command: Any = get_command(app)
    for name in path:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", list(COMMANDS), ids=[" ".join(p) for p in COMMANDS])
def test_every_config_field_is_exactly_one_option(path: tuple[str, ...]) -> None:
    params = [p for p in _command(path).params if p.opts]
    for config in COMMANDS[path]:
        for field in dataclasses.fields(config):
            flag = "--" + field.name.replace("_", "-")
            owners = [p for p in params if flag in p.opts]
            assert [p.name for p in owners] == [field.name], f"{' '.join(path)} {flag}"
            option = owners[0]
            assert option.help.startswith(field.metadata["help"]), flag
            default = default_of(field)
            if isinstance(default, tuple):
                assert tuple(option.default) == default, flag
            elif not isinstance(default, dict | frozenset):  # YAML-valued options: unset = the config's
                assert option.default == default, flag
    assert sum("--config" in p.opts for p in params) == 1


def test_every_stage_field_has_a_help_text() -> None:
    from treeplay.oracle.config import OracleConfig

    for config in (PolicyConfig, SamplingParams, TreeConfig, TrainConfig, EvalConfig, OracleConfig):
        missing = [f.name for f in dataclasses.fields(config) if not f.metadata.get("help")]
        assert missing == [], config.__name__


def test_sampling_defaults_have_one_home() -> None:
    # tree branches sample at T = 1.0 like SamplingParams; eval keeps its own T = 0.2
    assert (TreeConfig().temperature, TreeConfig().max_new_tokens) == (1.0, 128)
    assert (EvalConfig().temperature, EvalConfig().max_new_tokens, EvalConfig().top_p) == (0.2, 128, 0.95)
    for name in ("temperature", "top_p", "max_new_tokens"):
        help_text = SamplingParams.__dataclass_fields__[name].metadata["help"]
        assert TreeConfig.__dataclass_fields__[name].metadata["help"] == help_text
        assert EvalConfig.__dataclass_fields__[name].metadata["help"] == help_text


TREE_YAML = """\
tree:
  strategies: diff,entropy
  k: 3
  depth: 1
  temperature: 0.7
  max_new_tokens: 64
  run_tests: false
train:
  lora: true
  learning_rate: 2.0e-4
  lora_target_modules: [q_proj, v_proj]
  extra: {note: hand}
"""


def _captured(section: Section) -> tuple[typer.Typer, dict[str, Any]]:
    """A one-command app that records the config it receives."""
    seen: dict[str, Any] = {}
    toy = typer.Typer()

    @toy.command()
    @config_options(cfg=section)
    def run(tag: str = typer.Option("x", "--tag"), *, cfg: Any) -> None:
        seen["cfg"], seen["tag"] = cfg, tag

    return toy, seen


def test_yaml_then_command_line_then_default(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TREE_YAML)
    toy, seen = _captured(Section(TreeConfig, "tree"))
    result = CliRunner().invoke(toy, ["--config", str(path), "--k", "5", "--snap-line", "--tag", "y"])
    assert result.exit_code == 0, result.output
    tree = seen["cfg"]
    assert (tree.k, tree.depth, tree.strategies, tree.temperature) == (5, 1, "diff,entropy", 0.7)
    assert (tree.snap_line, tree.run_tests, tree.top_p, seen["tag"]) == (True, False, 0.95, "y")
    # the old flag names still work
    result = CliRunner().invoke(toy, ["--strategy", "oracle", "--no-tests"])
    assert result.exit_code == 0, result.output
    assert (seen["cfg"].strategies, seen["cfg"].run_tests) == ("oracle", False)


def test_train_options_round_trip_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TREE_YAML)
    toy, seen = _captured(Section(TrainConfig, "train", flat=True))
    args = ["--config", str(path), "--lora-target-modules", "o_proj", "--lora-target-modules", "up_proj",
            "--extra", "{a: 1}", "--method", "sft"]
    result = CliRunner().invoke(toy, args)
    assert result.exit_code == 0, result.output
    cfg = seen["cfg"]
    assert (cfg.method, cfg.lora, cfg.learning_rate, cfg.sft_alpha) == ("sft", True, 2.0e-4, 0.0)
    assert (cfg.lora_target_modules, cfg.extra) == (("o_proj", "up_proj"), {"a": 1})
    # config -> YAML -> config
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump({"train": cfg.to_dict()}))
    result = CliRunner().invoke(toy, ["--config", str(dumped)])
    assert result.exit_code == 0, result.output
    assert seen["cfg"] == cfg


@pytest.mark.parametrize("config", [TreeConfig, EvalConfig, PolicyConfig, SamplingParams])
def test_stage_config_round_trips_yaml(config: type, tmp_path: Path) -> None:
    toy, seen = _captured(Section(config, "s"))
    path = tmp_path / "c.yaml"
    path.write_text("s: {}\n")
    assert CliRunner().invoke(toy, ["--config", str(path)]).exit_code == 0
    assert seen["cfg"] == config()
    path.write_text(yaml.safe_dump({"s": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in dataclasses.asdict(config()).items()}}))
    result = CliRunner().invoke(toy, ["--config", str(path)])
    assert result.exit_code == 0, result.output
    assert seen["cfg"] == config()


def test_bad_yaml_key_and_bad_option_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("tree:\n  kk: 3\n")
    toy, _ = _captured(Section(TreeConfig, "tree"))
    result = CliRunner().invoke(toy, ["--config", str(path)])
    assert result.exit_code == 2 and "tree.kk: Extra inputs are not permitted" in result.output
    result = CliRunner().invoke(toy, ["--top-p", "0"])
    assert result.exit_code == 2 and "--top-p: Input should be greater than 0" in result.output


RUN = """\
name: x
train_tasks: {path: a.jsonl}
methods: [tsp]
tree: {k: 2, temperature: 1}
train: {max_steps: 4, learning_rate: 1.0e-4}
variants:
  v:
    method: tsp
    tree: {strategies: oracle}
"""


def test_run_config_section_errors_have_their_path(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(RUN.replace("k: 2", "kk: 2"))
    with pytest.raises(ConfigError, match=r"run.yaml: line 4: field tree.kk: Extra inputs are not permitted"):
        load_config(path)
    path.write_text(RUN.replace("{strategies: oracle}", "{depth: zero}"))
    with pytest.raises(ConfigError, match=r"line 9: field variants.v.tree.depth: Input should be a valid integer"):
        load_config(path)
    path.write_text(RUN.replace("max_steps: 4", "max_stepz: 4"))
    with pytest.raises(ConfigError, match=r"field train.max_stepz: Extra inputs"):
        load_config(path)
    path.write_text(RUN.replace("{strategies: oracle}", "{strategies: bogus}"))
    with pytest.raises(ConfigError, match=r"field variants.v.tree: unknown risk-node strategy 'bogus'"):
        load_config(path)


def test_run_config_keeps_given_values_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    config = load_config(path)
    tsp, variant = config.arms()
    # exactly the keys written, values as written (1 stays an int: the data-stage digest is unchanged)
    assert tsp.tree == {"k": 2, "temperature": 1} and type(tsp.tree["temperature"]) is int
    assert variant.tree == {"k": 2, "temperature": 1, "strategies": "oracle"}
    assert tsp.train == {"max_steps": 4, "learning_rate": 1.0e-4}
    assert config.eval.stage_config() == EvalConfig()
    assert config.policy_config() == PolicyConfig()
    dumped = yaml.safe_load(yaml.safe_dump(config.model_dump(), sort_keys=False))
    assert dumped["tree"] == {"k": 2, "temperature": 1}
    assert dumped["variants"]["v"]["tree"] == {"strategies": "oracle"}
    again = parse_config(dumped, "dumped")
    assert again.model_dump() == config.model_dump() and again.arms() == config.arms()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_run_configs_round_trip(name: str) -> None:
    config = load_config(REPO / "configs" / name)
    raw = yaml.safe_load((REPO / "configs" / name).read_text())
    assert config.tree.given() == raw.get("tree", {})
    assert config.train.given() == raw.get("train", {})
    # dumped as the pipeline writes a run dir's config.yaml: in the file's order, which is the arms' run order
    again = parse_config(yaml.safe_load(yaml.safe_dump(config.model_dump(), sort_keys=False)), name)
    assert again.arms() == config.arms()


def test_engine_options_reach_llamacpp_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`n_parallel: 1` / `early_stop: false` in a run config load the llama.cpp engine with them;
    the torch backend never receives them (it has no such options)."""
    import treeplay.policy as policy_pkg

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(policy_pkg, "load_policy", lambda model, **kw: seen.append({"model": model, **kw}))
    path = tmp_path / "run.yaml"
    path.write_text(RUN + "n_parallel: 1\nearly_stop: false\n")
    config = load_config(path)
    config.policy_config().load()
    assert seen[-1]["backend"] == "auto" and seen[-1]["n_parallel"] == 1 and seen[-1]["early_stop"] is False
    dataclasses.replace(config.policy_config(), backend="hf").load()
    assert "n_parallel" not in seen[-1] and "early_stop" not in seen[-1]
    path.write_text(RUN + "n_parallel: 0\n")
    with pytest.raises(ConfigError, match=r"n_parallel"):
        load_config(path)


def test_engine_defaults_have_one_home() -> None:
    from treeplay.policy.llamacpp import EngineConfig

    assert (EngineConfig().n_parallel, EngineConfig().early_stop) == (4, True)
    assert (PolicyConfig().n_parallel, PolicyConfig().early_stop) == (4, True)
