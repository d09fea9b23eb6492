"""Stage config fields: one default and one help text per option, read by the CLI and the run config.

Every stage config is a dataclass whose fields are written TRL-style,
`field(default=..., metadata={"help": ...})`; bounds for the CLI and the YAML validation go in the
same metadata (`ge`, `gt`, `le`). A stage that samples with its own default (eval at T = 0.2)
declares the field with `inherit(SamplingParams, "temperature", default=0.2)`: the help text stays
in `SamplingParams`, the one home of the sampling options.

`section_model(TreeConfig)` builds the pydantic model of a YAML section from the dataclass (same
fields, defaults, help and bounds; unknown keys refused), so `RunConfig` reports `tree.k` itself;
`treeplay.config_cli` builds a command's options from the same fields.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import cache
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    create_model,
    model_serializer,
    model_validator,
)

BOUNDS = ("ge", "gt", "le", "lt")


def help_of(config: type, name: str) -> str:
    """The help text of field `name` of a config dataclass."""
    return str(config_fields(config)[name].metadata.get("help", ""))


def config_fields(config: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(config)}


def default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default (calling its factory), or `dataclasses.MISSING`."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def option(default: Any, help: str, **metadata: Any) -> Any:
    """`field(default=default, metadata={"help": help, ...})`: a stage config field in one line."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def inherit(config: type, name: str, **override: Any) -> Any:
    """A field declared like `config.name` (default, help, bounds); `default=` overrides the default."""
    source = config_fields(config)[name]
    default = override.pop("default", source.default)
    metadata = {**source.metadata, **override}
    if source.default_factory is not dataclasses.MISSING and "default" not in override:
        return dataclasses.field(default_factory=source.default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@cache
def field_types(config: type) -> dict[str, Any]:
    """The resolved annotations of a config dataclass (the modules use postponed annotations)."""
    return typing.get_type_hints(config)


class StageSection(BaseModel):
    """A YAML section typed against a stage config; it remembers the keys it was given, as given.

    `given()` is what the stage builds its dataclass from (and what the stage digests hash), so a
    value is never re-typed on its way (a YAML `1` for a float stays `1`, as before the typing);
    dumping a section writes the given keys only, so a variant's section stays an override."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_given(cls, data: Any, handler: ModelWrapValidatorHandler[StageSection]) -> StageSection:
        section = handler(data)
        if isinstance(data, StageSection):
            section._given = dict(data._given)
        elif isinstance(data, dict):
            section._given = dict(data)
        return section

    @model_serializer(mode="plain")
    def _dump_given(self) -> dict[str, Any]:
        return dict(self._given)

    def given(self) -> dict[str, Any]:
        return dict(self._given)


def pydantic_field(config: type, name: str, *, required_ok: bool = False) -> Any:
    """`pydantic.Field` of field `name` of a config dataclass: its default, help text and bounds
    (a field without a default is required when `required_ok`, else a TypeError)."""
    f = config_fields(config)[name]
    default = default_of(f)
    bounds = {k: f.metadata[k] for k in BOUNDS if k in f.metadata}
    if default is dataclasses.MISSING:
        if not required_ok:
            raise TypeError(f"{config.__name__}.{name}: a stage config field needs a default")
        return Field(description=f.metadata.get("help"), **bounds)
    return Field(default=default, description=f.metadata.get("help"), **bounds)


def section_fields(config: type, *, exclude: tuple[str, ...] = (), required_ok: bool = False) -> dict[str, Any]:
    """`create_model` field specs of `config`'s fields: type, dataclass default, help and bounds."""
    types = field_types(config)
    return {f.name: (types[f.name], pydantic_field(config, f.name, required_ok=required_ok))
            for f in dataclasses.fields(config) if f.name not in exclude}


def section_model(config: type, *, exclude: tuple[str, ...] = ()) -> type[StageSection]:
    """The model of a YAML section of `config`: unknown keys refused, each field's type and bounds
    checked (an error names `section.field`), defaults and help texts from the dataclass."""
    model = create_model(  # type: ignore[call-overload]
        f"{config.__name__}Section", __base__=StageSection, **section_fields(config, exclude=exclude)
    )
    return typing.cast(type[StageSection], model)


class ConfigSection(BaseModel):
    """A YAML section that holds a whole stage config (e.g. `train_tasks:`), not an override: unknown
    keys refused, fields without a default required, every field dumped (defaults included)."""

    model_config = ConfigDict(extra="forbid")
    stage_class: ClassVar[type]

    def stage_config(self) -> Any:
        """The stage config dataclass with this section's values."""
        return self.stage_class(**{name: getattr(self, name) for name in config_fields(self.stage_class)})


def config_section_model(config: type) -> type[ConfigSection]:
    """The `ConfigSection` model of `config` (same fields, defaults, help texts and bounds)."""
    model = create_model(  # type: ignore[call-overload]
        f"{config.__name__}Section", __base__=ConfigSection, **section_fields(config, required_ok=True)
    )
    model.stage_class = config
    return typing.cast(type[ConfigSection], model)
