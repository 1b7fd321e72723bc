//! Convolution and pooling. `conv2d` and `max_pool2d` are ops of their own with direct kernels
//! (`cpu/conv.rs`, `cpu/pool.rs`); `unfold2d` (im2col), which lays every receptive field out as
//! a column, stays a public primitive and is what average pooling (a mean over each column) is
//! built from. 1-D versions are the 2-D ones with a height of 1.
//!
//! - `conv2d`: per sample and group, im2col into a reused scratch buffer and one GEMM straight
//!   into the output; the gradient recomputes the columns and gives `dW = Σ_b G_b @ cols_bᵀ`,
//!   `dx = col2im(Wᵀ @ G_b)`, `dbias = Σ G`. The earlier graph of unfold, reshape, batched
//!   matmul and broadcast add built a `[B, C·KH·KW, OH·OW]` tensor per layer and step and walked
//!   four ops backward (BENCHMARKS.md, "Convolution and pooling").
//! - `max_pool2d`: each window's maximum and the index of its first maximum (PyTorch's rule:
//!   the gradient goes to the first maximum), read in place; the gradient is scattered through
//!   the saved indices.
//!
//! Shapes: `x [B, C, H, W]`, weight `[O, C/groups, KH, KW]`, output `[B, O, OH, OW]` with
//! `OH = (H + 2·PH − DH·(KH − 1) − 1) / SH + 1` (likewise `OW`), as in PyTorch.

use crate::error::{Result, invalid};
use crate::ops::Op;
use crate::shape::Shape;
use crate::storage::BackendStorage;
use crate::tensor::Tensor;

/// Geometry of a 2-D sliding window: `(height, width)` pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    /// Value read outside the input (0 for convolution and average pooling, -inf for max).
    pub pad_value: f64,
}

impl Window2d {
    /// Output height and width for an input of `h × w`, or an error naming the problem.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.output_size_of("conv", h, w)
    }

    /// [`Window2d::output_size`], the error naming `op` (the op whose window it is).
    pub(crate) fn output_size_of(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        let one = |name: &str, size: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            if k == 0 || s == 0 || d == 0 {
                return invalid(op, format!("{name}: kernel, stride and dilation must be at least 1"));
            }
            let span = d * (k - 1) + 1;
            if size + 2 * p < span {
                return invalid(
                    op,
                    format!("{name}: input size {size} with padding {p} is smaller than the kernel span {span}"),
                );
            }
            Ok((size + 2 * p - span) / s + 1)
        };
        Ok((
            one("height", h, self.kernel.0, self.stride.0, self.padding.0, self.dilation.0)?,
            one("width", w, self.kernel.1, self.stride.1, self.padding.1, self.dilation.1)?,
        ))
    }
}

/// A pooling window as the pooling methods take it: `(kernel, stride, padding)`, each
/// `(height, width)`.
pub type PoolWindow = ((usize, usize), (usize, usize), (usize, usize));

/// A convolution's window and group count (the weight's shape gives the rest), whether a ReLU
/// is applied to its output, and the window of a max pool applied after that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Conv2dSpec {
    pub win: Window2d,
    pub groups: usize,
    pub relu: bool,
    pub pool: Option<Window2d>,
}

/// `[x, weight, bias] -> [dx, dweight, dbias]`, each only when that input tracks gradients.
///
/// With a folded max pool, `argmax` holds the pool's indices and `out` and `g` are pooled.
pub(crate) fn conv2d_backward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    spec: &Conv2dSpec,
    argmax: Option<&Tensor>,
    out: &Tensor,
    g: &Tensor,
) -> Result<Vec<Option<Tensor>>> {
    let need = [x.tracks_grad(), w.tracks_grad(), b.is_some_and(|b| b.tracks_grad())];
    let g = g.contiguous()?;
    // With a folded ReLU the kernel masks `g` by the ReLU's gradient, read from the output
    // (positive exactly where the ReLU's input is; with a pool, the value each window took),
    // sample by sample.
    let y = spec.relu.then(|| out.storage());
    let argmax = argmax.map(|a| a.storage());
    let (dx, dw, db) = x.storage().conv2d_backward(
        x.layout(),
        &w.storage(),
        w.layout(),
        &g.storage(),
        g.layout(),
        y.as_deref(),
        argmax.as_deref(),
        spec,
        need,
    )?;
    let wrap = |s: Option<crate::storage::Storage>, like: &Tensor| {
        s.map(|s| Tensor::from_storage(s, like.shape().clone(), like.device()))
    };
    let mut grads = vec![wrap(dx, x), wrap(dw, w)];
    if let Some(b) = b {
        grads.push(wrap(db, b));
    }
    Ok(grads)
}

/// `[x] -> [g scattered to the first maximum of each window]`.
pub(crate) fn max_pool2d_backward(x: &Tensor, argmax: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let g = g.contiguous()?;
    let storage = g.storage().max_pool2d_backward(g.layout(), &argmax.storage(), x.shape())?;
    Ok(vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))])
}

/// `[x, g] -> [fold(g)]`.
pub(crate) fn unfold_backward(x: &Tensor, g: &Tensor, win: &Window2d) -> Result<Vec<Option<Tensor>>> {
    let g = g.dense()?;
    let storage = g.storage().fold2d(x.shape(), win)?;
    Ok(vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))])
}

/// A max pool's window over `h × w` planes (padding reads as -inf), checked: padding at most
/// half the kernel, and a plane small enough for the pool's 32-bit indices.
fn max_pool_window(
    op: &'static str,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    (h, w): (usize, usize),
) -> Result<Window2d> {
    if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
        return invalid(op, format!("padding {padding:?} must be at most half the kernel {kernel:?}"));
    }
    if h.checked_mul(w).is_none_or(|n| n > u32::MAX as usize) {
        return invalid(op, format!("a {h}x{w} plane has more elements than 32-bit indices reach"));
    }
    let win = Window2d { kernel, stride, padding, dilation: (1, 1), pad_value: f64::NEG_INFINITY };
    win.output_size_of(op, h, w)?;
    Ok(win)
}

fn require_rank(op: &'static str, t: &Tensor, rank: usize, what: &str) -> Result<()> {
    if t.rank() == rank { Ok(()) } else { invalid(op, format!("expected {what}, found shape {}", t.shape())) }
}

impl Tensor {
    /// im2col: `[B, C, H, W] -> [B, C, KH·KW, OH·OW]`, element `[b, c, ki·KW + kj, oh·OW + ow]`
    /// being `x[b, c, oh·SH − PH + ki·DH, ow·SW − PW + kj·DW]` (or `pad_value` outside).
    pub fn unfold2d(&self, win: &Window2d) -> Result<Tensor> {
        self.require_float("unfold2d")?;
        require_rank("unfold2d", self, 4, "[batch, channels, height, width]")?;
        let d = self.dims();
        let (oh, ow) = win.output_size_of("unfold2d", d[2], d[3])?;
        let x = self.contiguous()?;
        let storage = x.storage().unfold2d(x.layout(), win)?;
        let shape = Shape::from([d[0], d[1], win.kernel.0 * win.kernel.1, oh * ow]);
        let out = Tensor::from_storage(storage, shape, self.device());
        Ok(out.with_op(|| Op::Unfold(x.clone(), *win), &[&x]))
    }

    /// 2-D convolution (cross-correlation, as every framework computes it).
    /// `x [B, C, H, W]`, `weight [O, C/groups, KH, KW]`, `bias [O]` -> `[B, O, OH, OW]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
    ) -> Result<Tensor> {
        self.conv2d_op(weight, bias, stride, padding, dilation, groups, false, None)
    }

    /// `relu(conv2d(...))` as one op: the ReLU applied while each sample's output is in cache,
    /// the same bits as [`Tensor::conv2d`] followed by [`Tensor::relu`]; the pre-activation is
    /// not kept (the ReLU's gradient is read from the output). `nn::Sequential` uses it for a
    /// convolution followed by a ReLU.
    pub fn conv2d_relu(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
    ) -> Result<Tensor> {
        self.conv2d_op(weight, bias, stride, padding, dilation, groups, true, None)
    }

    /// `max_pool2d(relu(conv2d(...)))` as one op, `pool` being the max pool's `(kernel, stride,
    /// padding)`: each sample's convolution output is pooled while it is in cache and never
    /// stored; the same values and gradients, to the bit, as [`Tensor::conv2d_relu`] followed
    /// by [`Tensor::max_pool2d`]. `nn::Sequential` uses it for a convolution, a ReLU and a 2-D
    /// max pool in a row.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_relu_max_pool2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
        pool: PoolWindow,
    ) -> Result<Tensor> {
        self.conv2d_op(weight, bias, stride, padding, dilation, groups, true, Some(pool))
    }

    #[allow(clippy::too_many_arguments)]
    fn conv2d_op(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
        relu: bool,
        pool: Option<PoolWindow>,
    ) -> Result<Tensor> {
        require_rank("conv2d", self, 4, "input [batch, channels, height, width]")?;
        require_rank("conv2d", weight, 4, "weight [out_channels, in_channels/groups, kh, kw]")?;
        let (b, c, h, w) = (self.dims()[0], self.dims()[1], self.dims()[2], self.dims()[3]);
        let (o, cg, kh, kw) = (weight.dims()[0], weight.dims()[1], weight.dims()[2], weight.dims()[3]);
        if groups == 0 || c % groups != 0 || o % groups != 0 || cg * groups != c {
            return invalid(
                "conv2d",
                format!(
                    "{c} input channels, {o} output channels and weight {} do not fit {groups} groups",
                    weight.shape()
                ),
            );
        }
        if let Some(bias) = bias
            && bias.dims() != [o]
        {
            return invalid("conv2d", format!("bias must have shape [{o}], found {}", bias.shape()));
        }
        super::require_param_dtypes("conv2d", self, &[("weight", Some(weight)), ("bias", bias)])?;
        let win = Window2d { kernel: (kh, kw), stride, padding, dilation, pad_value: 0.0 };
        let (mut oh, mut ow) = win.output_size_of("conv2d", h, w)?;
        let pool = match pool {
            Some((kernel, stride, padding)) => {
                let pw = max_pool_window("conv2d_relu_max_pool2d", kernel, stride, padding, (oh, ow))?;
                (oh, ow) = pw.output_size_of("conv2d_relu_max_pool2d", oh, ow)?;
                Some(pw)
            }
            None => None,
        };
        let spec = Conv2dSpec { win, groups, relu, pool };
        let (x, weight) = (self.contiguous()?, weight.contiguous()?);
        let bias = bias.map(|b| b.contiguous()).transpose()?;
        let (storage, argmax) = {
            let (xs, ws) = (x.storage(), weight.storage());
            let bs = bias.as_ref().map(|b| b.storage());
            let bias_arg = bias.as_ref().zip(bs.as_ref()).map(|(b, s)| (&**s, b.layout()));
            xs.conv2d(x.layout(), &ws, weight.layout(), bias_arg, &spec)?
        };
        let shape = Shape::from([b, o, oh, ow]);
        let argmax = argmax.map(|a| Tensor::from_storage(a, shape.clone(), self.device()));
        let out = Tensor::from_storage(storage, shape, self.device());
        let inputs: Vec<&Tensor> = [Some(&x), Some(&weight), bias.as_ref()].into_iter().flatten().collect();
        Ok(out.with_op(|| Op::Conv2d(x.clone(), weight.clone(), bias.clone(), spec, argmax), &inputs))
    }

    /// 1-D convolution. `x [B, C, L]`, `weight [O, C/groups, K]`, `bias [O]` -> `[B, O, OL]`.
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        require_rank("conv1d", self, 3, "input [batch, channels, length]")?;
        require_rank("conv1d", weight, 3, "weight [out_channels, in_channels/groups, k]")?;
        let y =
            self.unsqueeze(2)?.conv2d(&weight.unsqueeze(2)?, bias, (1, stride), (0, padding), (1, dilation), groups)?;
        y.squeeze(2)
    }

    fn pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        max: bool,
    ) -> Result<Tensor> {
        let name = if max { "max_pool2d" } else { "avg_pool2d" };
        require_rank(name, self, 4, "[batch, channels, height, width]")?;
        if padding.0 * 2 > kernel.0 || padding.1 * 2 > kernel.1 {
            return invalid(name, format!("padding {padding:?} must be at most half the kernel {kernel:?}"));
        }
        let (b, c, h, w) = (self.dims()[0], self.dims()[1], self.dims()[2], self.dims()[3]);
        if max {
            self.require_float(name)?;
            let win = max_pool_window(name, kernel, stride, padding, (h, w))?;
            let (oh, ow) = win.output_size_of(name, h, w)?;
            let x = self.contiguous()?;
            let (values, argmax) = x.storage().max_pool2d(x.layout(), &win)?;
            let shape = Shape::from([b, c, oh, ow]);
            let out = Tensor::from_storage(values, shape.clone(), self.device());
            let argmax = Tensor::from_storage(argmax, shape, self.device());
            return Ok(out.with_op(|| Op::MaxPool2d(x.clone(), argmax), &[&x]));
        }
        let win = Window2d { kernel, stride, padding, dilation: (1, 1), pad_value: 0.0 };
        let (oh, ow) = win.output_size_of(name, h, w)?;
        // Padding counts in the denominator (PyTorch's default count_include_pad=True).
        self.unfold2d(&win)?.mean(2, true)?.reshape([b, c, oh, ow])
    }

    /// Max pooling over `kernel` windows (PyTorch's `max_pool2d`; padding reads as -inf).
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        self.pool2d(kernel, stride, padding, true)
    }
    /// Average pooling over `kernel` windows (padding counts as zeros in the average).
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Tensor> {
        self.pool2d(kernel, stride, padding, false)
    }
    /// `[B, C, L] -> [B, C, OL]` max pooling.
    pub fn max_pool1d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        require_rank("max_pool1d", self, 3, "[batch, channels, length]")?;
        self.unsqueeze(2)?.max_pool2d((1, kernel), (1, stride), (0, padding))?.squeeze(2)
    }
    /// `[B, C, L] -> [B, C, OL]` average pooling.
    pub fn avg_pool1d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        require_rank("avg_pool1d", self, 3, "[batch, channels, length]")?;
        self.unsqueeze(2)?.avg_pool2d((1, kernel), (1, stride), (0, padding))?.squeeze(2)
    }
}
