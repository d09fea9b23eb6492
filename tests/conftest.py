"""Shared fixtures. Stage-specific fixtures live in tests/<stage>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TREEPLAY_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data in ../shared/data; tests that need it skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set TREEPLAY_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def embedded_policy():  # type: ignore[no-untyped-def]
    """The embedded SmolLM2 policy, loaded once per test session (slow tests only)."""
    import torch

    torch.set_num_threads(1)
    from treeplay.policy import load_policy

    return load_policy("embedded:smollm2-135m", backend="hf", threads=1)


@pytest.fixture(scope="session")
def qwen_engine():  # type: ignore[no-untyped-def]
    """The embedded default (Qwen2.5-Coder-0.5B-Instruct) on the llama.cpp backend, loaded once."""
    from treeplay.policy import load_policy

    return load_policy("embedded", backend="llamacpp", threads=2, n_parallel=4, ctx_per_slot=1024)
