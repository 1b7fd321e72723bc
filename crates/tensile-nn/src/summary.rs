//! Model summaries: one forward pass on zeros that records each layer's output shape and
//! parameter count, printed as a table in the style of Keras' `model.summary()`.
//!
//! Shapes inside a composite are found by feeding each child the previous child's output, which
//! is exactly what `Sequential` (and a `Residual` around one) computes. Other composites may wire
//! their children any way, and without forward hooks the summary cannot see their inputs, so
//! their children are listed with the shape `?` while the composite itself gets its real output
//! shape. The pass runs under `no_grad`, and every buffer and random stream is restored
//! afterwards, so a summary of a model in training mode changes neither batch norm's running
//! statistics nor dropout's next masks.

use std::fmt;

use tensile_core::{DType, Tensor, no_grad};

use crate::error::Result;
use crate::module::{Module, join_name, named_parameters};

/// One layer of a [`Summary`].
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    /// Dotted name, as in parameter names (`2.0`); empty for a model that is a single layer.
    pub name: String,
    /// `Module::kind` (`conv2d`, `residual`).
    pub kind: &'static str,
    /// Nesting level: 0 for the model's direct children.
    pub depth: usize,
    /// `None` when it cannot be known (a child of a composite that is not a chain).
    pub output_shape: Option<Vec<usize>>,
    /// Trainable scalars, those of sub-layers included.
    pub params: usize,
    /// Buffer scalars (running statistics), those of sub-layers included.
    pub buffers: usize,
}

/// What [`summary`] found: one row per layer, in visiting order, and totals.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub rows: Vec<SummaryRow>,
    /// Trainable scalars of the whole model.
    pub trainable_params: usize,
    /// Buffer scalars of the whole model.
    pub buffers: usize,
}

/// Runs `model` once on zeros of `input_shape` (batch dimension included, e.g. `[2, 1, 8, 8]`)
/// and lists every layer, recursing through composites. The zeros are `u32` indices when the
/// first layer is an embedding, else of the parameters' dtype (`f32` for a model without any).
/// Batch norm in training mode needs a batch of 2 or more, as in a real step.
pub fn summary(model: &dyn Module, input_shape: &[usize]) -> Result<Summary> {
    let _guard = no_grad();
    let x = Tensor::zeros(input_shape, input_dtype(model));
    let saved = SavedState::take(model)?;
    let mut rows = Vec::new();
    let walked = walk(model, "", 0, true, Some(x), &mut rows);
    saved.restore(model)?;
    let output = walked?.expect("internal: the model's own output is always computed");
    let (trainable_params, buffers) = counts(model);
    Ok(Summary {
        input_shape: input_shape.to_vec(),
        output_shape: output.dims().to_vec(),
        rows,
        trainable_params,
        buffers,
    })
}

fn input_dtype(model: &dyn Module) -> DType {
    let mut first: &dyn Module = model;
    while let Some((_, child)) = first.children().into_iter().next() {
        first = child;
    }
    if first.kind() == "embedding" {
        return DType::U32;
    }
    named_parameters(model).first().map(|(_, t)| t.dtype()).unwrap_or(DType::F32)
}

fn counts(m: &dyn Module) -> (usize, usize) {
    let (mut params, mut buffers) = (0, 0);
    m.visit_params("", &mut |_, t| params += t.elem_count());
    m.visit_buffers("", &mut |_, t| buffers += t.elem_count());
    (params, buffers)
}

/// Adds rows for `m` (none for the root composite itself) and returns its output when `input`
/// is known.
fn walk(
    m: &dyn Module,
    name: &str,
    depth: usize,
    root: bool,
    input: Option<Tensor>,
    rows: &mut Vec<SummaryRow>,
) -> Result<Option<Tensor>> {
    let children = m.children();
    let (params, buffers) = counts(m);
    let mut row = SummaryRow { name: name.to_string(), kind: m.kind(), depth, output_shape: None, params, buffers };
    if children.is_empty() {
        let out = input.map(|x| m.forward(&x)).transpose()?;
        row.output_shape = out.as_ref().map(|t| t.dims().to_vec());
        rows.push(row);
        return Ok(out);
    }
    let at = rows.len();
    if !root {
        rows.push(row);
    }
    let chain = matches!(m.kind(), "sequential" | "residual");
    let child_depth = if root { depth } else { depth + 1 };
    let mut h = if chain { input.clone() } else { None };
    for (child_name, child) in children {
        h = walk(child, &join_name(name, &child_name), child_depth, false, h, rows)?;
        if !chain {
            h = None;
        }
    }
    let out = if m.kind() == "sequential" { h } else { input.map(|x| m.forward(&x)).transpose()? };
    if !root {
        rows[at].output_shape = out.as_ref().map(|t| t.dims().to_vec());
    }
    Ok(out)
}

/// Copies of every buffer and random stream, so the summary's forward pass leaves no trace.
struct SavedState {
    buffers: Vec<Tensor>,
    rngs: Vec<tensile_core::Rng>,
}

impl SavedState {
    fn take(m: &dyn Module) -> Result<SavedState> {
        let mut buffers = Vec::new();
        let mut failed = None;
        m.visit_buffers("", &mut |_, t| match t.deep_clone() {
            Ok(c) => buffers.push(c),
            Err(e) => failed = Some(e),
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        let mut rngs = Vec::new();
        m.visit_rngs("", &mut |_, r| rngs.push(r.lock().unwrap_or_else(|e| e.into_inner()).clone()));
        Ok(SavedState { buffers, rngs })
    }

    /// Writes the copies back; visiting order is fixed, so the i-th visit gets the i-th copy.
    fn restore(self, m: &dyn Module) -> Result<()> {
        let mut saved = self.buffers.into_iter();
        let mut failed = None;
        m.visit_buffers("", &mut |_, t| {
            if let Some(s) = saved.next()
                && let Err(e) = t.assign_(&s)
            {
                failed = Some(e);
            }
        });
        let mut rngs = self.rngs.into_iter();
        m.visit_rngs("", &mut |_, r| {
            if let Some(s) = rngs.next() {
                *r.lock().unwrap_or_else(|e| e.into_inner()) = s;
            }
        });
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn shape_text(dims: &[usize]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Summary {
    /// A table with one line per row, nested layers indented, then the totals. A layer's
    /// `Param #` counts its buffers too, and `Total params` is trainable plus non-trainable, as in
    /// Keras.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header = ["Layer (type)".to_string(), "Output Shape".to_string(), "Param #".to_string()];
        let mut lines = vec![header];
        for r in &self.rows {
            let layer = if r.name.is_empty() {
                format!("{}({})", "  ".repeat(r.depth), r.kind)
            } else {
                format!("{}{} ({})", "  ".repeat(r.depth), r.name, r.kind)
            };
            let shape = r.output_shape.as_deref().map(shape_text).unwrap_or_else(|| "?".to_string());
            lines.push([layer, shape, thousands(r.params + r.buffers)]);
        }
        let width = |c: usize| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        let rule = "=".repeat(w0 + w1 + w2 + 6);
        for (i, l) in lines.iter().enumerate() {
            writeln!(f, "{:<w0$}   {:<w1$}   {:>w2$}", l[0], l[1], l[2])?;
            if i == 0 {
                writeln!(f, "{rule}")?;
            }
        }
        writeln!(f, "{rule}")?;
        writeln!(f, "Total params: {}", thousands(self.trainable_params + self.buffers))?;
        writeln!(f, "Trainable params: {}", thousands(self.trainable_params))?;
        writeln!(f, "Non-trainable params: {}", thousands(self.buffers))
    }
}
