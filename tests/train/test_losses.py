"""Each loss against a value computed by hand (numbers worked out in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from treeplay.train.losses import (
    completion_cross_entropy,
    divergence_index,
    dpo_loss,
    first_divergent_weights,
    sft_loss,
    tsp_loss,
)


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_sft_loss_averages_completion_tokens_only() -> None:
    token_logps = torch.tensor([[-1.0, -2.0, -9.0], [-4.0, -99.0, -99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # (1 + 2 + 4) / 3 tokens
    assert sft_loss(token_logps, mask).item() == pytest.approx(7 / 3)


def test_completion_cross_entropy_ignores_prompt_tokens() -> None:
    # vocab 2; logits uniform except where set; sequence [0, 1, 1], only the last token is completion
    logits = torch.zeros(1, 3, 2)
    logits[0, 1] = torch.tensor([0.0, math.log(3.0)])  # p(1) = 3/4 at position 1 -> predicts token 2
    input_ids = torch.tensor([[0, 1, 1]])
    completion_mask = torch.tensor([[0, 0, 1]])
    assert completion_cross_entropy(logits, input_ids, completion_mask).item() == pytest.approx(-math.log(0.75))
    # including token 1 (predicted from uniform logits at position 0) adds log 2
    both = completion_cross_entropy(logits, input_ids, torch.tensor([[0, 1, 1]])).item()
    assert both == pytest.approx((math.log(2) - math.log(0.75)) / 2)


def test_dpo_sigmoid_hand_value() -> None:
    # h = (-10 - -12) - (-20 - -18) = 2 - (-2) = 4; beta 0.5 -> -log sigmoid(2) = log(1 + e^-2)
    out = dpo_loss(_t(-10.0), _t(-20.0), _t(-12.0), _t(-18.0), beta=0.5)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-2.0)))
    assert out.chosen_rewards.item() == pytest.approx(1.0)
    assert out.rejected_rewards.item() == pytest.approx(-1.0)
    assert out.reward_margin.item() == pytest.approx(2.0)
    assert out.accuracy.item() == 1.0


def test_dpo_label_smoothing_and_ipo_hand_values() -> None:
    # h = 4, beta 0.5: eps 0.1 -> 0.9 * log(1 + e^-2) + 0.1 * log(1 + e^2)
    smoothed = dpo_loss(_t(-10.0), _t(-20.0), _t(-12.0), _t(-18.0), beta=0.5, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-2.0)) + 0.1 * math.log1p(math.exp(2.0))
    assert smoothed.loss.item() == pytest.approx(expected)
    # IPO: (h - 1 / (2 beta))^2 = (4 - 1)^2 = 9
    ipo = dpo_loss(_t(-10.0), _t(-20.0), _t(-12.0), _t(-18.0), beta=0.5, loss_type="ipo")
    assert ipo.loss.item() == pytest.approx(9.0)


def test_dpo_batch_mean_and_bad_arguments() -> None:
    # pair 1 h = 0 -> log 2; pair 2 h = -2, beta 1 -> log(1 + e^2)
    out = dpo_loss(_t(-1.0, -3.0), _t(-1.0, -1.0), _t(-1.0, -1.0), _t(-1.0, -1.0), beta=1.0)
    assert out.loss.item() == pytest.approx((math.log(2) + math.log1p(math.exp(2.0))) / 2)
    assert out.accuracy.item() == 0.0
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(_t(0.0), _t(0.0), _t(0.0), _t(0.0), beta=0.0)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(_t(0.0), _t(0.0), _t(0.0), _t(0.0), loss_type="hinge")  # type: ignore[arg-type]


def test_divergence_and_first_w_weights() -> None:
    assert divergence_index([5, 6, 7, 8], [5, 6, 9]) == 2
    assert divergence_index([1, 2], [1, 2, 3]) == 2
    assert first_divergent_weights(5, start=1, window=2, extra_weight=1.5) == [1.0, 2.5, 2.5, 1.0, 1.0]


def test_tsp_loss_hand_value_with_weights_and_sft_regulariser() -> None:
    # chosen tokens: policy [-1, -2], reference [-1.5, -2.5]; weights [3, 1]
    #   weighted policy = -3 - 2 = -5, weighted reference = -4.5 - 2.5 = -7 -> ratio +2
    # rejected tokens: policy [-3, -1, (pad)], reference [-2, -1]; weights [3, 1]
    #   weighted policy = -9 - 1 = -10, weighted ref = -6 - 1 = -7 -> ratio -3
    # h = 5, beta 0.2 -> -log sigmoid(1) = log(1 + e^-1); SFT = (1 + 2) / 2 = 1.5; alpha 0.5 -> + 0.75
    pc = torch.tensor([[-1.0, -2.0, 0.0]])
    rc = torch.tensor([[-1.5, -2.5, 0.0]])
    pr = torch.tensor([[-3.0, -1.0, -7.0]])
    rr = torch.tensor([[-2.0, -1.0, -7.0]])
    cmask = torch.tensor([[1.0, 1.0, 0.0]])
    rmask = torch.tensor([[1.0, 1.0, 0.0]])
    w = torch.tensor([[3.0, 1.0, 1.0]])
    out = tsp_loss(pc, pr, rc, rr, cmask, rmask, chosen_weights=w, rejected_weights=w, beta=0.2, alpha=0.5)
    assert out.preference.loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-6)
    assert out.sft.item() == pytest.approx(1.5)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-1.0)) + 0.75, rel=1e-6)


def test_a_token_chosen_and_rejected_share_gets_no_preference_gradient() -> None:
    """TSP weights start at the first *differing* token; a shared first token x has weight 1 on both
    sides and the same log-prob (same context), so DPO's gradient on it is exactly 0 and only the SFT
    regulariser moves it (upwards: d/dx of alpha * -(x + a) / 2 = -alpha / 2)."""
    x = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)  # log p(shared token)
    a, b = torch.tensor(-1.2, dtype=torch.float64), torch.tensor(-0.4, dtype=torch.float64)
    chosen, rejected = [5, 9], [5, 11]  # token ids: same first token, then different
    start = divergence_index(chosen, rejected)
    assert start == 1
    w = torch.tensor([first_divergent_weights(2, start, window=4, extra_weight=1.0)], dtype=torch.float64)
    assert w.tolist() == [[1.0, 2.0]]
    mask = torch.ones(1, 2, dtype=torch.float64)
    ref = torch.tensor([[-0.5, -1.0]], dtype=torch.float64)
    for alpha, expected in ((0.0, 0.0), (0.4, -0.2)):
        x.grad = None
        pc, pr = torch.stack([x, a]).unsqueeze(0), torch.stack([x, b]).unsqueeze(0)
        out = tsp_loss(pc, pr, ref, ref, mask, mask, chosen_weights=w, rejected_weights=w, beta=0.1, alpha=alpha)
        out.loss.backward()
        assert x.grad is not None and x.grad.item() == pytest.approx(expected, abs=1e-12)
