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

STAGES = ("tasks", "policy", "oracle", "tree", "train", "eval")


def _register_stages() -> None:
    for stage in STAGES:
        module = importlib.import_module(f"treeplay.{stage}.cli")
        module.register(app)


_register_stages()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
