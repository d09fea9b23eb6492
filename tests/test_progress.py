"""Progress off a terminal: a plain line of the bars every `log_every_s` seconds of rich's clock."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import MofNCompleteColumn, TextColumn, TimeRemainingColumn

from treeplay.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(console: Console, clock: Clock, **kwargs: object) -> None:
    with Progress(
        TextColumn("trees"),
        MofNCompleteColumn(),
        console=console,
        get_time=clock,
        auto_refresh=False,
        log_every_s=30,
        **kwargs,
    ) as bar:  # type: ignore[arg-type]
        job = bar.add_task("", total=10)
        clock.now = 10.0
        bar.advance(job)  # 1/10 after 10 s: not due
        clock.now = 31.0
        bar.advance(job)  # 2/10 after 31 s: a line
        clock.now = 40.0
        bar.advance(job)  # 3/10, 9 s after the last line: not due
        clock.now = 62.0
        bar.update(job, completed=5)  # 31 s after the last line: a line


def test_a_log_file_gets_a_line_every_interval_and_the_final_bar() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=60), Clock())
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert lines == ["trees  2/10", "trees  5/10", "trees  5/10"]  # two due lines, then rich's final bar


def test_a_terminal_gets_only_the_live_bar() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=True, width=60), Clock())
    assert "2/10" not in out.getvalue() and "5/10" in out.getvalue()


def test_a_disabled_bar_prints_nothing() -> None:
    out = io.StringIO()
    _run(Console(file=out, force_terminal=False, width=60), Clock(), disable=True)
    assert out.getvalue() == ""


def test_a_finished_bar_is_printed_once_by_rich_not_again_as_a_due_line() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress(TextColumn("x"), MofNCompleteColumn(), console=Console(file=out, force_terminal=False, width=60),
                  get_time=clock, auto_refresh=False, log_every_s=30) as bar:
        job = bar.add_task("", total=2)
        clock.now = 31.0
        bar.advance(job)  # due: 1/2
        clock.now = 70.0
        bar.advance(job)  # due, but complete: rich prints it on exit
    assert [line.strip() for line in out.getvalue().splitlines()] == ["x 1/2", "x 2/2"]


def test_batches_a_minute_apart_still_give_a_time_remaining() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress(TextColumn("eval"), MofNCompleteColumn(), TimeRemainingColumn(), get_time=clock,
                  console=Console(file=out, force_terminal=False, width=60), auto_refresh=False) as bar:
        job = bar.add_task("", total=100)
        clock.now = 40.0
        bar.update(job, completed=16)  # a batch of 16 tasks every 40 s
        clock.now = 80.0
        bar.update(job, completed=32)  # 16 tasks in 40 s: 68 left take 170 s
    lines = [line.strip() for line in out.getvalue().splitlines()]
    # one update cannot give a speed yet; with rich's 30 s window the second could not either
    assert lines == ["eval  16/100 -:--:--", "eval  32/100 0:02:50", "eval  32/100 0:02:50"]
