"""treeplay.train stage: SFT, self-play DPO and TSP training of a model on pairs.

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`train`; `TrainResult`; `TrainConfig`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treeplay.lazy_face import lazy_face

if TYPE_CHECKING:  # the real types for type checkers; nothing is imported at run time
    from treeplay.train.config import TrainConfig  # noqa: F401
    from treeplay.train.trainer import TrainResult, train  # noqa: F401

_FACE = {
    "train": "treeplay.train.trainer",
    "TrainResult": "treeplay.train.trainer",
    "TrainConfig": "treeplay.train.config",
}
__getattr__, __all__ = lazy_face(__name__, _FACE)
