"""CLI commands of this stage (registered by treeplay.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
