//! `Embedding`: a lookup table from `u32` indices to learned rows (PyTorch's `nn.Embedding`,
//! parameter `weight [N, D]`, initialized `N(0, 1)`). The lookup is `Tensor::index_select` on the
//! flattened indices, whose gradient adds each output row back into the row it came from.

use tensile_core::{DType, Rng, Tensor};

use crate::error::{Result, invalid};
use crate::module::{Module, join_name};

/// Size of an [`Embedding`] table.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingConfig {
    /// `N`, the number of rows (valid indices are `0..N`).
    pub num_embeddings: usize,
    /// `D`, the length of each row.
    pub embedding_dim: usize,
}

/// `idx [...] (u32) -> [..., D]`: row `idx[i]` of `weight` for every index.
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// A table initialized as PyTorch's: `weight [N, D]` drawn from `N(0, 1)`.
    pub fn new(config: EmbeddingConfig, rng: &mut Rng) -> Result<Embedding> {
        if config.num_embeddings == 0 || config.embedding_dim == 0 {
            return invalid(
                "embedding",
                format!(
                    "num_embeddings = {} and embedding_dim = {} must both be at least 1",
                    config.num_embeddings, config.embedding_dim
                ),
            );
        }
        let shape = (config.num_embeddings, config.embedding_dim);
        Ok(Embedding { weight: Tensor::randn(shape, 0.0, 1.0, DType::F32, rng).requires_grad() })
    }

    /// A table with given `weight [N, D]` (any float dtype).
    pub fn from_tensor(weight: Tensor) -> Result<Embedding> {
        if weight.rank() != 2 || weight.elem_count() == 0 || !weight.dtype().is_float() {
            return invalid(
                "embedding",
                format!("weight must be a non-empty float [N, D], found {:?} {}", weight.dtype(), weight.shape()),
            );
        }
        Ok(Embedding { weight: weight.requires_grad() })
    }

    /// `weight [N, D]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
    pub fn num_embeddings(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn embedding_dim(&self) -> usize {
        self.weight.dims()[1]
    }
}

impl Module for Embedding {
    fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        if idx.dtype() != DType::U32 {
            return invalid("embedding", format!("indices must be u32, found {:?} {}", idx.dtype(), idx.shape()));
        }
        let n = self.num_embeddings();
        let flat = idx.reshape(idx.elem_count())?;
        // Checked here so the error names the layer and the table size, not a kernel.
        let worst = flat.with_slice::<u32, _>(|v| v.iter().copied().max())?;
        if let Some(i) = worst
            && i as usize >= n
        {
            return invalid("embedding", format!("index {i} is out of range for a table of {n} rows"));
        }
        let mut dims = idx.dims().to_vec();
        dims.push(self.embedding_dim());
        Ok(self.weight.index_select(&flat, 0)?.reshape(dims)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&join_name(prefix, "weight"), &self.weight);
    }
    fn kind(&self) -> &'static str {
        "embedding"
    }
}
