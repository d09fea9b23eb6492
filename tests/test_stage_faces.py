"""Each stage's `__init__` is its public face: the names it lists resolve to the objects of their
modules, and importing a stage's config does not import the stage's heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

import treeplay.eval
import treeplay.train
import treeplay.tree
from treeplay.eval.config import EvalConfig
from treeplay.train.config import TrainConfig
from treeplay.train.trainer import train
from treeplay.tree.config import TreeConfig
from treeplay.tree.writer import build_trees


def test_faces_resolve_to_their_modules_objects() -> None:
    assert treeplay.tree.TreeConfig is TreeConfig and treeplay.tree.build_trees is build_trees
    assert treeplay.train.TrainConfig is TrainConfig and treeplay.train.train is train
    assert treeplay.eval.EvalConfig is EvalConfig
    for stage in (treeplay.eval, treeplay.tree, treeplay.train):
        for name in stage.__all__:
            assert getattr(stage, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        treeplay.tree.nope  # noqa: B018


def test_a_stage_config_does_not_import_torch() -> None:
    code = "import sys, treeplay.train.config, treeplay.tree; treeplay.tree.TreeConfig; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
