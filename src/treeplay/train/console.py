"""The trainer's console and logs: main-process messages, a rich progress bar, TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tensorboard_writer(log_dir: Path, purge_step: int | None) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a dependency, but keep training if it is broken
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


class Console:
    """Main-process messages and a rich progress bar with ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def info(self, message: str) -> None:
        if self.enabled:
            from rich.console import Console

            Console(stderr=True, soft_wrap=True).print(f"[bold]train[/bold] {message}", highlight=False)

    def progress(self, *, total: int, completed: int, enabled: bool) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def bar() -> Any:
            if not (self.enabled and enabled):
                yield lambda step, metrics: None
                return
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

            from treeplay.progress import Progress

            with Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(), transient=False,
            ) as progress:
                task = progress.add_task("train", total=total, completed=completed, info="")

                def advance(step: int, metrics: dict[str, float]) -> None:
                    info = f"loss {metrics.get('loss', float('nan')):.4f}"
                    if "rewards/margin" in metrics:
                        info += f" margin {metrics['rewards/margin']:.3f} acc {metrics['rewards/accuracy']:.2f}"
                    progress.update(task, completed=step, info=info)

                yield advance

        return bar()
