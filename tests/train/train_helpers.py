"""Test helpers of the training stage: a tiny random Llama and a character-level pair encoder.

No downloads: the model is built from a LlamaConfig in-process with random weights.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from treeplay.tree.records import Pair

VOCAB = 128
BOS = 1
END = 2  # the end marker (`train.end_marker`); no character of the texts maps to it


class CharEncoder:
    """Maps characters to ids (ord % 128). Prompt = BOS + instruction + newline + code prefix."""

    eos_token_id: int | None = None

    def encode_prompt(self, pair: Pair) -> list[int]:
        return [BOS, *self.encode_continuation(pair.instruction + "\n" + pair.prefix)]

    def encode_continuation(self, text: str) -> list[int]:
        return [ord(ch) % VOCAB for ch in text]

    def end_ids(self, text: str) -> list[int]:
        return [END]


def tiny_llama(seed: int = 0, hidden: int = 32, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.float()
    return model


def make_pairs(n: int = 6) -> list[Pair]:
    """Small node-level pairs: a secure chosen continuation vs a vulnerable one, from a shared prefix."""
    pairs = []
    for i in range(n):
        prefix = f"def f{i}(q):\n    cur = db.cursor()\n    "
        pairs.append(
            Pair(
                task_id=f"t{i % 3}",
                node_id=f"n{i}",
                mode="golden-vs-branch",
                language="python",
                cwe="CWE-089",
                instruction=f"Run query {i}",
                prefix=prefix,
                chosen="cur.execute('SELECT * FROM t WHERE id=%s', (q,))\n",
                rejected="cur.execute('SELECT * FROM t WHERE id=' + q)\n",
            )
        )
    return pairs
