"""Worker of test_ddp: a tiny TSP run under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_helpers import CharEncoder, make_pairs, tiny_llama

from treeplay.train.config import TrainConfig
from treeplay.train.trainer import ModelBundle, train

if __name__ == "__main__":
    torch.set_num_threads(1)
    config = TrainConfig(method="tsp", max_steps=4, batch_size=2, grad_accum=2, learning_rate=1e-2, save_every=2,
                         progress=False, seed=3)
    train(config, make_pairs(6), ModelBundle(tiny_llama(0), CharEncoder(), model_id="tiny"), sys.argv[1])
