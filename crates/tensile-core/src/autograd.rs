//! Reverse-mode autodiff, define-by-run.
//!
//! Every op on a tracking tensor records itself (`ops::Op`). `backward()` sorts the graph
//! once (inputs before outputs) and walks it in reverse, asking each op for its inputs'
//! gradients and summing gradients that meet at a tensor used more than once (the gradients of
//! narrowed views of one tensor are joined by one `cat`, not padded and summed). Gradient
//! arithmetic runs with tracking off, so it builds no graph of its own. Each node's op is taken
//! out as it is processed, which frees the graph as backward goes: after `backward()` no
//! intermediate tensor is kept alive by the graph, and memory does not grow across steps.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::tensor::{Tensor, TensorId};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record the graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Turns graph recording off on this thread until the guard is dropped (evaluation, optimizer
/// updates, metric computation).
#[must_use = "gradient tracking is back on as soon as the guard is dropped"]
pub struct NoGradGuard {
    previous: bool,
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// `let _guard = no_grad();` — no graph is recorded while `_guard` lives.
pub fn no_grad() -> NoGradGuard {
    let previous = GRAD_ENABLED.with(|g| g.replace(false));
    NoGradGuard { previous }
}

/// Runs `f` with graph recording on this thread set to `enabled`, then puts the previous
/// setting back (also when `f` panics).
pub(crate) fn with_grad_enabled<R>(enabled: bool, f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard { previous: GRAD_ENABLED.with(|g| g.replace(enabled)) };
    f()
}

/// Hashes a [`TensorId`] as the number it is. Ids are distinct counters, so SipHash's defence
/// against chosen keys buys nothing here, and backward hashes a few ids for every op it visits.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the sequential ids over the table's high bits, which hashbrown's control bytes
        // are taken from.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<TensorId, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<TensorId, BuildHasherDefault<IdHasher>>;

/// Gradients of a backward pass, keyed by the leaf tensors that required them.
#[derive(Default)]
pub struct GradStore {
    grads: IdMap<Tensor>,
}

impl GradStore {
    /// The gradient of `t`, shaped like `t`; `None` when `t` did not take part in the loss.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.grads.get(&t.id())
    }
    pub fn get_id(&self, id: TensorId) -> Option<&Tensor> {
        self.grads.get(&id)
    }
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.grads.remove(&t.id())
    }
    pub fn insert(&mut self, t: &Tensor, g: Tensor) {
        self.grads.insert(t.id(), g);
    }
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

impl Tensor {
    /// Gradients of this one-element tensor with respect to every tensor that requires them.
    pub fn backward(&self) -> Result<GradStore> {
        if self.elem_count() != 1 {
            return Err(Error::NotScalar { op: "backward", shape: Box::new(self.shape().clone()) });
        }
        crate::threads::keep_awake();
        let seed = Tensor::ones(self.shape(), self.dtype());
        self.backward_with(&seed)
    }

    /// Backward from a non-scalar tensor, given the gradient of some scalar with respect to it.
    pub fn backward_with(&self, grad: &Tensor) -> Result<GradStore> {
        if !self.tracks_grad() {
            return Err(Error::NoGraph);
        }
        if self.graph_freed() {
            return Err(Error::GraphFreed);
        }
        if grad.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                lhs: Box::new(self.shape().clone()),
                rhs: Box::new(grad.shape().clone()),
            });
        }
        let _guard = no_grad();
        let order = topological_order(self);
        let mut grads: IdMap<Tensor> = IdMap::with_capacity_and_hasher(order.len(), Default::default());
        grads.insert(self.id(), grad.to_dtype(self.dtype())?);
        // Gradients of narrowed views (`narrow`, `split`, a recurrent layer's time steps) wait
        // here until their input is reached, then are joined by one `cat`: padding each piece
        // with zeros to the input's shape and adding would cost O(pieces × input).
        let mut pieces: IdMap<Vec<Piece>> = IdMap::default();
        let mut store = GradStore::default();
        for node in order.iter().rev() {
            let g = take_grad(node, &mut grads, &mut pieces)?;
            let Some(op) = node.take_op() else {
                // A leaf: its accumulated gradient is a result.
                if let Some(g) = g {
                    store.grads.insert(node.id(), g);
                }
                continue;
            };
            let Some(g) = g else { continue };
            if let Op::Narrow(x, dim, start) = &op {
                if x.tracks_grad() {
                    pieces.entry(x.id()).or_default().push(Piece { dim: *dim, start: *start, grad: g });
                }
                continue;
            }
            let inputs = op.inputs();
            let input_grads = op.backward(node, &g)?;
            debug_assert_eq!(inputs.len(), input_grads.len());
            for (input, ig) in inputs.into_iter().zip(input_grads) {
                let Some(ig) = ig else { continue };
                if !input.tracks_grad() {
                    continue;
                }
                debug_assert_eq!(ig.shape(), input.shape(), "internal: gradient shape");
                let ig = if ig.dtype() == input.dtype() { ig } else { ig.to_dtype(input.dtype())? };
                match grads.remove(&input.id()) {
                    Some(prev) => grads.insert(input.id(), prev.add(&ig)?),
                    None => grads.insert(input.id(), ig),
                };
            }
        }
        debug_assert!(grads.values().all(|g| g.dtype() != DType::U8));
        Ok(store)
    }
}

/// The gradient of a narrowed view of some tensor: its elements `start..` along `dim`.
struct Piece {
    dim: usize,
    start: usize,
    grad: Tensor,
}

/// The whole gradient of `node`: what its consumers added up in `grads`, plus the pieces of its
/// narrowed views. Non-overlapping pieces along one dimension become one `cat` with zero
/// fillers between them; overlapping ones are padded and added one by one.
fn take_grad(node: &Tensor, grads: &mut IdMap<Tensor>, pieces: &mut IdMap<Vec<Piece>>) -> Result<Option<Tensor>> {
    let mut total = grads.remove(&node.id());
    let Some(mut list) = pieces.remove(&node.id()) else { return Ok(total) };
    let mut add = |t: Tensor| -> Result<()> {
        total = Some(match total.take() {
            Some(prev) => prev.add(&t)?,
            None => t,
        });
        Ok(())
    };
    list.sort_by_key(|p| (p.dim, p.start));
    let mut rest = Vec::new();
    let mut i = 0;
    while i < list.len() {
        // One run of pieces along `dim` that do not overlap, in order.
        let dim = list[i].dim;
        let size = node.dims()[dim];
        let mut parts: Vec<Tensor> = Vec::new();
        let mut pos = 0;
        while i < list.len() && list[i].dim == dim {
            let p = &list[i];
            if p.start < pos {
                rest.push(i);
            } else {
                if p.start > pos {
                    parts.push(zeros_along(node, dim, p.start - pos));
                }
                pos = p.start + p.grad.dims()[dim];
                parts.push(p.grad.clone());
            }
            i += 1;
        }
        if pos < size {
            parts.push(zeros_along(node, dim, size - pos));
        }
        add(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts.iter().collect::<Vec<_>>(), dim)?
        })?;
    }
    for i in rest {
        let p = &list[i];
        let padded = crate::ops::shape::narrow_backward(node, &p.grad, p.dim, p.start)?;
        add(padded.into_iter().flatten().next().expect("narrow has one input"))?;
    }
    Ok(total)
}

/// Zeros shaped like `t` except `len` along `dim`.
fn zeros_along(t: &Tensor, dim: usize, len: usize) -> Tensor {
    let mut dims = t.dims().to_vec();
    dims[dim] = len;
    Tensor::zeros(dims, t.dtype())
}

/// Tracking tensors reachable from `root`, each after all of its inputs.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    // Sized for a small model's graph up front, which saves the first few regrowths.
    let mut order = Vec::with_capacity(64);
    let mut visited = IdSet::with_capacity_and_hasher(64, Default::default());
    // (tensor, inputs already pushed): iterative, since recurrent graphs can be deep.
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !visited.insert(t.id()) {
            continue;
        }
        // The node goes below its inputs, so that it is finished after them.
        let below = stack.len();
        t.for_each_input(|input| {
            if input.tracks_grad() && !visited.contains(&input.id()) {
                stack.push((input.clone(), false));
            }
        });
        stack.insert(below, (t, true));
    }
    order
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    /// Narrowed views that tile, leave gaps, overlap, cut another dimension, and sit next to a
    /// direct use of the same tensor: the joined gradient counts each element once per use.
    #[test]
    fn gradients_of_narrowed_views_are_joined_exactly() {
        let x = Tensor::from_vec((0..12).map(f64::from).collect::<Vec<_>>(), (4, 3)).unwrap().requires_grad();
        let weighted = |t: Tensor, w: f64| t.mul_scalar(w).unwrap().sum_all().unwrap();
        let parts = x.split(2, 0).unwrap();
        let loss = [
            weighted(parts[0].clone(), 1.0),
            weighted(parts[1].clone(), 2.0),
            weighted(x.narrow(0, 1, 2).unwrap(), 10.0),
            weighted(x.narrow(0, 3, 1).unwrap(), 100.0),
            weighted(x.narrow(1, 2, 1).unwrap(), 1000.0),
            weighted(x.clone(), 10_000.0),
        ]
        .into_iter()
        .reduce(|a, b| a.add(&b).unwrap())
        .unwrap();
        let g = loss.backward().unwrap().get(&x).unwrap().to_vec::<f64>().unwrap();
        let row = [1.0, 11.0, 12.0, 102.0];
        let expected: Vec<f64> =
            (0..12).map(|i| row[i / 3] + if i % 3 == 2 { 1000.0 } else { 0.0 } + 10_000.0).collect();
        assert_eq!(g, expected);
    }
}
