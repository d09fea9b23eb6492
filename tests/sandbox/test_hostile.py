"""Hostile code: every attack is contained, reported as a clean outcome, and the host is unharmed.

Each case uses short limits so the whole suite runs in seconds. Network cases never send a packet
off this machine: the outside-address case first checks that only `lo` exists and refuses to
connect otherwise (the test then fails).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sandbox_fixtures import fixture_task

from treeplay.oracle.sandbox import Limits, Sandbox, run_task_tests
from treeplay.oracle.sandbox.core import DEFAULT_UID_BASE, processes_of_uid

FAST = Limits(wall_s=5, cpu_s=5, memory_mb=512, processes=32, output_bytes=100_000)


def _python(box: Sandbox) -> str:
    # The unshare fallback has no private mounts: its uid must be able to reach the interpreter
    # itself, which this venv's (under root's 0700 home) is not. Use the system Python there.
    return sys.executable if box.backend == "bwrap" else "/usr/bin/python3"


def _py(box: Sandbox, code: str, limits: Limits = FAST):  # type: ignore[no-untyped-def]
    return box.run([_python(box), "-c", textwrap.dedent(code)], {}, limits)


def _sandbox_uid_processes() -> list[int]:
    if os.geteuid() != 0:
        return []
    base = int(os.environ.get("TREEPLAY_SANDBOX_UID_BASE", DEFAULT_UID_BASE))
    first = base + (os.getpid() % 1000) * 64
    return [pid for uid in range(first, first + 64) for pid in processes_of_uid(uid)]


@pytest.fixture(autouse=True)
def _nothing_left_running():  # type: ignore[no-untyped-def]
    yield
    assert _sandbox_uid_processes() == [], "sandboxed processes survived the run"


def test_fork_bomb_is_contained(any_sandbox: Sandbox) -> None:
    start = time.monotonic()
    result = _py(any_sandbox, """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """, Limits(wall_s=3, cpu_s=3, memory_mb=256, processes=32))
    assert result.outcome in ("timeout", "limit", "crashed")
    assert time.monotonic() - start < 15
    # The host can still start processes and the sandbox still works.
    assert any_sandbox.run(["true"], {}, FAST).outcome == "ok"


def test_infinite_loop_hits_the_cpu_limit(any_sandbox: Sandbox) -> None:
    result = _py(any_sandbox, "while True: pass", Limits(wall_s=10, cpu_s=1))
    assert result.outcome == "limit"
    assert "SIGXCPU" in result.reason


def test_memory_bomb_hits_the_memory_limit(any_sandbox: Sandbox) -> None:
    result = _py(any_sandbox, """
        blocks = []
        while True:
            blocks.append(bytearray(50 * 1024 * 1024))
    """, Limits(wall_s=10, memory_mb=300))
    assert result.outcome == "limit"
    assert "memory" in result.reason


def test_c_memory_bomb_is_contained(sandbox: Sandbox) -> None:
    source = "#include <stdlib.h>\n#include <string.h>\nint main(){for(;;){char*p=malloc(1<<26);memset(p,1,1<<26);}}\n"
    result = sandbox.run(
        ["sh", "-c", "gcc -w -o bomb bomb.c && ./bomb"], {"bomb.c": source},
        Limits(wall_s=20, cpu_s=10, memory_mb=400),
    )
    assert result.outcome in ("crashed", "limit")
    assert "SIGSEGV" in result.reason or "memory" in result.reason


def test_writes_outside_the_work_dir_fail(any_sandbox: Sandbox, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    result = _py(any_sandbox, f"""
        import os
        outcomes = []
        for target in [{str(canary)!r}, "/etc/treeplay-pwned", "/usr/treeplay-pwned", {str(Path.cwd() / "pwned")!r}]:
            try:
                with open(target, "w") as fh:
                    fh.write("pwned")
                outcomes.append("WROTE " + target)
            except OSError as exc:
                outcomes.append("blocked " + type(exc).__name__)
        with open("inside.txt", "w") as fh:
            fh.write("fine")
        print(outcomes)
    """)
    assert result.outcome == "ok", result.output_tail
    assert b"WROTE" not in result.stdout
    assert result.stdout.count(b"blocked") == 4
    assert canary.read_text() == "original"
    assert not Path("/etc/treeplay-pwned").exists()
    assert not (Path.cwd() / "pwned").exists()


def test_host_home_is_not_readable(any_sandbox: Sandbox) -> None:
    home = os.path.expanduser("~")
    host_entries = set(os.listdir(home)) - {".pyenv"}  # bwrap mounts only the interpreter from it
    assert host_entries
    result = _py(any_sandbox, f"""
        import json, os
        try:
            print("LISTED", json.dumps(os.listdir({home!r})))
        except OSError as exc:
            print("blocked", type(exc).__name__)
        try:
            print("READ", open("/etc/shadow").read()[:10])
        except OSError as exc:
            print("blocked", type(exc).__name__)
    """)
    assert result.outcome == "ok", result.output_tail
    assert b"READ" not in result.stdout
    for line in result.stdout.decode().splitlines():
        if line.startswith("LISTED"):
            assert not set(json.loads(line.split(" ", 1)[1])) & host_entries, "host home entries visible"


def test_no_connection_to_host_loopback(any_sandbox: Sandbox) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        result = _py(any_sandbox, f"""
            import socket
            s = socket.socket()
            s.settimeout(2)
            print("connect:", s.connect_ex(("127.0.0.1", {port})))
        """)
        assert result.outcome == "ok", result.output_tail
        assert b"connect: 0" not in result.stdout
        with pytest.raises(TimeoutError):
            server.accept()  # nobody reached the host's listener
    finally:
        server.close()


def test_no_route_to_an_outside_address(any_sandbox: Sandbox) -> None:
    # 192.0.2.1 is TEST-NET-1 (documentation only). The script refuses to try unless the sandbox
    # has no interface but lo, so a broken sandbox never sends traffic.
    result = _py(any_sandbox, """
        import errno, socket
        names = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
        if names != ["lo"]:
            print("NOT ISOLATED", names)
        else:
            s = socket.socket()
            s.settimeout(2)
            print("connect:", errno.errorcode.get(s.connect_ex(("192.0.2.1", 80)), "ok"))
    """)
    assert result.outcome == "ok", result.output_tail
    assert b"NOT ISOLATED" not in result.stdout
    assert b"connect: ENETUNREACH" in result.stdout


def test_killing_the_parent_and_everything_else_only_hurts_the_sandbox(any_sandbox: Sandbox) -> None:
    result = _py(any_sandbox, """
        import os, signal
        for pid in (os.getppid(), 1):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.kill(-1, signal.SIGKILL)
    """)
    assert result.outcome in ("crashed", "ok")
    assert os.getppid() > 1  # this test process and its parent are alive
    assert any_sandbox.run(["true"], {}, FAST).outcome == "ok"


def test_sleep_past_the_deadline_is_a_timeout(any_sandbox: Sandbox) -> None:
    start = time.monotonic()
    result = any_sandbox.run(["sh", "-c", "sleep 100 & sleep 100"], {}, Limits(wall_s=1.5))
    assert result.outcome == "timeout"
    assert time.monotonic() - start < 6


def test_printing_a_gigabyte_is_cut_off(any_sandbox: Sandbox) -> None:
    start = time.monotonic()
    result = _py(any_sandbox, """
        import sys
        block = "x" * (1 << 20)
        for _ in range(1024):
            sys.stdout.write(block)
    """)
    assert result.outcome == "limit"
    assert "output limit" in result.reason
    assert len(result.stdout) <= FAST.output_bytes
    assert time.monotonic() - start < 10


def test_hostile_candidates_in_the_test_runner(sandbox: Sandbox) -> None:
    task = fixture_task("cwe_020_0_task")
    hang = run_task_tests(task, "while True:\n    pass\n", timeout_s=2, sandbox=sandbox)
    assert hang.outcome == "timeout" and not hang.functional_pass
    flood = run_task_tests(
        task, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", timeout_s=20, sandbox=sandbox
    )
    assert flood.outcome == "limit" and not flood.functional_pass
    bomb = run_task_tests(task, "import os\nwhile True:\n    os.fork()\n", timeout_s=3, sandbox=sandbox)
    assert bomb.outcome in ("timeout", "crashed", "limit") and not bomb.functional_pass
    # ...and the run continues normally afterwards.
    good = run_task_tests(task, task.golden_solution or "", sandbox=sandbox)
    assert good.outcome == "ok" and good.functional_pass and good.security_pass
