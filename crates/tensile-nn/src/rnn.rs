//! Recurrent layers: [`Gru`] and [`Lstm`], PyTorch's `nn.GRU` and `nn.LSTM` with
//! `batch_first=True` — same gate order, equations, parameter names, shapes and initialization,
//! so weights port both ways.
//!
//! Both share one stack of cells ([`RecurrentConfig`]: layers × directions) and one driver. Per
//! layer and direction the input projections of a block of 8 steps (`BLOCK`) are one matrix
//! product; only the recurrent product `h @ W_hhᵀ` and the gate arithmetic run once per step. The
//! loop works time-major (`[T, B, ·]`), so each step's slice of a projection is a contiguous view.
//!
//! Not supported (PyTorch options left out): dropout between layers, LSTM `proj_size`, packed
//! sequences. Shapes: B batch, T time, D input features, H hidden size, L layers, K directions
//! (2 when bidirectional, else 1).

use tensile_core::{DType, Rng, Tensor};

use crate::error::{Result, invalid};
use crate::init;
use crate::module::{Module, join_name};

/// The configuration of a [`Gru`] or an [`Lstm`] (PyTorch's constructor arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentConfig {
    /// Features per time step of the input (`D`).
    pub input_size: usize,
    /// Features of the hidden state (`H`).
    pub hidden_size: usize,
    /// Stacked layers; layer `k + 1` reads the output sequence of layer `k`. PyTorch's default 1.
    pub num_layers: usize,
    /// Whether the cells have `bias_ih` and `bias_hh`. PyTorch's default true.
    pub bias: bool,
    /// Whether each layer also runs backwards over time and concatenates both outputs.
    /// PyTorch's default false.
    pub bidirectional: bool,
}

/// The configuration of a [`Gru`].
pub type GruConfig = RecurrentConfig;
/// The configuration of an [`Lstm`].
pub type LstmConfig = RecurrentConfig;

impl RecurrentConfig {
    /// `input_size` and `hidden_size` with PyTorch's defaults for the rest (one layer, biases,
    /// one direction).
    pub fn new(input_size: usize, hidden_size: usize) -> RecurrentConfig {
        RecurrentConfig { input_size, hidden_size, num_layers: 1, bias: true, bidirectional: false }
    }

    /// `K`: 2 when bidirectional, else 1.
    pub fn num_directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    fn validate(&self, what: &str) -> Result<()> {
        for (field, value) in
            [("input_size", self.input_size), ("hidden_size", self.hidden_size), ("num_layers", self.num_layers)]
        {
            if value == 0 {
                return invalid(what, format!("{field} must be at least 1, found 0"));
            }
        }
        Ok(())
    }
}

/// Which recurrence a [`Stack`] runs; fixes the number of gates `G` stacked in the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Gates r, z, n (G = 3).
    Gru,
    /// Gates i, f, g, o (G = 4).
    Lstm,
}

impl Kind {
    fn gates(self) -> usize {
        match self {
            Kind::Gru => 3,
            Kind::Lstm => 4,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Gru => "gru",
            Kind::Lstm => "lstm",
        }
    }
}

/// One layer and direction: `weight_ih [G*H, D_in]`, `weight_hh [G*H, H]`, biases `[G*H]`.
struct Cell {
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Option<Tensor>,
    bias_hh: Option<Tensor>,
}

/// Time steps whose input projections are computed by one matrix product. Not all `T` at once:
/// each step slices its rows out of the product, and core's `narrow` gradient is a zero-padded
/// copy of the whole sliced tensor, so slicing one projection of every step makes backward O(T²)
/// (GRU, H = 128, B = 32, T = 400: 9.6 s backward against 0.45 s forward). With blocks the cost
/// is linear in `T` (0.3-0.6 s there); blocks of 1, 4 and 8 steps measured alike, 16 and more
/// slower in backward.
const BLOCK: usize = 8;

/// The cells of a recurrent layer in PyTorch's order: layer by layer, forward before reverse.
struct Stack {
    kind: Kind,
    config: RecurrentConfig,
    cells: Vec<Cell>,
}

/// What one run of the stack returns: the output sequence `[T, B, K*H]` (time-major) and the
/// final states `[L*K, B, H]` (`c_n` only for LSTM).
struct Run {
    output: Tensor,
    h_n: Tensor,
    c_n: Option<Tensor>,
}

impl Stack {
    fn new(kind: Kind, config: RecurrentConfig, rng: &mut Rng) -> Result<Stack> {
        config.validate(kind.name())?;
        let (h, g) = (config.hidden_size, kind.gates());
        let k = config.num_directions();
        // PyTorch draws every parameter from U(±1/sqrt(H)), whatever its fan-in.
        let mut draw = |shape: &[usize]| init::uniform_fan_in(shape, h, DType::F32, rng).requires_grad();
        let mut cells = Vec::with_capacity(config.num_layers * k);
        for layer in 0..config.num_layers {
            let d_in = if layer == 0 { config.input_size } else { h * k };
            for _ in 0..k {
                let weight_ih = draw(&[g * h, d_in]);
                let weight_hh = draw(&[g * h, h]);
                let bias_ih = config.bias.then(|| draw(&[g * h]));
                let bias_hh = config.bias.then(|| draw(&[g * h]));
                cells.push(Cell { weight_ih, weight_hh, bias_ih, bias_hh });
            }
        }
        Ok(Stack { kind, config, cells })
    }

    fn cell(&self, layer: usize, reverse: bool) -> Option<&Cell> {
        let k = self.config.num_directions();
        if layer >= self.config.num_layers || (reverse && k == 1) {
            return None;
        }
        self.cells.get(layer * k + usize::from(reverse))
    }

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        let k = self.config.num_directions();
        for (i, cell) in self.cells.iter().enumerate() {
            let suffix = format!("_l{}{}", i / k, if i % k == 1 { "_reverse" } else { "" });
            f(&join_name(prefix, &format!("weight_ih{suffix}")), &cell.weight_ih);
            f(&join_name(prefix, &format!("weight_hh{suffix}")), &cell.weight_hh);
            if let Some(b) = &cell.bias_ih {
                f(&join_name(prefix, &format!("bias_ih{suffix}")), b);
            }
            if let Some(b) = &cell.bias_hh {
                f(&join_name(prefix, &format!("bias_hh{suffix}")), b);
            }
        }
    }

    /// Checks `x` (`[B, T, D]`, or `[T, D]` unbatched) and returns it as batched `[B, T, D]`
    /// with whether it was unbatched.
    fn batched_input(&self, x: &Tensor) -> Result<(Tensor, bool)> {
        let what = self.kind.name();
        let (x, unbatched) = match x.rank() {
            3 => (x.clone(), false),
            2 => (x.unsqueeze(0)?, true),
            _ => return invalid(what, format!("input must be [B, T, D] or [T, D], found shape {}", x.shape())),
        };
        let (t, d) = (x.dims()[1], x.dims()[2]);
        if d != self.config.input_size {
            return invalid(
                what,
                format!("input has {d} features per step, expected input_size {}", self.config.input_size),
            );
        }
        if t == 0 {
            return invalid(what, "input sequence has no time steps");
        }
        Ok((x, unbatched))
    }

    /// Checks an initial state (`[L*K, B, H]`, or `[L*K, H]` for unbatched input) and returns it
    /// batched.
    fn batched_state(&self, name: &str, s: &Tensor, batch: usize, unbatched: bool) -> Result<Tensor> {
        let c = &self.config;
        let s = if unbatched && s.rank() == 2 { s.unsqueeze(1)? } else { s.clone() };
        let expected = [c.num_layers * c.num_directions(), batch, c.hidden_size];
        if s.dims() != expected {
            let want = if unbatched { format!("{:?}", [expected[0], expected[2]]) } else { format!("{expected:?}") };
            return invalid(self.kind.name(), format!("{name} must have shape {want}, found {}", s.shape()));
        }
        Ok(s)
    }

    /// Runs every layer over `x [B, T, D]` from the initial states `h0` (and `c0`), each
    /// `[L*K, B, H]`, zeros when absent.
    fn run(&self, x: &Tensor, h0: Option<&Tensor>, c0: Option<&Tensor>) -> Result<Run> {
        let c = &self.config;
        let (b, t_len, hs) = (x.dims()[0], x.dims()[1], c.hidden_size);
        let k = c.num_directions();
        let initial = |s: Option<&Tensor>, i: usize| -> Result<Tensor> {
            Ok(match s {
                Some(s) => s.narrow(0, i, 1)?.squeeze(0)?,
                None => Tensor::zeros((b, hs), x.dtype()),
            })
        };
        // Time-major from here on, so a block of steps is a contiguous view.
        let x = x.transpose(0, 1)?.contiguous()?;
        let mut blocks = (0..t_len)
            .step_by(BLOCK)
            .map(|s| x.narrow(0, s, BLOCK.min(t_len - s)))
            .collect::<tensile_core::Result<Vec<_>>>()?;
        let (mut h_n, mut c_n) = (Vec::with_capacity(self.cells.len()), Vec::with_capacity(self.cells.len()));
        for layer in 0..c.num_layers {
            let mut steps = Vec::with_capacity(k);
            for dir in 0..k {
                let i = layer * k + dir;
                let h = initial(h0, i)?;
                let state = match self.kind {
                    Kind::Gru => None,
                    Kind::Lstm => Some(initial(c0, i)?),
                };
                let (out, h_last, c_last) = self.run_direction(&self.cells[i], &blocks, h, state, dir == 1)?;
                steps.push(out);
                h_n.push(h_last);
                c_n.extend(c_last);
            }
            blocks = join_blocks(&steps, t_len)?;
        }
        let stack = |v: &[Tensor]| -> Result<Tensor> { Ok(Tensor::stack(&v.iter().collect::<Vec<_>>(), 0)?) };
        let c_n = if c_n.is_empty() { None } else { Some(stack(&c_n)?) };
        let output = Tensor::cat(&blocks.iter().collect::<Vec<_>>(), 0)?;
        Ok(Run { output, h_n: stack(&h_n)?, c_n })
    }

    /// One cell over the sequence given as `blocks` (each `[≤BLOCK, B, D_in]`, in time order),
    /// backwards in time when `reverse`. Returns `h` of every step (`[B, H]`, in time order) and
    /// the last `h` (and `c`).
    fn run_direction(
        &self,
        cell: &Cell,
        blocks: &[Tensor],
        mut h: Tensor,
        mut c: Option<Tensor>,
        reverse: bool,
    ) -> Result<(Vec<Tensor>, Tensor, Option<Tensor>)> {
        let hs = self.config.hidden_size;
        // LSTM's b_hh is a plain addition to the gates, so it joins the input projection; GRU's
        // b_hn sits inside r * (W_hn h + b_hn) and must stay in the step.
        let (in_bias, step_bias) = match (self.kind, &cell.bias_ih, &cell.bias_hh) {
            (Kind::Lstm, Some(bi), Some(bh)) => (Some(bi.add(bh)?), None),
            (_, bi, bh) => (bi.clone(), bh.clone()),
        };
        let mut outs: Vec<Tensor> = Vec::new();
        let order: Vec<usize> = if reverse { (0..blocks.len()).rev().collect() } else { (0..blocks.len()).collect() };
        for bi in order {
            let (len, b, d_in) = (blocks[bi].dims()[0], blocks[bi].dims()[1], blocks[bi].dims()[2]);
            // One product for the whole block: [len*B, D_in] @ [D_in, G*H], bias included.
            let proj = blocks[bi].reshape((len * b, d_in))?.linear(&cell.weight_ih, in_bias.as_ref())?;
            let proj = proj.reshape((len, b, cell.weight_ih.dims()[0]))?;
            for j in 0..len {
                let xt = proj.narrow(0, if reverse { len - 1 - j } else { j }, 1)?.squeeze(0)?;
                // One op per step for `h @ W_hhᵀ + b_hh`.
                let gh = h.linear(&cell.weight_hh, step_bias.as_ref())?;
                match self.kind {
                    Kind::Gru => h = gru_step(&xt, &gh, &h, hs)?,
                    Kind::Lstm => {
                        let c_prev = c.as_ref().expect("internal: lstm runs with a cell state");
                        let (h_new, c_new) = lstm_step(&xt.add(&gh)?, c_prev, hs)?;
                        h = h_new;
                        c = Some(c_new);
                    }
                }
                outs.push(h.clone());
            }
        }
        if reverse {
            outs.reverse();
        }
        Ok((outs, h, c))
    }
}

/// The next layer's input blocks `[≤BLOCK, B, K*H]` from each direction's per-step outputs
/// (`steps[dir][t]`, each `[B, H]`).
fn join_blocks(steps: &[Vec<Tensor>], t_len: usize) -> Result<Vec<Tensor>> {
    let mut blocks = Vec::with_capacity(t_len.div_ceil(BLOCK));
    for s in (0..t_len).step_by(BLOCK) {
        let end = (s + BLOCK).min(t_len);
        let parts: Vec<Tensor> = steps
            .iter()
            .map(|dir| Tensor::stack(&dir[s..end].iter().collect::<Vec<_>>(), 0))
            .collect::<tensile_core::Result<_>>()?;
        blocks.push(if parts.len() == 1 {
            parts[0].clone()
        } else {
            Tensor::cat(&parts.iter().collect::<Vec<_>>(), 2)?
        });
    }
    Ok(blocks)
}

/// GRU step on `[B, ·]` tensors, PyTorch's equations with `xt = W_i x + b_i` and
/// `gh = W_h h + b_h`, gates stacked r, z, n:
/// `r = σ(xr + hr)`, `z = σ(xz + hz)`, `n = tanh(xn + r * hn)`, `h' = (1 - z) * n + z * h`.
fn gru_step(xt: &Tensor, gh: &Tensor, h: &Tensor, hs: usize) -> Result<Tensor> {
    let rz = xt.narrow(1, 0, 2 * hs)?.add(&gh.narrow(1, 0, 2 * hs)?)?.sigmoid()?;
    let (r, z) = (rz.narrow(1, 0, hs)?, rz.narrow(1, hs, hs)?);
    let n = xt.narrow(1, 2 * hs, hs)?.add(&r.mul(&gh.narrow(1, 2 * hs, hs)?)?)?.tanh()?;
    // (1 - z) * n + z * h, written with one product fewer.
    Ok(n.add(&z.mul(&h.sub(&n)?)?)?)
}

/// LSTM step from the summed pre-activations `gates [B, 4H]` (stacked i, f, g, o):
/// `c' = σ(f) * c + σ(i) * tanh(g)`, `h' = σ(o) * tanh(c')`. Returns `(h', c')`.
fn lstm_step(gates: &Tensor, c: &Tensor, hs: usize) -> Result<(Tensor, Tensor)> {
    let if_ = gates.narrow(1, 0, 2 * hs)?.sigmoid()?;
    let (i, f) = (if_.narrow(1, 0, hs)?, if_.narrow(1, hs, hs)?);
    let g = gates.narrow(1, 2 * hs, hs)?.tanh()?;
    let o = gates.narrow(1, 3 * hs, hs)?.sigmoid()?;
    let c_new = f.mul(c)?.add(&i.mul(&g)?)?;
    let h_new = o.mul(&c_new.tanh()?)?;
    Ok((h_new, c_new))
}

/// Shared body of both layers' `forward_with_state`: batching, checking, running, un-batching.
fn forward_stack(
    stack: &Stack,
    x: &Tensor,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (x, unbatched) = stack.batched_input(x)?;
    let b = x.dims()[0];
    let h0 = h0.map(|s| stack.batched_state("h0", s, b, unbatched)).transpose()?;
    let c0 = c0.map(|s| stack.batched_state("c0", s, b, unbatched)).transpose()?;
    let run = stack.run(&x, h0.as_ref(), c0.as_ref())?;
    // Back to batch-first; a view, like the rest of the layout changes.
    let output = run.output.transpose(0, 1)?;
    if unbatched {
        let c_n = run.c_n.map(|c| c.squeeze(1)).transpose()?;
        Ok((output.squeeze(0)?, run.h_n.squeeze(1)?, c_n))
    } else {
        Ok((output, run.h_n, run.c_n))
    }
}

macro_rules! weight_accessors {
    () => {
        /// `weight_ih_l{layer}[_reverse]`: `[G*H, D_in]`, `None` when out of range.
        pub fn weight_ih(&self, layer: usize, reverse: bool) -> Option<&Tensor> {
            self.stack.cell(layer, reverse).map(|c| &c.weight_ih)
        }
        /// `weight_hh_l{layer}[_reverse]`: `[G*H, H]`.
        pub fn weight_hh(&self, layer: usize, reverse: bool) -> Option<&Tensor> {
            self.stack.cell(layer, reverse).map(|c| &c.weight_hh)
        }
        /// `bias_ih_l{layer}[_reverse]`: `[G*H]` (`None` without biases).
        pub fn bias_ih(&self, layer: usize, reverse: bool) -> Option<&Tensor> {
            self.stack.cell(layer, reverse).and_then(|c| c.bias_ih.as_ref())
        }
        /// `bias_hh_l{layer}[_reverse]`: `[G*H]` (`None` without biases).
        pub fn bias_hh(&self, layer: usize, reverse: bool) -> Option<&Tensor> {
            self.stack.cell(layer, reverse).and_then(|c| c.bias_hh.as_ref())
        }
        pub fn config(&self) -> &RecurrentConfig {
            &self.stack.config
        }
    };
}

/// A multi-layer gated recurrent unit, as `torch.nn.GRU(batch_first=True)`. Gates are stacked
/// r, z, n in the weights (`G = 3`):
///
/// `r = σ(W_ir x + b_ir + W_hr h + b_hr)`, `z = σ(W_iz x + b_iz + W_hz h + b_hz)`,
/// `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`, `h' = (1 - z) * n + z * h`.
pub struct Gru {
    stack: Stack,
}

impl Gru {
    /// A GRU initialized as PyTorch's: every weight and bias uniform in `±1/sqrt(H)`.
    pub fn new(config: GruConfig, rng: &mut Rng) -> Result<Gru> {
        Ok(Gru { stack: Stack::new(Kind::Gru, config, rng)? })
    }

    /// Runs over `x [B, T, D]` from `h0 [L*K, B, H]` (zeros when `None`). Returns the output
    /// sequence `[B, T, K*H]` (the last layer's `h` at every step, forward then reverse
    /// direction) and the final state `h_n [L*K, B, H]` (reverse directions' final state is
    /// their `h` at step 0). Unbatched `x [T, D]` with `h0 [L*K, H]` gives `[T, K*H]` and
    /// `[L*K, H]`.
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (output, h_n, _) = forward_stack(&self.stack, x, h0, None)?;
        Ok((output, h_n))
    }

    weight_accessors!();
}

impl Module for Gru {
    /// `[B, T, D] -> [B, T, K*H]`: the output sequence, from a zero initial state.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.stack.visit_params(prefix, f);
    }
    fn kind(&self) -> &'static str {
        "gru"
    }
}

/// A multi-layer long short-term memory, as `torch.nn.LSTM(batch_first=True)`. Gates are stacked
/// i, f, g, o in the weights (`G = 4`):
///
/// `i = σ(W_ii x + b_ii + W_hi h + b_hi)`, `f = σ(…)`, `g = tanh(…)`, `o = σ(…)`,
/// `c' = f * c + i * g`, `h' = o * tanh(c')`.
pub struct Lstm {
    stack: Stack,
}

impl Lstm {
    /// An LSTM initialized as PyTorch's: every weight and bias uniform in `±1/sqrt(H)`.
    pub fn new(config: LstmConfig, rng: &mut Rng) -> Result<Lstm> {
        Ok(Lstm { stack: Stack::new(Kind::Lstm, config, rng)? })
    }

    /// Runs over `x [B, T, D]` from `state = (h0, c0)`, each `[L*K, B, H]` (zeros when `None`).
    /// Returns the output sequence `[B, T, K*H]` and the final `(h_n, c_n)`, each
    /// `[L*K, B, H]`. Unbatched `x [T, D]` takes and gives states without the `B` dimension.
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let (h0, c0) = state.unzip();
        let (output, h_n, c_n) = forward_stack(&self.stack, x, h0, c0)?;
        Ok((output, (h_n, c_n.expect("internal: lstm returns a cell state"))))
    }

    weight_accessors!();
}

impl Module for Lstm {
    /// `[B, T, D] -> [B, T, K*H]`: the output sequence, from zero initial states.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.stack.visit_params(prefix, f);
    }
    fn kind(&self) -> &'static str {
        "lstm"
    }
}
