//! Convolution and pooling, built on one primitive: `unfold2d` (im2col), which lays every
//! receptive field out as a column. A convolution is then a (grouped, batched) matrix product
//! of the weights with those columns, so it runs on the tuned GEMM; pooling is a max (by index,
//! so the gradient goes to the first maximum as in PyTorch) or a mean over each column. The
//! gradient of `unfold2d` is `fold` (col2im): each column element added back to the input pixel
//! it came from. 1-D versions are the 2-D ones with a height of 1.
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
        let one = |name: &str, size: usize, k: usize, s: usize, p: usize, d: usize| -> Result<usize> {
            if k == 0 || s == 0 || d == 0 {
                return invalid("conv", format!("{name}: kernel, stride and dilation must be at least 1"));
            }
            let span = d * (k - 1) + 1;
            if size + 2 * p < span {
                return invalid(
                    "conv",
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

/// `[x, g] -> [fold(g)]`.
pub(crate) fn unfold_backward(x: &Tensor, g: &Tensor, win: &Window2d) -> Result<Vec<Option<Tensor>>> {
    let g = g.dense()?;
    let storage = g.storage().fold2d(x.shape(), win)?;
    Ok(vec![Some(Tensor::from_storage(storage, x.shape().clone(), x.device()))])
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
        let (oh, ow) = win.output_size(d[2], d[3])?;
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
        let win = Window2d { kernel: (kh, kw), stride, padding, dilation, pad_value: 0.0 };
        let (oh, ow) = win.output_size(h, w)?;
        // [B, C, K, L] -> [B, G, C/G·K, L]; weight [O, C/G, KH, KW] -> [G, O/G, C/G·K].
        let cols = self.unfold2d(&win)?.reshape([b, groups, cg * kh * kw, oh * ow])?;
        let wm = weight.reshape([groups, o / groups, cg * kh * kw])?;
        let y = wm.matmul(&cols)?.reshape([b, o, oh, ow])?;
        match bias {
            Some(bias) => {
                if bias.dims() != [o] {
                    return invalid("conv2d", format!("bias must have shape [{o}], found {}", bias.shape()));
                }
                Ok(y.add(&bias.reshape([1, o, 1, 1])?)?)
            }
            None => Ok(y),
        }
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
        let pad_value = if max { f64::NEG_INFINITY } else { 0.0 };
        let win = Window2d { kernel, stride, padding, dilation: (1, 1), pad_value };
        let (oh, ow) = win.output_size(self.dims()[2], self.dims()[3])?;
        let cols = self.unfold2d(&win)?;
        let (b, c) = (self.dims()[0], self.dims()[1]);
        let pooled = if max {
            // By index, so the gradient reaches exactly the first maximum of each window.
            let idx = cols.argmax(2, true)?;
            cols.gather(&idx, 2)?
        } else {
            // Padding counts in the denominator (PyTorch's default count_include_pad=True).
            cols.mean(2, true)?
        };
        pooled.reshape([b, c, oh, ow])
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
