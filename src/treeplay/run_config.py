"""The run config of `treeplay run CONFIG` (`RunConfig`) and what it reads: tasks, data paths.

The stage sections (`train_tasks:`, `tree:`, `train:`, `eval:`) are typed against the stage configs
(`treeplay.tasks.config.TaskSource`, `treeplay.tree.config.TreeConfig`,
`treeplay.train.config.TrainConfig`, `treeplay.eval.config.EvalConfig`), so a bad key is reported with its path before any work starts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from treeplay.config_fields import (
    ConfigSection,
    StageSection,
    config_section_model,
    pydantic_field,
    section_model,
)
from treeplay.eval import EvalConfig
from treeplay.policy.config import Backend, PolicyConfig
from treeplay.tasks import Task
from treeplay.tasks.config import TaskSource
from treeplay.train import TrainConfig
from treeplay.tree import TreeConfig

METHOD_ORDER = ("sft", "selfplay", "tsp")


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file and the field."""


# ---- configuration --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalSection(_Strict):
    """`eval:`: the benches and their task limits, and the sampling of `EvalConfig` (defaults there)."""

    benches: list[str] = Field(default_factory=lambda: ["securityeval"])
    limit: int | None = Field(default=None, ge=1)  # tasks per bench (None: all)
    limits: dict[str, int] = Field(default_factory=dict)  # per-bench override
    n: int = pydantic_field(EvalConfig, "n")
    # per-bench samples per task (over `n`): a small bench (15 held-out scenarios) needs more
    # samples per task than a 164-task one to carry a claim; a bench not named keeps `n` and its hash
    n_per_bench: dict[str, int] = Field(default_factory=dict)
    temperature: float = pydantic_field(EvalConfig, "temperature")
    top_p: float = pydantic_field(EvalConfig, "top_p")
    max_new_tokens: int = pydantic_field(EvalConfig, "max_new_tokens")
    batch_tasks: int = pydantic_field(EvalConfig, "batch_tasks")

    @field_validator("n_per_bench")
    @classmethod
    def _n_per_bench_names_benches(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        benches = info.data.get("benches", [])
        unknown = sorted(set(value) - set(benches))
        if unknown:
            raise ValueError(f"n_per_bench names {', '.join(map(repr, unknown))}, not in benches {benches}")
        low = sorted(b for b, n in value.items() if n < 1)
        if low:
            raise ValueError(f"samples per task must be >= 1, got {', '.join(f'{b}: {value[b]}' for b in low)}")
        return value

    def bench_n(self, bench: str) -> int:
        """Samples per task on `bench`."""
        return self.n_per_bench.get(bench, self.n)

    def stage_config(self, bench: str | None = None) -> EvalConfig:
        """The eval stage's config (the sampling fields of this section; `bench`'s own n if given)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvalConfig)}
        if bench is not None:
            fields["n"] = self.bench_n(bench)
        return EvalConfig(**fields)

    def sampling_inputs(self, bench: str) -> dict[str, Any]:
        """What `bench`'s generations depend on in this section: its sampling, with its own n (so a
        bench not in `n_per_bench` keeps the hash it had before the option existed)."""
        dump = self.model_dump(exclude={"batch_tasks", "limits", "limit", "benches", "n_per_bench"})
        return dump | {"n": self.bench_n(bench)}


if TYPE_CHECKING:  # the section models are built from the dataclasses at import time
    TreeSection = StageSection
    TrainSection = StageSection
    TaskSection = ConfigSection
else:
    TreeSection = section_model(TreeConfig)
    TrainSection = section_model(TrainConfig)
    TaskSection = config_section_model(TaskSource)  # TaskSource fields (treeplay.tasks.config)


class SelfplaySection(_Strict):
    """`selfplay:`: the unstructured baseline's whole-sequence samples per task (root samples only).

    `max_new_tokens` (None: the tree's) lets the whole programs be sampled to completion while the
    tree's branches stay short; set `root_samples * max_new_tokens` to the tree's
    `max_branches * max_new_tokens` for the same sampling budget (docs/design.md)."""

    root_samples: int = Field(default=8, ge=2)
    max_new_tokens: int | None = Field(default=None, ge=1)


class VariantSection(_Strict):
    """An extra arm of the experiment (an ablation): a method with tree/train option overrides.

    Its name is its directory and its row in the report, e.g. `tsp-dpo` (TSP trees, plain DPO loss)
    or `tsp-oracle-nodes` (risk nodes from the oracle only, no dataset diff)."""

    method: Literal["sft", "selfplay", "tsp"]
    tree: TreeSection = Field(default_factory=TreeSection)  # TreeConfig fields over `tree:`
    train: TrainSection = Field(default_factory=TrainSection)  # TrainConfig fields over `train:`
    pair_mode: Literal["golden-vs-branch", "sibling", "both"] | None = None
    benches: list[str] | None = None  # evaluate on these of `eval.benches` only (None: all)
    rounds: int | None = Field(default=None, ge=1)  # None: the run's `rounds`


@dataclasses.dataclass(frozen=True)
class Arm:
    """One trained model line of the experiment: a method (or variant) and its options."""

    name: str
    method: str
    tree: dict[str, Any]
    train: dict[str, Any]
    pair_mode: str
    benches: tuple[str, ...]
    rounds: int


class RunConfig(_Strict):
    name: str
    model: str = pydantic_field(PolicyConfig, "model")
    backend: Backend = pydantic_field(PolicyConfig, "backend")
    device: str = pydantic_field(PolicyConfig, "device")
    threads: int | None = pydantic_field(PolicyConfig, "threads")
    n_parallel: int = pydantic_field(PolicyConfig, "n_parallel")
    early_stop: bool = pydantic_field(PolicyConfig, "early_stop")
    seeds: list[int] = Field(default_factory=lambda: [0])
    methods: list[Literal["sft", "selfplay", "tsp"]] = ["tsp"]
    rounds: int = Field(default=2, ge=1)
    data_root: str | None = None
    train_tasks: TaskSection  # TaskSource fields (treeplay.tasks.config)
    eval: EvalSection = Field(default_factory=EvalSection)
    tree: TreeSection = Field(default_factory=TreeSection)  # TreeConfig fields (treeplay.tree.config)
    pair_mode: Literal["golden-vs-branch", "sibling", "both"] = "both"
    unparseable_pairs: bool = False  # also golden vs finished unparseable branches (own pair kind)
    allow_untrained: bool = False  # a method with 0 pairs / 0 steps is reported "untrained" instead of failing
    selfplay: SelfplaySection = Field(default_factory=SelfplaySection)
    train: TrainSection = Field(default_factory=TrainSection)  # TrainConfig fields (method is set per method)
    variants: dict[str, VariantSection] = Field(default_factory=dict)  # ablation arms, by name
    report: bool = True

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value or len(set(value)) != len(value):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        return value

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, VariantSection]) -> dict[str, VariantSection]:
        for name in value:
            if name in ("base", *METHOD_ORDER) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
                raise ValueError(f"variant name {name!r} must be lower-case letters, digits and '-', not a method name")
        return value

    @model_validator(mode="after")
    def _variant_benches(self) -> RunConfig:
        for name, variant in self.variants.items():
            unknown = sorted(set(variant.benches or ()) - set(self.eval.benches))
            if unknown:
                raise ValueError(f"variants.{name}.benches: {unknown} are not in eval.benches")
        return self

    def arm_tree_config(self, arm: Arm) -> TreeConfig:
        """The tree settings `arm` samples with: its own, or for unstructured self-play root-only
        trees of `selfplay.root_samples` whole programs of `selfplay.max_new_tokens` (else the tree's)."""
        base = TreeConfig(**arm.tree)
        if arm.method != "selfplay":
            return base
        root, tokens = self.selfplay.root_samples, self.selfplay.max_new_tokens or base.max_new_tokens
        return dataclasses.replace(base, root_samples=root, max_nodes=1, depth=1, max_branches=root, max_new_tokens=tokens)

    def arms(self) -> list[Arm]:
        """The trained arms in report order: the methods, then the variants."""
        benches = tuple(self.eval.benches)
        methods = list(dict.fromkeys(self.methods))  # run order = the config's order
        tree, train = self.tree.given(), self.train.given()
        arms = [Arm(m, m, dict(tree), dict(train), self.pair_mode, benches, self.rounds) for m in methods]
        for name, v in self.variants.items():
            arms.append(Arm(name, v.method, {**tree, **v.tree.given()}, {**train, **v.train.given()},
                            v.pair_mode or self.pair_mode, tuple(v.benches or benches), v.rounds or self.rounds))
        return arms

    def task_source(self) -> TaskSource:
        """The tasks stage's config of the run (its `train_tasks:` section)."""
        return cast(TaskSource, self.train_tasks.stage_config())

    def policy_config(self, model: str | None = None) -> PolicyConfig:
        """How to load `model` (default: the run's base model) with the run's engine settings."""
        return PolicyConfig(model=model or self.model, backend=self.backend, device=self.device, threads=self.threads,
                            n_parallel=self.n_parallel, early_stop=self.early_stop)  # fmt: skip


def load_config(path: Path | str) -> RunConfig:
    """Read and validate a run config; errors name the file, the line and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_config(raw, path, text=text)


def parse_config(raw: dict[str, Any], source: Path | str, *, text: str | None = None) -> RunConfig:
    """Validate a run config mapping; errors name `source`, the line in `text` (the YAML it was read
    from) when given, and the field's path (`tree.k`)."""
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            line = yaml_line(text, err["loc"]) if text is not None else None
            problems.append(f"{f'line {line}: ' if line else ''}field {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        raise ConfigError(f"{source}: {'; '.join(problems)}") from None
    _check_sections(config, Path(source))
    return config


def yaml_line(text: str, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest key (or item) of `loc` found in the YAML `text` (None: not found)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if hit is None:
                break
            line, node = hit[0].start_mark.line + 1, hit[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _check_sections(config: RunConfig, path: Path) -> None:
    """Build every arm's tree and train configs now (their cross-field checks), not hours later;
    the keys and types of the sections were checked by their section models already."""
    from treeplay.run_check import arm_option_problems

    if "method" in config.train.given():
        raise ConfigError(f"{path}: field train.method: set methods at the top level, not in train")
    problems = arm_option_problems(config, str(path))
    if problems:
        raise ConfigError("; ".join(problems))


# ---- helpers --------------------------------------------------------------------------------


def data_root(config: RunConfig) -> Path:
    if config.data_root:
        return Path(config.data_root)
    from treeplay.eval.evaluate import default_data_root

    return default_data_root()


def resolve_data_path(config: RunConfig, path: str) -> Path:
    return data_root(config) / path.removeprefix("data:") if path.startswith("data:") else Path(path)


def load_train_tasks(config: RunConfig) -> list[Task]:
    """The run's training tasks (`TaskSource.load` on the path, `data:` resolved)."""
    source = config.task_source()
    return source.load(resolve_data_path(config, source.path))
