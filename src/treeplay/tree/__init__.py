"""treeplay.tree stage: grow trees from tasks with a policy and the oracle; pairs from trees.

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`TreeConfig`; `TreeBuilder`; `build_trees`; `pairs_for_trees`; `Tree`; `Node`; `Branch`; `Pair`; `tree_from_dict`; `pair_from_dict`.
"""

from __future__ import annotations

import importlib
from typing import Any

_FACE = {
    "TreeConfig": "treeplay.tree.config",
    "TreeBuilder": "treeplay.tree.builder",
    "build_trees": "treeplay.tree.writer",
    "pairs_for_trees": "treeplay.tree.pairs",
    "Tree": "treeplay.tree.records",
    "Node": "treeplay.tree.records",
    "Branch": "treeplay.tree.records",
    "Pair": "treeplay.tree.records",
    "tree_from_dict": "treeplay.tree.records",
    "pair_from_dict": "treeplay.tree.records",
}
__all__ = sorted(_FACE)


def __getattr__(name: str) -> Any:
    if name not in _FACE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_FACE[name]), name)
