"""The SFT training loss (packed rows, LM head only on predicting positions) equals the textbook
formula: full-vocabulary logits of every position of a right-padded batch, cross-entropy over the
tokens a completion mask selects. Loss and gradients, with different lengths in one batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_helpers import tiny_llama

from treeplay.train import logprobs
from treeplay.train.batch import batch_loss
from treeplay.train.config import TrainConfig
from treeplay.train.data import EncodedPair
from treeplay.train.logprobs import CompletionScorer, tree_attention_mask, tree_rows

# Three full token sequences of different lengths; the SFT completion is the span [start, end):
# row 0 ends with its completion, rows 1 and 2 continue after it (a middle span: the trailing
# tokens are in the textbook batch but carry no loss), and row 2 is the shortest (right padding).
SEQUENCES = [
    [1, 17, 23, 5, 9, 40, 41, 42, 43, 44, 45, 46],
    [1, 17, 23, 5, 60, 61, 62, 63, 64, 70, 71],
    [1, 80, 81, 82, 83, 84, 85],
]
SPANS = [(5, 12), (4, 9), (2, 5)]


def textbook_sft_loss(model: torch.nn.Module, shift: int = 0) -> torch.Tensor:
    """Old formula: logits over every position, next-token CE where the completion mask is 1."""
    width = max(len(s) for s in SEQUENCES)
    ids = torch.zeros((len(SEQUENCES), width), dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (seq, (start, end)) in enumerate(zip(SEQUENCES, SPANS, strict=True)):
        ids[r, : len(seq)] = torch.tensor(seq)
        attention[r, : len(seq)] = 1
        labels[r, start + shift : end + shift] = ids[r, start + shift : end + shift]
    logits = model(input_ids=ids, attention_mask=attention).logits  # [B, width, vocab]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def sft_batch() -> list[EncodedPair]:
    return [
        EncodedPair(i, f"k{i}", tuple(seq[:start]), tuple(seq[start:end]), ())
        for i, (seq, (start, end)) in enumerate(zip(SEQUENCES, SPANS, strict=True))
    ]


def training_sft_loss(model: torch.nn.Module) -> torch.Tensor:
    loss, _ = batch_loss(CompletionScorer(model), sft_batch(), TrainConfig(method="sft"))
    return loss


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same_loss_and_grads(model: torch.nn.Module) -> None:
    expected = textbook_sft_loss(model)
    expected.backward()
    expected_grads = _grads(model)
    got = training_sft_loss(model)
    got.backward()
    got_grads = _grads(model)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)
    assert expected.item() > 1.0  # a real CE of a random model over a 128-token vocabulary (ln 128 = 4.85)
    assert set(got_grads) == set(expected_grads) and expected_grads
    for name, g in expected_grads.items():
        assert g.abs().sum() > 0, name
        assert torch.allclose(got_grads[name], g, atol=1e-6, rtol=1e-4), name


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_sft_loss_and_gradients_equal_textbook_full_logits(attn: str) -> None:
    model = tiny_llama(seed=0)
    model.config._attn_implementation = attn
    _assert_same_loss_and_grads(model)


def test_sft_loss_and_lora_gradients_equal_textbook_through_peft() -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"])
    model = get_peft_model(tiny_llama(seed=0), lora)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; make the adapter (and so every LoRA gradient) non-trivial
            torch.nn.init.normal_(p, std=0.1)
    assert logprobs._decoder_and_head(model) is not None  # the LM head runs only where needed
    _assert_same_loss_and_grads(model)


def test_shifted_mask_gives_a_different_loss() -> None:
    """The comparison above can fail: the same formula with the completion mask one token off differs."""
    model = tiny_llama(seed=0)
    with torch.no_grad():
        got = training_sft_loss(model).item()
        assert abs(textbook_sft_loss(model, shift=1).item() - got) > 1e-3
        assert abs(textbook_sft_loss(model, shift=-1).item() - got) > 1e-3


def test_model_forward_fallback_equals_head_only_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Architectures not known to be `lm_head(decoder(x))` use the model's own forward: same numbers."""
    model = tiny_llama(seed=0)
    with torch.no_grad():
        head_only = training_sft_loss(model).item()
        monkeypatch.setattr(logprobs, "PLAIN_HEAD_MODEL_TYPES", frozenset())
        assert logprobs._decoder_and_head(model) is None
        assert training_sft_loss(model).item() == pytest.approx(head_only, abs=1e-6)


def test_tree_rows_pack_short_blocks_into_one_row() -> None:
    # block lengths (prompt + completions minus their last token): a 6, b 3, c 2 -> rows [a], [b, c]
    items = [([1, 2, 3], [4, 5, 6, 7]), ([8, 9], [10, 11]), ([12], [13, 14])]
    packed = tree_rows(items)
    assert packed.ids == [[1, 2, 3, 4, 5, 6], [8, 9, 10, 12, 13]]
    assert packed.positions == [[0, 1, 2, 3, 4, 5], [0, 1, 2, 0, 1]]
    assert packed.blocks == [[(0, 3, [(3, 6)])], [(0, 2, [(2, 3)]), (3, 1, [(4, 5)])]]
    assert packed.where == [(0, [2, 3, 4, 5]), (1, [1, 2]), (1, [3, 4])]


def test_tree_attention_mask_keeps_packed_blocks_apart() -> None:
    # row of width 6: block (prompt [0, 2), completion [2, 3)), block (prompt [3, 4), completion [4, 5)), padding
    mask = tree_attention_mask([5], [[(0, 2, [(2, 3)]), (3, 1, [(4, 5)])]], 6)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],  # the second prompt does not see the first block
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ]
