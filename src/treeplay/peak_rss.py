"""The peak resident memory of this process over one stretch of work (one stage of a run).

Linux keeps the process's high-water mark of resident memory (`VmHWM` in `/proc/self/status`) and
resets it when `5` is written to `/proc/self/clear_refs` (Linux 4.0 and later). `getrusage`'s
`ru_maxrss` cannot be reset, so after the first big stage it would name the same peak for every
stage after it. Only this process is measured: memory of subprocesses (analyzers, the sandbox) is
not in it; the model engines and the trainer run in this process. Elsewhere (no such files, or a
kernel that refuses the write) nothing is measured and `None` is returned.
"""

from __future__ import annotations

import re
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_HWM = re.compile(r"^VmHWM:\s+(\d+)\s+kB$", re.MULTILINE)


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current resident size; False where that is not possible."""
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    return peak_rss_mb() is not None


def peak_rss_mb() -> float | None:
    """The high-water mark of resident memory since the last reset (or the process start), in MB."""
    try:
        match = _HWM.search(_STATUS.read_text(encoding="ascii"))
    except OSError:
        return None
    return round(int(match.group(1)) / 1024, 1) if match else None
