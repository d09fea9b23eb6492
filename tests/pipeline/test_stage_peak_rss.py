"""stage.json records the peak resident memory of the stage's own work (`treeplay.peak_rss`)."""

import json

import pytest

from treeplay import peak_rss
from treeplay.pipeline import Stage, digest, run_stage

MB = 2**20


def test_each_stage_records_the_peak_of_its_own_work_not_of_the_stages_before(tmp_path):
    if not peak_rss.reset_peak_rss():
        pytest.skip("no resettable high-water mark here (needs Linux 4.0 or later)")
    resident = peak_rss.peak_rss_mb()  # right after a reset: what the process holds now

    def big():
        block = b"\x01" * (400 * MB)  # written, so resident; freed again before the stage ends
        del block
        return {}

    first = run_stage(Stage("big", tmp_path / "big", digest("big"), big))
    second = run_stage(Stage("small", tmp_path / "small", digest("small"), dict))
    assert first["peak_rss_mb"] >= resident + 390
    assert second["peak_rss_mb"] < first["peak_rss_mb"] - 300  # the 400 MB of the stage before are not in it
    assert json.loads((tmp_path / "big" / "stage.json").read_text())["peak_rss_mb"] == first["peak_rss_mb"]


def test_where_the_mark_cannot_be_reset_no_peak_is_recorded(tmp_path, monkeypatch):
    # a process-wide peak would name an earlier stage's memory: better none than a wrong one
    monkeypatch.setattr(peak_rss, "_CLEAR_REFS", tmp_path / "no-such-dir" / "clear_refs")
    record = run_stage(Stage("s", tmp_path / "s", digest("s"), dict))
    assert "peak_rss_mb" not in record
    assert "peak_rss_mb" not in json.loads((tmp_path / "s" / "stage.json").read_text())


def test_the_mark_is_read_in_megabytes_from_the_status_file(tmp_path, monkeypatch):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9999999 kB\nVmHWM:\t  2097152 kB\nVmRSS:\t 1000 kB\n")
    monkeypatch.setattr(peak_rss, "_STATUS", status)
    assert peak_rss.peak_rss_mb() == 2048.0
    status.write_text("Name:\tpython\n")
    assert peak_rss.peak_rss_mb() is None
