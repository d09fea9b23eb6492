"""Each stage's `__init__` is its public face: the names it lists resolve to the objects of their
modules, and importing a stage's config does not import the stage's heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

import treeplay.eval
import treeplay.oracle
import treeplay.policy
import treeplay.train
import treeplay.tree
from treeplay.eval.config import EvalConfig
from treeplay.oracle.core import judge_many
from treeplay.policy.load import load_policy
from treeplay.policy.records import SamplingParams
from treeplay.train.config import TrainConfig
from treeplay.train.trainer import train
from treeplay.tree.config import TreeConfig
from treeplay.tree.writer import build_trees


def test_faces_resolve_to_their_modules_objects() -> None:
    assert treeplay.tree.TreeConfig is TreeConfig and treeplay.tree.build_trees is build_trees
    assert treeplay.train.TrainConfig is TrainConfig and treeplay.train.train is train
    assert treeplay.eval.EvalConfig is EvalConfig
    assert treeplay.policy.load_policy is load_policy and treeplay.policy.SamplingParams is SamplingParams
    assert treeplay.oracle.judge_many is judge_many
    for stage in (treeplay.eval, treeplay.tree, treeplay.train, treeplay.policy, treeplay.oracle):
        for name in stage.__all__:
            assert getattr(stage, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        treeplay.tree.nope  # noqa: B018


def test_a_stage_config_does_not_import_torch() -> None:
    code = ("import sys, treeplay.train.config, treeplay.tree, treeplay.policy; treeplay.tree.TreeConfig; "
            "treeplay.policy.load_policy; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
