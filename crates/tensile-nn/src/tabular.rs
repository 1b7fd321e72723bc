//! Learned embeddings for the index columns of a table.
//!
//! A table's categorical column with many categories reaches the model as one feature holding
//! the category's index (see `tensile_data::FeatureColumn::Indexed`) rather than as one-hot
//! features. [`TabularEmbedding`] sits in front of the model: it looks each index column up in
//! its own [`Embedding`] table and puts the looked-up rows in that column's place, so the model
//! behind it sees `F'` features (numeric columns unchanged, each index column widened to its
//! embedding's width) in column order.
//!
//! Shapes: B rows, F features in, F' features out.

use tensile_core::{Rng, Tensor};

use crate::embedding::{Embedding, EmbeddingConfig};
use crate::error::{Result, invalid};
use crate::module::{Module, join_name};

/// fast.ai's rule of thumb for the width of a category's embedding: `min(50, round(1.6 *
/// n^0.56))` for `n` categories (at least 1).
pub fn embedding_dim_for(categories: usize) -> usize {
    let dim = (1.6 * (categories as f64).powf(0.56)).round() as usize;
    dim.clamp(1, 50)
}

/// One index column: where it is among the F input features, how many categories it has, and
/// the width of its embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexColumn {
    pub position: usize,
    pub categories: usize,
    pub dim: usize,
}

/// Index columns of a `[B, F]` batch looked up in learned embeddings, concatenated with the
/// numeric columns in column order: `[B, F] -> [B, F']`. Parameters are named
/// `<k>.weight` for the k-th index column (0-based, in column order).
pub struct TabularEmbedding {
    n_features: usize,
    columns: Vec<IndexColumn>,
    tables: Vec<Embedding>,
}

impl TabularEmbedding {
    /// Embeddings for `index_columns` (each one's feature position and category count, in
    /// increasing position) of a table with `n_features` features. Each table has width `dim`
    /// when given, else [`embedding_dim_for`] its category count; rows start as N(0, 1) draws
    /// from `rng`, as PyTorch's `nn.Embedding`. Errors on a position out of range or repeated,
    /// or a column with no categories.
    pub fn new(
        n_features: usize,
        index_columns: &[(usize, usize)],
        dim: Option<usize>,
        rng: &mut Rng,
    ) -> Result<TabularEmbedding> {
        let columns: Vec<IndexColumn> = index_columns
            .iter()
            .map(|&(position, categories)| IndexColumn {
                position,
                categories,
                dim: dim.unwrap_or_else(|| embedding_dim_for(categories)),
            })
            .collect();
        TabularEmbedding::with_columns(n_features, columns, rng)
    }

    /// As [`TabularEmbedding::new`], with every column's width given (a saved model's).
    pub fn with_columns(n_features: usize, columns: Vec<IndexColumn>, rng: &mut Rng) -> Result<TabularEmbedding> {
        for (k, c) in columns.iter().enumerate() {
            if c.position >= n_features {
                return invalid(
                    "tabular embedding",
                    format!("index column {k} is at feature {}, but a row has {n_features} features", c.position),
                );
            }
            if k > 0 && c.position <= columns[k - 1].position {
                return invalid(
                    "tabular embedding",
                    format!(
                        "index columns must be in increasing feature order, found {} after {}",
                        c.position,
                        columns[k - 1].position
                    ),
                );
            }
        }
        let tables = columns
            .iter()
            .map(|c| Embedding::new(EmbeddingConfig { num_embeddings: c.categories, embedding_dim: c.dim }, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(TabularEmbedding { n_features, columns, tables })
    }

    /// The index columns, in column order.
    pub fn columns(&self) -> &[IndexColumn] {
        &self.columns
    }

    /// F, the features of an input row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// F', the features of an output row: each index column replaced by its embedding's width.
    pub fn output_features(&self) -> usize {
        self.n_features + self.columns.iter().map(|c| c.dim).sum::<usize>() - self.columns.len()
    }

    /// The embedding table of the k-th index column.
    pub fn table(&self, k: usize) -> Option<&Embedding> {
        self.tables.get(k)
    }
}

impl Module for TabularEmbedding {
    /// `[B, F]` f32 -> `[B, F']`. An index cell must be a whole number below its column's
    /// category count.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != 2 || x.dims()[1] != self.n_features {
            return invalid(
                "tabular embedding",
                format!("input must be [B, {}], found {}", self.n_features, x.shape()),
            );
        }
        let b = x.dims()[0];
        let mut parts: Vec<Tensor> = Vec::with_capacity(2 * self.columns.len() + 1);
        let mut start = 0;
        for (c, table) in self.columns.iter().zip(&self.tables) {
            if c.position > start {
                parts.push(x.narrow(1, start, c.position - start)?);
            }
            // The index needs no gradient: it is data, read out and rebuilt as u32.
            let values = x.narrow(1, c.position, 1)?.contiguous()?.to_vec::<f32>()?;
            let mut idx = Vec::with_capacity(b);
            for v in values {
                if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < c.categories) {
                    return invalid(
                        "tabular embedding",
                        format!(
                            "feature {} holds {v}, expected a category index 0..{} (was the column scaled?)",
                            c.position, c.categories
                        ),
                    );
                }
                idx.push(v as u32);
            }
            parts.push(table.forward(&Tensor::from_vec(idx, b)?)?);
            start = c.position + 1;
        }
        if start < self.n_features {
            parts.push(x.narrow(1, start, self.n_features - start)?);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(Tensor::cat(&refs, 1)?)
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        for (k, table) in self.tables.iter().enumerate() {
            table.visit_params(&join_name(prefix, &k.to_string()), f);
        }
    }

    // No children: a summary shows it as one layer. Listing the tables would make the summary
    // feed its zeros as u32 indices (it does when a model starts with an `Embedding`), which
    // this layer, reading f32 rows, must not get.

    fn kind(&self) -> &'static str {
        "tabular_embedding"
    }
}

/// A model behind a [`TabularEmbedding`]: `[B, F] -> embedding -> [B, F'] -> model`. The
/// model's parameters keep the names they have on their own; the embedding's are under
/// `embedding.`, so a model trained without index columns and one with them name their shared
/// layers alike.
pub struct Embedded<M> {
    pub embedding: TabularEmbedding,
    pub model: M,
}

impl<M: Module> Module for Embedded<M> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.model.forward(&self.embedding.forward(x)?)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.embedding.visit_params(&join_name(prefix, "embedding"), f);
        self.model.visit_params(prefix, f);
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.model.visit_buffers(prefix, f)
    }
    fn visit_rngs(&self, prefix: &str, f: &mut dyn FnMut(&str, &std::sync::Mutex<Rng>)) {
        self.model.visit_rngs(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        self.model.set_training(training)
    }
    /// The embedding, then the model's layers when it is a `Sequential` (else the model as one
    /// child): each child reads the previous one's output, so the summary can chain them.
    fn children(&self) -> Vec<(String, &dyn Module)> {
        let mut out: Vec<(String, &dyn Module)> = vec![("embedding".into(), &self.embedding)];
        if self.model.kind() == "sequential" {
            out.extend(self.model.children());
        } else {
            out.push(("model".into(), &self.model));
        }
        out
    }
    /// A chain of its children, like `Sequential`, which is how `summary` knows to feed each
    /// child the previous one's output.
    fn kind(&self) -> &'static str {
        "sequential"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensile_core::DType;

    #[test]
    fn embedding_width_follows_the_rule() {
        assert_eq!(embedding_dim_for(1), 2);
        assert_eq!(embedding_dim_for(100), 21); // 1.6 * 100^0.56 = 20.9
        assert_eq!(embedding_dim_for(1_000_000), 50);
    }

    #[test]
    fn index_columns_select_rows_and_numeric_columns_pass_in_order() {
        let mut rng = Rng::seed(3);
        // F = 4: x0, id (5 categories, width 3), x2, x3.
        let emb = TabularEmbedding::new(4, &[(1, 5)], Some(3), &mut rng).unwrap();
        assert_eq!(emb.output_features(), 6);
        let x = Tensor::from_vec(vec![0.5f32, 4.0, -1.0, 2.0, 7.0, 0.0, 8.0, 9.0], (2, 4)).unwrap();
        let y = emb.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 6]);
        let y = y.to_vec::<f32>().unwrap();
        let table = emb.table(0).unwrap().weight().to_vec::<f32>().unwrap();
        assert_eq!(y[..6], [0.5, table[12], table[13], table[14], -1.0, 2.0]);
        assert_eq!(y[6..], [7.0, table[0], table[1], table[2], 8.0, 9.0]);
    }

    #[test]
    fn gradient_reaches_only_the_looked_up_rows() {
        let mut rng = Rng::seed(4);
        let emb = TabularEmbedding::new(2, &[(0, 4)], Some(2), &mut rng).unwrap();
        let x = Tensor::from_vec(vec![2.0f32, 1.0, 2.0, 3.0], (2, 2)).unwrap();
        let loss = emb.forward(&x).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(emb.table(0).unwrap().weight()).expect("the table gets a gradient");
        // Row 2 is looked up twice, the others never.
        assert_eq!(g.to_vec::<f32>().unwrap(), vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0]);
        assert_eq!(g.dtype(), DType::F32);
    }

    #[test]
    fn bad_indices_and_positions_are_errors() {
        let mut rng = Rng::seed(5);
        assert!(TabularEmbedding::new(2, &[(2, 4)], None, &mut rng).is_err());
        assert!(TabularEmbedding::new(3, &[(1, 4), (1, 4)], None, &mut rng).is_err());
        let emb = TabularEmbedding::new(1, &[(0, 4)], None, &mut rng).unwrap();
        for bad in [4.0f32, -1.0, 0.5] {
            let err = emb.forward(&Tensor::from_vec(vec![bad], (1, 1)).unwrap()).unwrap_err().to_string();
            assert!(err.contains("category index 0..4"), "{err}");
        }
    }

    #[test]
    fn embedded_names_the_tables_apart_from_the_model() {
        let mut rng = Rng::seed(6);
        let embedding = TabularEmbedding::new(2, &[(1, 3)], Some(2), &mut rng).unwrap();
        let model = crate::Sequential::new().with(crate::Linear::new(3, 1, true, &mut rng));
        let m = Embedded { embedding, model };
        let names: Vec<String> = crate::named_parameters(&m).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["embedding.0.weight", "0.weight", "0.bias"]);
        assert_eq!(m.forward(&Tensor::from_vec(vec![1.0f32, 2.0], (1, 2)).unwrap()).unwrap().dims(), &[1, 1]);
        let table = crate::summary(&m, &[1, 2]).unwrap();
        let rows: Vec<_> = table.rows.iter().map(|r| (r.name.as_str(), r.kind, r.output_shape.clone())).collect();
        assert_eq!(rows, [("embedding", "tabular_embedding", Some(vec![1, 3])), ("0", "linear", Some(vec![1, 1]))],);
    }
}
