"""Progress bars that also show progress when the output goes to a log file.

rich draws a live bar only on a terminal; with the output redirected (`nohup ... > run.log`, CI) it
prints the bar once, when it finishes, so a 17-minute tree stage shows nothing for 17 minutes.
`Progress` is rich's bar plus, off a terminal, one plain line of the bars every `log_every_s`
seconds. Every stage's bar (trees, sampling, training, evaluation) is built from it.
"""

from __future__ import annotations

from typing import Any

from rich import progress as rich_progress

LOG_EVERY_S = 30.0
# rich estimates the speed from the updates of the last 30 s by default, made for fast loops; a stage
# here reports a batch of tasks every 30-60 s, so its bars showed no time remaining (`-:--:--`)
SPEED_ESTIMATE_PERIOD_S = 600.0


class Progress(rich_progress.Progress):
    """`rich.progress.Progress`; when its console is not a terminal, `update`/`advance` also print
    the bars as a plain line, at most once every `log_every_s` seconds (rich's clock, `get_time`);
    none once every bar is complete, as rich prints the final bars itself. The time remaining is
    estimated from the last `speed_estimate_period` seconds of updates (10 minutes, not rich's 30 s)."""

    def __init__(self, *columns: Any, log_every_s: float = LOG_EVERY_S, **kwargs: Any) -> None:
        kwargs.setdefault("speed_estimate_period", SPEED_ESTIMATE_PERIOD_S)
        super().__init__(*columns, **kwargs)
        self.log_every_s = log_every_s
        self._last_line_at = self.get_time()

    def update(self, task_id: rich_progress.TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._print_line_when_due()

    def advance(self, task_id: rich_progress.TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._print_line_when_due()

    def _print_line_when_due(self) -> None:
        if self.disable or self.console.is_terminal or not self.live.is_started or self.finished:
            return
        now = self.get_time()
        if now - self._last_line_at < self.log_every_s:
            return
        self._last_line_at = now
        self.console.print(self.make_tasks_table(self.tasks))
