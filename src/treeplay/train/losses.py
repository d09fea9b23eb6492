"""Training losses as pure tensor functions (no model, no state).

Conventions: `*_logps` are *sequence* log-probabilities (one value per sequence, shape [B]),
`token_logps` are per-token log-probabilities of a padded batch (shape [B, T]) with a 0/1 `mask`
of the same shape marking real completion tokens. All losses return the batch mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

PreferenceLossType = Literal["sigmoid", "ipo"]


@dataclass(frozen=True)
class PreferenceLossOutput:
    loss: torch.Tensor  # scalar, batch mean
    losses: torch.Tensor  # [B] per pair
    chosen_rewards: torch.Tensor  # [B] beta * (policy - reference) of the chosen sequence (detached)
    rejected_rewards: torch.Tensor  # [B] same for the rejected sequence (detached)

    @property
    def reward_margin(self) -> torch.Tensor:
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> torch.Tensor:
        """Fraction of pairs whose implicit reward prefers the chosen sequence."""
        return (self.chosen_rewards > self.rejected_rewards).float().mean()


def token_logps_from_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets[b, t] | ...) where logits[b, t] is the distribution that predicts targets[b, t].

    Computed in float32 via log_softmax + gather, so it matches the raw-policy log-probs the sampler
    records (no temperature, no top-p).
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, dim=-1, index=targets.long().unsqueeze(-1)).squeeze(-1)


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of (optionally weighted) token log-probs over the masked positions: shape [B]."""
    w = mask.to(token_logps.dtype)
    if weights is not None:
        w = w * weights.to(token_logps.dtype)
    return (token_logps * w).sum(dim=-1)


def sft_loss(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on completion tokens only: mean negative log-likelihood per completion token.

    Prompt tokens must already be excluded from `mask` (they carry no loss).
    """
    m = mask.to(token_logps.dtype)
    count = m.sum()
    if count <= 0:
        raise ValueError("sft_loss: the mask selects no completion tokens")
    return -(token_logps * m).sum() / count


def completion_cross_entropy(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """SFT loss from full-sequence logits: next-token CE averaged over tokens where completion_mask is 1.

    `completion_mask[b, t]` refers to `input_ids[b, t]`; position 0 can never be a target.
    """
    token_logps = token_logps_from_logits(logits[:, :-1], input_ids[:, 1:])
    return sft_loss(token_logps, completion_mask[:, 1:])


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: PreferenceLossType = "sigmoid",
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
    """DPO on sequence log-probs.

    h = (pi_c - ref_c) - (pi_r - ref_r).
    - sigmoid: -(1 - eps) * log sigmoid(beta * h) - eps * log sigmoid(-beta * h)   (eps = label smoothing,
      the conservative DPO of Mitchell 2023).
    - ipo: (h - 1 / (2 * beta))^2 (Azar et al. 2023; pass length-normalised log-probs for the paper's form).
    """
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"dpo_loss: label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_ratio = policy_chosen_logps - reference_chosen_logps
    rejected_ratio = policy_rejected_logps - reference_rejected_logps
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        if label_smoothing:
            raise ValueError("dpo_loss: label_smoothing is not defined for the IPO loss")
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"dpo_loss: unknown loss_type {loss_type!r} (expected 'sigmoid' or 'ipo')")
    return PreferenceLossOutput(
        loss=losses.mean(),
        losses=losses,
        chosen_rewards=(beta * chosen_ratio).detach(),
        rejected_rewards=(beta * rejected_ratio).detach(),
    )


def divergence_index(chosen_ids: list[int] | tuple[int, ...], rejected_ids: list[int] | tuple[int, ...]) -> int:
    """Length of the common token prefix of two continuations: the first token where they differ."""
    n = 0
    for a, b in zip(chosen_ids, rejected_ids, strict=False):
        if a != b:
            break
        n += 1
    return n


def first_divergent_weights(length: int, start: int, window: int, extra_weight: float) -> list[float]:
    """Per-token weights: 1 everywhere, 1 + extra_weight on tokens [start, start + window)."""
    if window < 0 or extra_weight < 0:
        raise ValueError("first_divergent_weights: window and extra_weight must be >= 0")
    return [1.0 + extra_weight if start <= i < start + window else 1.0 for i in range(length)]


@dataclass(frozen=True)
class TspLossOutput:
    loss: torch.Tensor
    preference: PreferenceLossOutput
    sft: torch.Tensor  # the SFT regulariser term (before alpha), detached


def tsp_loss(
    policy_chosen_tokens: torch.Tensor,
    policy_rejected_tokens: torch.Tensor,
    reference_chosen_tokens: torch.Tensor,
    reference_rejected_tokens: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    *,
    chosen_weights: torch.Tensor | None = None,
    rejected_weights: torch.Tensor | None = None,
    beta: float = 0.1,
    alpha: float = 0.0,
    loss_type: PreferenceLossType = "sigmoid",
    label_smoothing: float = 0.0,
) -> TspLossOutput:
    """TSP node-level DPO on per-token log-probs of continuations of the same (node) prefix.

    The token weights (e.g. from `first_divergent_weights`) are applied to policy *and* reference
    log-probs, so a weight w on a token scales its log-ratio by w. `alpha` adds the SFT regulariser
    (mean NLL per chosen token) to protect utility.
    """
    pref = dpo_loss(
        sequence_logps(policy_chosen_tokens, chosen_mask, chosen_weights),
        sequence_logps(policy_rejected_tokens, rejected_mask, rejected_weights),
        sequence_logps(reference_chosen_tokens, chosen_mask, chosen_weights),
        sequence_logps(reference_rejected_tokens, rejected_mask, rejected_weights),
        beta=beta,
        loss_type=loss_type,
        label_smoothing=label_smoothing,
    )
    sft = sft_loss(policy_chosen_tokens, chosen_mask) if alpha > 0 else policy_chosen_tokens.new_zeros(())
    return TspLossOutput(loss=pref.loss + alpha * sft, preference=pref, sft=sft.detach())
