"""stage.json records the peak resident memory of the stage's own work (`treeplay.peak_rss`).

The memory tests run in a fresh interpreter: its high-water mark starts low whatever the test
session loaded before, so a few hundred MB decide each case.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from treeplay import peak_rss
from treeplay.pipeline import Stage, digest, run_stage

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc/self/status here")

SCRIPT = """
import json, sys, time
from pathlib import Path
from treeplay import peak_rss
from treeplay.pipeline import Stage, digest, run_stage

def hold(megabytes, seconds=0.0):
    def body():
        block = b"\\x01" * (megabytes * 2**20)  # written, so resident; freed before the stage ends
        time.sleep(seconds)
        del block
        return {}
    return body

out = {"resident": peak_rss.status_mb("VmRSS")}
root = Path(sys.argv[1])
for name, megabytes, seconds in json.loads(sys.argv[2]):
    out[name] = run_stage(Stage(name, root / name, digest(name), hold(megabytes, seconds))).get("peak_rss_mb")
out["mark_at_end"] = peak_rss.status_mb("VmHWM")
print(json.dumps(out))
"""


def _stages(tmp_path: Path, stages: list[tuple[str, int, float]]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path), json.dumps(stages)],
                          capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_stage_records_the_peak_of_its_own_work_not_of_the_stages_before(tmp_path):
    # 600 MB sets a new high-water mark of the fresh process: recorded exactly; then an empty stage
    got = _stages(tmp_path, [("big", 600, 0.0), ("small", 0, 0.0)])
    assert got["big"] >= got["resident"] + 590
    assert got["small"] < got["big"] - 500  # the stage before's memory is not in it
    assert json.loads((tmp_path / "big" / "stage.json").read_text())["peak_rss_mb"] == got["big"]


def test_a_stage_below_an_earlier_peak_is_measured_by_sampling(tmp_path):
    # 300 MB after a 600 MB stage stays under the high-water mark; held for 5 sampling intervals
    got = _stages(tmp_path, [("big", 600, 0.0), ("mid", 300, 0.5)])
    assert got["resident"] + 290 <= got["mid"] < got["resident"] + 450


def test_the_process_high_water_mark_is_left_alone(tmp_path):
    # /usr/bin/time and getrusage report the mark at exit: no stage may reset it
    got = _stages(tmp_path, [("big", 400, 0.0), ("small", 0, 0.0)])
    assert got["mark_at_end"] >= got["resident"] + 390


def test_where_proc_status_is_missing_no_peak_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(peak_rss, "_STATUS", tmp_path / "no-such-dir" / "status")
    record = run_stage(Stage("s", tmp_path / "s", digest("s"), dict))
    assert "peak_rss_mb" not in record
    assert "peak_rss_mb" not in json.loads((tmp_path / "s" / "stage.json").read_text())


def test_fields_are_read_in_megabytes_from_the_status_file(tmp_path, monkeypatch):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9999999 kB\nVmHWM:\t  2097152 kB\nVmRSS:\t 1024 kB\n")
    monkeypatch.setattr(peak_rss, "_STATUS", status)
    assert peak_rss.status_mb("VmHWM") == 2048.0
    assert peak_rss.status_mb("VmRSS") == 1.0
    status.write_text("Name:\tpython\n")
    assert peak_rss.status_mb("VmHWM") is None
