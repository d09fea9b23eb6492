"""Command options built from stage config dataclasses (as TRL's `make_parser` and vLLM's arg_utils).

    @tree_app.command("build")
    @config_options(policy=Section(PolicyConfig), tree=Section(TreeConfig, "tree"))
    def build(tasks: Path = typer.Option(...), *, policy: PolicyConfig, tree: TreeConfig) -> None: ...

gives `build` one option per field of `PolicyConfig` and `TreeConfig` (`--max-new-tokens`, bools as
`--snap-line/--no-snap-line`; default, help and bounds from the field) plus `--config FILE`, and
calls it with the two dataclasses built from: the option when given on the command line, else the
FILE's section (`tree:`; for a section without a key, the FILE's top-level keys that are its
fields: `model`, `backend`, ... of a run config), else the field's default. Values are checked by
the section model of `treeplay.config_fields` (errors name the option or `FILE: section.key`).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from treeplay.config_fields import config_fields, default_of, field_types, help_of, section_model

R = TypeVar("R")
CONFIG_HELP = "YAML file whose sections give option values (options on the command line win)."


@dataclass(frozen=True)
class Section:
    """A config dataclass a command receives, and where `--config FILE` keeps its values."""

    config: type
    key: str | None = None  # the FILE's section (`tree`); None: FILE's top-level keys that are fields
    flat: bool = False  # FILE without a `key:` section: its top level is this section (train files)
    ignore: tuple[str, ...] = ()  # keys of the FILE's section that are not this config's (eval: benches)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_listlike(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple and typing.get_args(tp)[-1:] == (Ellipsis,)


def _is_yaml_valued(tp: Any) -> bool:
    """Fields given as one YAML value on the command line (mappings, sets)."""
    return typing.get_origin(tp) in (dict, frozenset, set) or tp in (dict, frozenset)


def _option(config: type, f: dataclasses.Field[Any]) -> inspect.Parameter:
    """The typer option of one config field."""
    tp = field_types(config)[f.name]
    default = default_of(f)
    text = help_of(config, f.name)
    names = [option_name(f.name), *f.metadata.get("aliases", ())]
    extra: dict[str, Any] = {}
    if "ge" in f.metadata:
        extra["min"] = f.metadata["ge"]
    if "le" in f.metadata:
        extra["max"] = f.metadata["le"]
    if tp is bool:
        names[0] = f"{names[0]}/{f.metadata.get('flag_off', '--no-' + f.name.replace('_', '-'))}"
    elif _is_listlike(tp):
        tp, default = list[typing.get_args(tp)[0]], list(default)  # type: ignore[misc]
        text += " (repeat the option for several)"
    elif _is_yaml_valued(tp):
        tp, default, extra = str | None, None, {}
        text += " (a YAML value; default: the config's)"
    info = typer.Option(default, *names, help=text, **extra)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=tp)


def _from_cli(config: type, name: str, value: Any) -> Any:
    tp = field_types(config)[name]
    if _is_listlike(tp):
        return tuple(value)
    if _is_yaml_valued(tp):
        import yaml

        return yaml.safe_load(value)
    return value


def read_sections(path: Path, sections: dict[str, Section]) -> dict[str, dict[str, Any]]:
    """The values each section gets from a YAML file (see the module docstring)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--config") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a mapping at the top level", param_hint="--config")
    out: dict[str, dict[str, Any]] = {}
    for param, section in sections.items():
        fields = config_fields(section.config)
        if section.key is not None and isinstance(data.get(section.key), dict):
            out[param] = {k: v for k, v in data[section.key].items() if k not in section.ignore}
        elif section.key is not None and section.flat and not any(s.key in data for s in sections.values() if s.key):
            others = {n for s in sections.values() if s is not section for n in config_fields(s.config)}
            out[param] = {k: v for k, v in data.items() if k not in others and k not in section.ignore}
        elif section.key is None:
            out[param] = {k: v for k, v in data.items() if k in fields}
    return out


def build_config(config: type, values: dict[str, Any], origin: dict[str, str]) -> Any:
    """`config(**values)` after the section model checked keys, types and bounds; `origin` names
    where each value came from (`--k`, `FILE: tree.k`) for the error message."""
    types = field_types(config)
    values = {k: tuple(v) if isinstance(v, list) and _is_listlike(types.get(k)) else v for k, v in values.items()}
    try:
        section_model(config).model_validate(values)
        return config(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            head, *rest = [str(p) for p in error["loc"]] or ["?"]
            problems.append(f"{'.'.join([origin.get(head, head), *rest])}: {error['msg']}")
        raise typer.BadParameter("; ".join(problems)) from None
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None


def _given_on_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def config_options(**sections: Section) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator: the command's parameters named like `sections` receive the built dataclasses."""

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        hints = typing.get_type_hints(func, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(func).parameters.values() if p.name not in sections]
        generated = [_option(s.config, f) for s in sections.values() for f in dataclasses.fields(s.config)]
        names = [p.name for p in own] + [p.name for p in generated] + ["ctx", "config_file"]
        if len(set(names)) != len(names):
            raise TypeError(f"{func.__name__}: an option name is used twice: {sorted(names)}")

        def command(ctx: typer.Context, config_file: Path | None = None, **kwargs: Any) -> R:
            from_file = read_sections(config_file, sections) if config_file is not None else {}
            for param, section in sections.items():
                values = dict(from_file.get(param, {}))
                origin = {k: f"{config_file}: {section.key + '.' if section.key else ''}{k}" for k in values}
                for f in dataclasses.fields(section.config):
                    value = kwargs.pop(f.name)
                    if _given_on_command_line(ctx, f.name):
                        values[f.name] = _from_cli(section.config, f.name, value)
                        origin[f.name] = option_name(f.name)
                kwargs[param] = build_config(section.config, values, origin)
            return func(**kwargs)

        file_option = typer.Option(None, "--config", help=CONFIG_HELP)
        params = [
            inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
            *own,
            *generated,
            inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, default=file_option,
                              annotation=Path | None),
        ]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__, command.__doc__, command.__module__ = func.__name__, func.__doc__, func.__module__
        return command

    return decorate
