"""Fixtures of the sandbox tests: the sandbox itself and the CWEval-layout fixture tasks."""

from __future__ import annotations

import pytest

from treeplay.oracle.sandbox import Sandbox, SandboxUnavailable


def _make(backend: str) -> Sandbox:
    try:
        box = Sandbox(backend)  # type: ignore[arg-type]
        box.ensure_network_isolated()
    except SandboxUnavailable as exc:
        pytest.skip(f"{backend} sandbox unavailable here: {exc}")
    return box


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return _make("bwrap")


@pytest.fixture(scope="session", params=["bwrap", "unshare"])
def any_sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """Each isolation backend in turn (the unshare fallback too)."""
    return _make(request.param)
