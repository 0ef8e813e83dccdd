"""Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
Network", 2015)."""

import torch
import torch.nn.functional as F


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Temperature-softened KL divergence from the teacher to the student, scaled by T².

    .. math::
        \\mathcal{L}_{KD} = T^2 \\cdot \\frac1B \\sum_b \\mathrm{KL}\\big(
            \\mathrm{softmax}(t_b / T) \\,\\|\\, \\mathrm{softmax}(s_b / T)\\big)

    The :math:`T^2` factor keeps the gradient magnitude roughly independent of ``temperature``
    (the soft-target gradients scale as :math:`1/T^2`), so the weight of this term against the
    hard-label loss need not be retuned when ``T`` changes. ``teacher_logits`` are treated as
    fixed targets (detached).
    """
    student_log_probs = F.log_softmax(student_logits / temperature, dim=1)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    return kl * temperature**2
