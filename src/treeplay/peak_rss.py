"""The peak resident memory of this process over one stretch of work (one stage of a run).

Linux keeps the process's high-water mark of resident memory (`VmHWM` in `/proc/self/status`). It
never goes down, so on its own it cannot say which stage a run's peak came from. `PeakRss` combines
it with sampling:

- when the high-water mark rises during the stretch, the stretch set a new record for the process,
  and that mark is its peak, exactly;
- otherwise its peak is below an earlier one, and is the largest `VmRSS` sampled every
  `interval_s` (a spike shorter than that can be missed).

The mark is never reset (writing `5` to `/proc/self/clear_refs` would reset it, but would also hide
earlier peaks from `/usr/bin/time` and `getrusage`, which report it at exit). Only this process is
measured: the model engines and the trainer run in it; analyzer and sandbox subprocesses do not.
Where `/proc/self/status` does not exist, nothing is measured and the peak is `None`.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")
_FIELD = {name: re.compile(rf"^{name}:\s+(\d+)\s+kB$", re.MULTILINE) for name in ("VmHWM", "VmRSS")}


def status_mb(field: str) -> float | None:
    """`VmHWM` or `VmRSS` of this process in MB, or None where it cannot be read."""
    try:
        match = _FIELD[field].search(_STATUS.read_text(encoding="ascii"))
    except OSError:
        return None
    return round(int(match.group(1)) / 1024, 1) if match else None


class PeakRss:
    """`with PeakRss() as meter: work()`; then `meter.peak_mb` is the peak resident memory of the work."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak_mb: float | None = None
        self._sampled: float | None = None
        self._mark_before: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)

    def __enter__(self) -> PeakRss:
        self._mark_before = status_mb("VmHWM")
        self._sampled = status_mb("VmRSS")
        if self._mark_before is not None:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        if self._mark_before is None:
            return
        self._stop.set()
        self._thread.join()
        self._note(status_mb("VmRSS"))
        mark_after = status_mb("VmHWM")
        if mark_after is not None and mark_after > self._mark_before:
            self.peak_mb = mark_after  # a new record for the process: set during this work
        else:
            self.peak_mb = self._sampled

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._note(status_mb("VmRSS"))

    def _note(self, value: float | None) -> None:
        if value is not None and (self._sampled is None or value > self._sampled):
            self._sampled = value
