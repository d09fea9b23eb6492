"""CLI commands of this stage (registered by treeplay.cli): `treeplay judge FILE...`."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("judge")
    def judge_files(
        files: list[Path] = typer.Argument(..., help="Source files to judge.", exists=True, dir_okay=False),
        lang: str | None = typer.Option(None, "--lang", help="Language (py, c, cpp, js, go); default: from extension."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per file (path, language, status, findings)."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the verdict cache."),
    ) -> None:
        """Statically judge source files: secure / vulnerable / unparseable, with CWE findings."""
        from treeplay.oracle.cache import finding_to_dict
        from treeplay.oracle.config import OracleConfig
        from treeplay.oracle.core import Oracle
        from treeplay.oracle.languages import language_of_path, normalise_language

        items = []
        for path in files:
            try:
                language = normalise_language(lang) if lang else language_of_path(path.name)
            except ValueError as exc:
                raise typer.BadParameter(f"{path}: {exc}") from exc
            items.append((path.read_text(encoding="utf-8", errors="replace"), language, None))
        oracle = Oracle(OracleConfig(use_cache=not no_cache))
        try:
            verdicts = oracle.judge_many(items)
        finally:
            oracle.close()
        for path, (_, language, _), verdict in zip(files, items, verdicts, strict=True):
            if as_json:
                typer.echo(json.dumps({
                    "path": str(path), "language": language, "status": verdict.status,
                    "findings": [finding_to_dict(f) for f in verdict.findings],
                    "analyzers_run": list(verdict.analyzers_run), "error": verdict.error,
                    "functional": verdict.functional, "functional_error": verdict.functional_error,
                }))
                continue
            typer.echo(f"{path}: {verdict.status} ({language}; {', '.join(verdict.analyzers_run)})")
            if verdict.error:
                typer.echo(f"  note: {verdict.error}")
            if verdict.functional == "nonfunctional":
                typer.echo(f"  nonfunctional: {verdict.functional_error}")
            for f in verdict.findings:
                typer.echo(f"  line {f.line}: {f.cwe or '-'} [{f.severity}] {f.analyzer}:{f.rule} {f.message}")
