"""The `treeplay` command. Each stage contributes its commands through `<stage>/cli.py:register`."""

from __future__ import annotations

import importlib
import os

import typer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="treeplay",
    help="Tree-like Self-Play: teach code LLMs to write secure code from their own mistakes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Each module defines `register(app)`; order = order in --help.
COMMAND_MODULES = (
    "treeplay.tasks.cli",
    "treeplay.policy.cli",
    "treeplay.oracle.cli",
    "treeplay.oracle.sandbox.cli",
    "treeplay.tree.cli",
    "treeplay.train.cli",
    "treeplay.eval.cli",
    "treeplay.pipeline_cli",
    "treeplay.rekey_cli",
    "treeplay.run_bundle_cli",
)


@app.callback()
def _root() -> None:
    """Tree-like Self-Play: teach code LLMs to write secure code from their own mistakes."""


@app.command("version")
def version() -> None:
    """Print treeplay's version."""
    from treeplay import __version__

    typer.echo(__version__)


def _register_stages() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_stages()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
