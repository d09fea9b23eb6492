"""One writer per run dir: a second `treeplay run` on a run dir another process is writing fails
at once naming the holder; `--check` lists it as a blocker; a killed holder leaves no stale lock."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from treeplay.pipeline import ConfigError, load_config, run_config
from treeplay.run_lock import LOCK_FILE, RunDirBusy, default_run_dir, hold_run_dir, holder

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from pathlib import Path
from treeplay.run_lock import hold_run_dir
with hold_run_dir(Path(sys.argv[1]), "treeplay run configs/x.yaml"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding tmp_path/run's lock until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE,
                             text=True, env=env)  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    yield child
    child.kill()
    child.wait()


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path, other_process):
    run = tmp_path / "run"
    with pytest.raises(RunDirBusy) as caught, hold_run_dir(run, "treeplay rekey"):
        pass
    message = str(caught.value)
    assert f"run dir {run} is being written by another treeplay command" in message
    assert f"pid {other_process.pid}, `treeplay run configs/x.yaml`, since 20" in message
    assert holder(run) is not None and holder(run).startswith(f"pid {other_process.pid}, ")  # type: ignore[union-attr]


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, other_process):
    run = tmp_path / "run"
    os.kill(other_process.pid, signal.SIGKILL)
    other_process.wait()
    assert (run / LOCK_FILE).is_file()  # the file stays, the lock went with the process
    assert holder(run) is None
    with hold_run_dir(run, "treeplay run configs/y.yaml"):
        assert f"pid {os.getpid()}, `treeplay run configs/y.yaml`" in (holder(run) or "")
    assert holder(run) is None  # released at the end of the block


def test_the_lock_is_released_when_the_body_raises(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ValueError), hold_run_dir(run, "treeplay run a.yaml"):
        raise ValueError("stage failed")
    with hold_run_dir(run, "treeplay run a.yaml"):
        pass


def test_no_lock_file_means_nobody_holds_the_dir(tmp_path):
    assert holder(tmp_path / "never-run") is None
    assert default_run_dir("experiment") == Path("runs/experiment")


def test_check_and_run_refuse_a_run_dir_being_written(tmp_path, other_process, shared_data):
    from typer.testing import CliRunner

    from treeplay.cli import app

    run = tmp_path / "run"
    config = REPO / "configs" / "embedded.yaml"
    expected = f"run dir {run} is being written by another treeplay command (pid {other_process.pid}, "
    check = CliRunner().invoke(app, ["run", str(config), "--check", "--run-dir", str(run)])
    assert check.exit_code == 1
    assert expected in check.output
    with pytest.raises(ConfigError) as caught:
        run_config(load_config(config), run, source=str(config))
    assert expected in str(caught.value)
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing was written
