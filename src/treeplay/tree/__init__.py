"""treeplay.tree stage: grow trees from tasks with a policy and the oracle; pairs from trees.

The stage's public face, imported lazily (PEP 562) so that importing one submodule (e.g. the
stage's config from a run config) does not import the whole stage and its heavy dependencies:
`TreeConfig`; `TreeBuilder`; `build_trees`; `pairs_for_trees`; `Tree`; `Node`; `Branch`; `Pair`; `tree_from_dict`; `read_trees`; `pair_from_dict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treeplay.lazy_face import lazy_face

if TYPE_CHECKING:  # the real types for type checkers; nothing is imported at run time
    from treeplay.tree.builder import TreeBuilder  # noqa: F401
    from treeplay.tree.config import TreeConfig  # noqa: F401
    from treeplay.tree.pairs import pairs_for_trees  # noqa: F401
    from treeplay.tree.records import Branch, Node, Pair, Tree, pair_from_dict, read_trees, tree_from_dict  # noqa: F401
    from treeplay.tree.writer import build_trees  # noqa: F401

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
    "read_trees": "treeplay.tree.records",
    "pair_from_dict": "treeplay.tree.records",
}
__getattr__, __all__ = lazy_face(__name__, _FACE)
