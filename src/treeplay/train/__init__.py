"""treeplay.train stage: SFT, self-play DPO and TSP training of a model on pairs.

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`train`; `TrainResult`; `TrainConfig`.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "train": "treeplay.train.trainer",
    "TrainResult": "treeplay.train.trainer",
    "TrainConfig": "treeplay.train.config",
}
__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_FACE[name]), name)
