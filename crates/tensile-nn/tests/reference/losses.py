"""Reference values for crates/tensile-nn/tests/losses.rs.

Run with PyTorch installed: `python losses.py`. The inputs are the same literal numbers the Rust
test uses; paste the printed values into the test. Everything is in float64.
"""

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def show(name, t):
    t = t.detach()
    print(f"{name}: [{', '.join(f'{v:.15e}' for v in t.flatten().tolist())}]")


# ---- cross-entropy and NLL --------------------------------------------------------------------
logits = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 0.2, -1.0, 1.5], [2.5, 2.4, -0.3, 0.0]])
targets = torch.tensor([3, 0, 1])
weight = torch.tensor([0.5, 1.0, 2.0, 1.5])
probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.5, 0.0]])

show("ce_mean", F.cross_entropy(logits, targets))
show("ce_sum", F.cross_entropy(logits, targets, reduction="sum"))
show("ce_none", F.cross_entropy(logits, targets, reduction="none"))
show("ce_weight_mean", F.cross_entropy(logits, targets, weight=weight))
show("ce_weight_none", F.cross_entropy(logits, targets, weight=weight, reduction="none"))
show("ce_smooth_mean", F.cross_entropy(logits, targets, label_smoothing=0.1))
show("ce_smooth_weight_mean", F.cross_entropy(logits, targets, weight=weight, label_smoothing=0.2))
show("ce_smooth_weight_none", F.cross_entropy(logits, targets, weight=weight, label_smoothing=0.2, reduction="none"))
show("ce_ignore_mean", F.cross_entropy(logits, targets, ignore_index=0))
show("ce_ignore_weight_smooth_mean", F.cross_entropy(logits, targets, weight=weight, ignore_index=0, label_smoothing=0.3))
show("ce_ignore_weight_smooth_sum", F.cross_entropy(logits, targets, weight=weight, ignore_index=0, label_smoothing=0.3, reduction="sum"))
show("ce_ignore_weight_smooth_none", F.cross_entropy(logits, targets, weight=weight, ignore_index=0, label_smoothing=0.3, reduction="none"))
show("ce_ignore_all_mean", F.cross_entropy(logits, torch.tensor([2, 2, 2]), ignore_index=2))
show("ce_probs_mean", F.cross_entropy(logits, probs))
show("ce_probs_sum", F.cross_entropy(logits, probs, reduction="sum"))
show("ce_probs_weight_smooth_mean", F.cross_entropy(logits, probs, weight=weight, label_smoothing=0.1))
show("ce_probs_weight_smooth_none", F.cross_entropy(logits, probs, weight=weight, label_smoothing=0.1, reduction="none"))

# [B, C, d] = [2, 3, 2], targets [2, 2].
logits3 = torch.tensor([[[0.3, -1.2], [1.1, 0.4], [-0.5, 2.0]], [[0.0, 0.7], [-2.0, 0.1], [1.5, -0.6]]])
targets3 = torch.tensor([[2, 0], [1, 1]])
weight3 = torch.tensor([2.0, 0.5, 1.0])
show("ce3_mean", F.cross_entropy(logits3, targets3))
show("ce3_weight_ignore_smooth_mean", F.cross_entropy(logits3, targets3, weight=weight3, ignore_index=0, label_smoothing=0.1))
show("ce3_weight_ignore_smooth_none", F.cross_entropy(logits3, targets3, weight=weight3, ignore_index=0, label_smoothing=0.1, reduction="none"))

# Unbatched [C] with a scalar target.
show("ce1_none", F.cross_entropy(logits[0], torch.tensor(2), reduction="none"))
show("ce1_smooth_mean", F.cross_entropy(logits[0], torch.tensor(2), label_smoothing=0.1))

# NLL takes the logits as (unnormalized) log-probabilities: the formula does not care.
show("nll_mean", F.nll_loss(logits, targets))
show("nll_sum", F.nll_loss(logits, targets, reduction="sum"))
show("nll_weight_ignore_mean", F.nll_loss(logits, targets, weight=weight, ignore_index=3))
show("nll_weight_ignore_none", F.nll_loss(logits, targets, weight=weight, ignore_index=3, reduction="none"))

# ---- binary cross-entropy with logits ---------------------------------------------------------
x = torch.tensor([[0.5, -1.0, 2.0], [-3.0, 0.0, 4.0]])
y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.3]])
pos_weight = torch.tensor([1.5, 0.5, 2.0])
bce_weight = torch.tensor([2.0, 1.0, 0.5])
show("bce_mean", F.binary_cross_entropy_with_logits(x, y))
show("bce_sum", F.binary_cross_entropy_with_logits(x, y, reduction="sum"))
show("bce_none", F.binary_cross_entropy_with_logits(x, y, reduction="none"))
show("bce_pos_weight_mean", F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight))
show("bce_weight_pos_weight_none", F.binary_cross_entropy_with_logits(x, y, weight=bce_weight, pos_weight=pos_weight, reduction="none"))

# ---- regression ---------------------------------------------------------------------------
a = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.2, -0.7]])
b = torch.tensor([[0.0, 0.5, -0.1], [3.3, 0.2, 1.0]])
show("mse_mean", F.mse_loss(a, b))
show("mse_none", F.mse_loss(a, b, reduction="none"))
show("l1_mean", F.l1_loss(a, b))
show("l1_sum", F.l1_loss(a, b, reduction="sum"))
show("huber_none", F.huber_loss(a, b, reduction="none"))
show("huber_delta_half_none", F.huber_loss(a, b, delta=0.5, reduction="none"))
show("huber_delta_half_mean", F.huber_loss(a, b, delta=0.5))
show("smooth_l1_none", F.smooth_l1_loss(a, b, reduction="none"))
show("smooth_l1_beta_half_none", F.smooth_l1_loss(a, b, beta=0.5, reduction="none"))
show("smooth_l1_beta_half_sum", F.smooth_l1_loss(a, b, beta=0.5, reduction="sum"))
show("smooth_l1_beta_zero_mean", F.smooth_l1_loss(a, b, beta=0.0))

# ---- KL divergence ------------------------------------------------------------------------
kl_in = F.log_softmax(torch.tensor([[0.2, -0.4, 1.0], [1.5, 0.0, -1.0]]), dim=1)
kl_t = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.6, 0.4]])
show("kl_in", kl_in)
show("kl_mean", F.kl_div(kl_in, kl_t, reduction="mean"))
show("kl_sum", F.kl_div(kl_in, kl_t, reduction="sum"))
show("kl_batchmean", F.kl_div(kl_in, kl_t, reduction="batchmean"))
show("kl_none", F.kl_div(kl_in, kl_t, reduction="none"))
kl_logt = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.1, 0.5, 0.4]]))
show("kl_log_target_batchmean", F.kl_div(kl_in, kl_logt, reduction="batchmean", log_target=True))
