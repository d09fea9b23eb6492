"""`treeplay bundle RUN_DIR` and `treeplay unbundle FILE`: a run's results without its model weights,
to finish a run of several seeds over several sessions (see `treeplay.run_bundle`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bundle_command(
    run_dir: Annotated[Path, typer.Argument(help="The run dir, e.g. runs/experiment-tasks36-v10")],
    out: Annotated[Path, typer.Option("--out", help="The bundle to write (.tar.xz)")],
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Only these seeds (repeat; default all)")] = None,
) -> None:
    """Pack a run dir's results (config, stage records, generations, metrics, trees, pairs, logs)
    without trained weights or checkpoints; BUNDLE.json inside lists what was left out."""
    from treeplay.run_bundle import BundleError, write_bundle
    from treeplay.run_lock import holder

    busy = holder(run_dir)
    if busy is not None:
        typer.echo(f"warning: {run_dir} is being written ({busy}); a stage still running may be bundled "
                   "mid-write: bundle finished seeds (--seed)", err=True)  # fmt: skip
    try:
        summary = write_bundle(run_dir, out, seed or None)
    except BundleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    left = sum(int(item["bytes"]) for item in summary.left_out)
    typer.echo(f"{out}: {summary.files} files ({summary.bytes_in / 1e6:.2f} MB before compression, "
               f"{out.stat().st_size / 1e6:.2f} MB written); left out {len(summary.left_out)} weight "
               f"file(s), {left / 1e6:.1f} MB")  # fmt: skip


def unbundle_command(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `treeplay bundle`")],
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where to restore it (default: the run dir it was made from)")] = None,
) -> None:
    """Restore a bundle into a run dir; `treeplay run CONFIG` then skips its finished stages and
    runs the rest. Refuses (writing nothing) when a file there differs from the bundle's."""
    from treeplay.run_bundle import BundleError, RunDirBusy, read_manifest, restore_bundle

    try:
        target = run_dir or Path(str(read_manifest(bundle)["run_dir"]))
        written, kept = restore_bundle(bundle, target)
    except (BundleError, RunDirBusy, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{target}: {written} file(s) restored, {kept} already there")


def register(app: typer.Typer) -> None:
    app.command("bundle")(bundle_command)
    app.command("unbundle")(unbundle_command)
