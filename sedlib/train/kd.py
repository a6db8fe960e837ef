"""Knowledge distillation loss (SPEC 5): ``(1 - w) * BCE(hard labels) + w * BCE(teacher
probabilities)`` on strong logits ``(B, K, T)``; the terms apart for logging.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_terms(strong_logits: Tensor, hard_labels: Tensor,
             teacher_probs: Tensor | None, pos_weight: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """(supervised BCE, distillation BCE or None), both mean-reduced over every element.
    ``pos_weight`` (K, 1): weight of the positive frames per class in the supervised term (rare
    classes in your own data; None: the plain BCE).

    Computed in float32 at least (float16/bfloat16 logits are promoted, as autocast does for
    ``binary_cross_entropy_with_logits``), float64 stays float64.
    """
    if hard_labels.shape != strong_logits.shape:
        raise ValueError(f"kd_loss: labels {tuple(hard_labels.shape)} do not match logits "
                         f"{tuple(strong_logits.shape)}")
    if teacher_probs is not None and teacher_probs.shape != strong_logits.shape:
        raise ValueError(f"kd_loss: teacher probabilities {tuple(teacher_probs.shape)} do not "
                         f"match logits {tuple(strong_logits.shape)}")
    dtype = torch.promote_types(strong_logits.dtype, torch.float32)
    logits = strong_logits.to(dtype)
    weight = None if pos_weight is None else pos_weight.to(device=logits.device, dtype=dtype)
    supervised = F.binary_cross_entropy_with_logits(logits, hard_labels.to(dtype), pos_weight=weight)
    if teacher_probs is None:
        return supervised, None
    return supervised, F.binary_cross_entropy_with_logits(logits, teacher_probs.to(dtype))


def kd_loss(strong_logits: Tensor, hard_labels: Tensor, teacher_probs: Tensor | None = None,
            weight: float = 0.9) -> Tensor:
    """(1 - w) * BCEWithLogits(logits, hard) + w * BCEWithLogits(logits, teacher_probs).

    Reference ``ex_audioset_strong.training_step`` (``distillation_loss_weight``, 0.9 in the
    paper's runs). Shapes ``(B, K, T)``; ``teacher_probs`` are sigmoid(teacher logits), e.g.
    :meth:`PseudoLabelStore.probs`. With ``weight == 0`` the result is exactly the plain BCE
    (the distillation term is not even computed, as in the reference). ``teacher_probs=None``
    means plain BCE and is only allowed with ``weight == 0`` (the reference asserts the same):
    distillation asked for without teacher targets is a configuration error, not a fallback.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"kd_loss weight must be in [0, 1], got {weight}")
    if teacher_probs is None and weight != 0:
        raise ValueError(f"kd_loss: distillation weight {weight} given but no teacher "
                         f"probabilities (pass weight=0 for plain BCE)")
    supervised, distillation = kd_terms(strong_logits, hard_labels,
                                        teacher_probs if weight != 0 else None)
    if distillation is None:
        return supervised
    return (1.0 - weight) * supervised + weight * distillation
