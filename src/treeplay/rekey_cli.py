"""`treeplay rekey CONFIG`: keep a run's finished stages after an oracle change that leaves every
verdict as it was (see `treeplay.rekey`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def rekey_command(
    config: Annotated[Path, typer.Argument(help="The run config the run dir was made with")],
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="The run dir (default runs/<name>)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Judge and report; write nothing")] = False,
    assume_oracle: Annotated[
        str | None,
        typer.Option("--assume-oracle", help="Oracle fingerprint of stage records written before records carried "
                                             "one (the hash is still checked and every verdict re-judged)"),
    ] = None,
) -> None:
    """Re-key finished stages that are stale only because the oracle fingerprint changed.

    Each such stage's stored programs are judged again by the installed oracle; only when no verdict
    differs are its inputs.json and stage.json rewritten to the current hash (train stages follow
    their re-keyed data stage). Stages with other changed inputs or differing verdicts are left for
    `treeplay run` to redo. Nothing is deleted; an audit log rekey-<UTC time>.json goes to the run
    dir. Exit 1 when some stage's verdicts differ or could not be compared, 2 on errors.
    """
    from treeplay.pipeline import ConfigError, load_config
    from treeplay.rekey import DIFFERS, NOT_COMPARED, REKEYED, WOULD_REKEY, Rekey, RekeyError
    from treeplay.run_lock import default_run_dir

    try:
        run_config = load_config(config)
        directory = run_dir or default_run_dir(run_config.name)
        result = Rekey(run_config, directory, say=typer.echo, dry_run=dry_run, assume_oracle=assume_oracle,
                       source=str(config)).run()  # fmt: skip
    except (ConfigError, RekeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    kept = result.count(WOULD_REKEY if dry_run else REKEYED)
    verb = "would be re-keyed (dry run: nothing written)" if dry_run else "re-keyed"
    typer.echo(f"{result.done} of {result.total} stages were done; {kept} {verb}; "
               f"{result.judged} programs judged in {result.judge_s:.0f}s")  # fmt: skip
    if result.must_redo:
        typer.echo(f"{len(result.must_redo)} stage(s) left for `treeplay run {config}` to redo:")
        for outcome in result.must_redo:
            typer.echo(f"  {outcome.name}: {outcome.outcome} ({outcome.note})")
    if result.log is not None:
        typer.echo(f"log: {result.log}")
    if result.count(DIFFERS, NOT_COMPARED):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("rekey")(rekey_command)
