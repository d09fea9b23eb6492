"""Fixtures of the training tests: a tiny randomly initialised Llama and a character tokenizer."""

from __future__ import annotations

import pytest
import torch
from train_helpers import CharEncoder, tiny_llama


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture()
def tiny_model():  # type: ignore[no-untyped-def]
    return tiny_llama(seed=0)


@pytest.fixture()
def char_encoder() -> CharEncoder:
    return CharEncoder()
