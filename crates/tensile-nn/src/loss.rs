//! Loss functions.

use tensile_core::{DType, Tensor};

use crate::error::{Result, invalid};

/// Mean softmax cross-entropy of `logits [B, C]` against integer class `targets [B]` (u32):
/// `-mean(log_softmax(logits)[b, targets[b]])`, as PyTorch's `F.cross_entropy`.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if logits.rank() != 2 {
        return invalid("cross_entropy", format!("logits must be [batch, classes], found shape {}", logits.shape()));
    }
    if targets.dtype() != DType::U32 || targets.dims() != [logits.dims()[0]] {
        return invalid(
            "cross_entropy",
            format!(
                "targets must be u32 class indices of shape [{}], found {:?} of shape {}",
                logits.dims()[0],
                targets.dtype(),
                targets.shape()
            ),
        );
    }
    let logp = logits.log_softmax(1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?;
    Ok(picked.mean_all()?.neg()?)
}
