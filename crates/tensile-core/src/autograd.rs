//! Reverse-mode autodiff, define-by-run.
//!
//! Every op on a tracking tensor records itself (`ops::Op`). `backward()` sorts the graph
//! once (inputs before outputs) and walks it in reverse, asking each op for its inputs'
//! gradients and summing gradients that meet at a tensor used more than once. Gradient
//! arithmetic runs with tracking off, so it builds no graph of its own. Each node's op is taken
//! out as it is processed, which frees the graph as backward goes: after `backward()` no
//! intermediate tensor is kept alive by the graph, and memory does not grow across steps.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use crate::dtype::DType;
use crate::error::{Error, Result};
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

/// Gradients of a backward pass, keyed by the leaf tensors that required them.
#[derive(Default)]
pub struct GradStore {
    grads: HashMap<TensorId, Tensor>,
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
            return Err(Error::NotScalar { op: "backward", shape: self.shape().clone() });
        }
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
            return Err(Error::ShapeMismatch { op: "backward", lhs: self.shape().clone(), rhs: grad.shape().clone() });
        }
        let _guard = no_grad();
        let order = topological_order(self);
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(self.id(), grad.to_dtype(self.dtype())?);
        let mut store = GradStore::default();
        for node in order.iter().rev() {
            let Some(op) = node.take_op() else {
                // A leaf: its accumulated gradient is a result.
                if let Some(g) = grads.remove(&node.id()) {
                    store.grads.insert(node.id(), g);
                }
                continue;
            };
            let Some(g) = grads.remove(&node.id()) else { continue };
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

/// Tracking tensors reachable from `root`, each after all of its inputs.
fn topological_order(root: &Tensor) -> Vec<Tensor> {
    let mut order = Vec::new();
    let mut visited: HashSet<TensorId> = HashSet::new();
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
        let op = t.op();
        stack.push((t, true));
        if let Some(op) = op {
            for input in op.inputs() {
                if input.tracks_grad() && !visited.contains(&input.id()) {
                    stack.push((input.clone(), false));
                }
            }
        }
    }
    order
}
