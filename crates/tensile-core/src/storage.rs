//! Tensor storage and the backend interface.
//!
//! [`Storage`] is an enum over devices and [`CpuStorage`] an enum over element types. Every
//! kernel a tensor op needs is a method of the internal `BackendStorage` trait, so when a second
//! backend (CUDA) is added the compiler lists every op it still has to cover. Kernels never see
//! autodiff: they take storages and layouts and return new contiguous storages.

use crate::dtype::DType;
use crate::error::Result;
use crate::ops::{BinaryOp, CmpOp, Conv2dSpec, ReduceOp, UnaryOp, Window2d};
use crate::shape::{Layout, Shape};

/// Host memory holding a tensor's elements.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    U32(Vec<u32>),
}

/// A tensor's memory on some device.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
}

/// Sizes of a (batched) matrix product: `batch` lists the broadcast batch dimensions.
#[derive(Debug, Clone)]
pub(crate) struct MatmulDims {
    pub batch: Shape,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// What every backend implements. Layouts passed to binary kernels are already broadcast to the
/// output shape; every returned storage is contiguous in row-major order.
pub(crate) trait BackendStorage: Sized {
    fn dtype(&self) -> DType;
    fn len(&self) -> usize;
    /// The elements of `layout` gathered into a new contiguous storage.
    fn copy_strided(&self, layout: &Layout) -> Result<Self>;
    fn to_dtype(&self, layout: &Layout, dtype: DType) -> Result<Self>;
    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self>;
    /// `grad * d op(x) / dx`, with `y = op(x)` given for rules that are cheaper through it;
    /// all three are contiguous and of one shape.
    fn unary_backward(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self>;
    /// [`Self::unary_backward`] with one gradient value (`grad` has one element) for every element.
    fn unary_backward_scalar(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self>;
    /// The sum of the squares of the elements of `layout`: one element.
    fn square_sum(&self, layout: &Layout) -> Result<Self>;
    /// In place on a contiguous `[rows, n]` product: `+ bias` (`[n]`, at `bias`'s layout) on
    /// every row, then the ReLU when `relu` (a linear layer's epilogue).
    fn bias_relu_(&mut self, bias: Option<(&Self, &Layout)>, relu: bool) -> Result<()>;
    /// A linear layer's contiguous output gradient (`self`, rows of `n`) through its ReLU when
    /// `y` (its contiguous output) is given, and the column sums of that (the bias's gradient):
    /// `(masked, sums)`, `masked` only with `y`.
    fn relu_grad_col_sums(&self, y: Option<&Self>, n: usize) -> Result<(Option<Self>, Self)>;
    fn binary(&self, l: &Layout, rhs: &Self, r: &Layout, op: BinaryOp) -> Result<Self>;
    fn cmp(&self, l: &Layout, rhs: &Self, r: &Layout, op: CmpOp) -> Result<Self>;
    /// Reduces the sorted `dims`; the result has the keepdim shape.
    fn reduce(&self, layout: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self>;
    /// Index of the largest (or smallest) element along `dim` (u32, keepdim shape).
    fn arg_reduce(&self, layout: &Layout, dim: usize, max: bool) -> Result<Self>;
    fn matmul(&self, l: &Layout, rhs: &Self, r: &Layout, dims: &MatmulDims) -> Result<Self>;
    /// Softmax or log-softmax over the last dimension of contiguous data.
    fn softmax_last(&self, layout: &Layout, log: bool) -> Result<Self>;
    /// The gradient of `softmax_last` from its output `self` and the gradient `grad`, both
    /// contiguous with rows of `len`.
    fn softmax_last_backward(&self, grad: &Self, len: usize, log: bool) -> Result<Self>;
    fn where_cond(&self, m: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout) -> Result<Self>;
    fn index_select(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self>;
    /// Adds the slices of `src` (shape of an `index_select` result) into a zero tensor of `shape`.
    fn index_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self>;
    fn gather(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self>;
    /// Adds `self` (shape of a `gather` result) into a zero tensor of `shape` at `idx`.
    fn scatter_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self>;
    /// Writes the elements of `self` seen through `src` into `dst` seen through `dst_layout`.
    fn copy_into(&self, src: &Layout, dst: &mut Self, dst_layout: &Layout) -> Result<()>;
    /// A new contiguous storage of `n` elements all equal to `v`.
    fn full(dtype: DType, n: usize, v: f64) -> Self;
    /// im2col of contiguous `[B, C, H, W]` into `[B, C, KH·KW, OH·OW]`.
    fn unfold2d(&self, layout: &Layout, win: &Window2d) -> Result<Self>;
    /// col2im: the adjoint of `unfold2d`, summing the contiguous columns `self` into `shape`.
    fn fold2d(&self, shape: &Shape, win: &Window2d) -> Result<Self>;
    /// `x [B, C, H, W]`, weight `[O, C/G, KH, KW]`, bias `[O]` -> `[B, O, OH, OW]`; with a
    /// folded max pool, the pooled `[B, O, PH, PW]` and the pool's u32 indices.
    fn conv2d(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        bias: Option<(&Self, &Layout)>,
        spec: &Conv2dSpec,
    ) -> Result<(Self, Option<Self>)>;
    /// The gradients of `conv2d` with respect to `[x, weight, bias]` that `need` asks for, given
    /// the output gradient `g`, the output `y` when a ReLU is folded in, and the pool's indices
    /// when a max pool is.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn conv2d_backward(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        g: &Self,
        gl: &Layout,
        y: Option<&Self>,
        argmax: Option<&Self>,
        spec: &Conv2dSpec,
        need: [bool; 3],
    ) -> Result<(Option<Self>, Option<Self>, Option<Self>)>;
    /// Layer normalization of the rows of `n` elements of `layout` (`w` and `b`, when given,
    /// hold `n` each): `(y, mean, rstd)`, the statistics one per row.
    fn layer_norm(
        &self,
        layout: &Layout,
        w: Option<(&Self, &Layout)>,
        b: Option<(&Self, &Layout)>,
        n: usize,
        eps: f64,
    ) -> Result<(Self, Self, Self)>;
    /// The gradients of `layer_norm` with respect to `[x, weight, bias]` (`dx` always, the others
    /// where `need` asks), from the input `self`, the weight, the saved contiguous
    /// `(mean, rstd)` and the output gradient `g`.
    #[allow(clippy::type_complexity)]
    fn layer_norm_backward(
        &self,
        layout: &Layout,
        w: Option<(&Self, &Layout)>,
        stats: (&Self, &Self),
        g: (&Self, &Layout),
        n: usize,
        need: [bool; 3],
    ) -> Result<(Self, Option<Self>, Option<Self>)>;
    /// Max pooling of `[B, C, H, W]`: the values and (u32) the index within its `H·W` plane of
    /// each window's first maximum, both `[B, C, OH, OW]`.
    fn max_pool2d(&self, layout: &Layout, win: &Window2d) -> Result<(Self, Self)>;
    /// The output gradient `self` added into zeros of `shape` at the indices of `max_pool2d`.
    fn max_pool2d_backward(&self, layout: &Layout, argmax: &Self, shape: &Shape) -> Result<Self>;
}

impl Storage {
    pub(crate) fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
        }
    }
    pub(crate) fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(s) => s,
        }
    }
}

// One arm per device; with a single device this is pure forwarding, and a second device makes
// each method a two-arm match (mixed devices are rejected at the tensor level before this).
impl BackendStorage for Storage {
    fn dtype(&self) -> DType {
        self.cpu().dtype()
    }
    fn len(&self) -> usize {
        self.cpu().len()
    }
    fn copy_strided(&self, layout: &Layout) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().copy_strided(layout)?))
    }
    fn to_dtype(&self, layout: &Layout, dtype: DType) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().to_dtype(layout, dtype)?))
    }
    fn unary(&self, layout: &Layout, op: UnaryOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().unary(layout, op)?))
    }
    fn unary_backward(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().unary_backward(y.cpu(), grad.cpu(), op)?))
    }
    fn unary_backward_scalar(&self, y: &Self, grad: &Self, op: UnaryOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().unary_backward_scalar(y.cpu(), grad.cpu(), op)?))
    }
    fn square_sum(&self, layout: &Layout) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().square_sum(layout)?))
    }
    fn bias_relu_(&mut self, bias: Option<(&Self, &Layout)>, relu: bool) -> Result<()> {
        self.cpu_mut().bias_relu_(bias.map(|(b, l)| (b.cpu(), l)), relu)
    }
    fn relu_grad_col_sums(&self, y: Option<&Self>, n: usize) -> Result<(Option<Self>, Self)> {
        let (masked, sums) = self.cpu().relu_grad_col_sums(y.map(Storage::cpu), n)?;
        Ok((masked.map(Storage::Cpu), Storage::Cpu(sums)))
    }
    fn binary(&self, l: &Layout, rhs: &Self, r: &Layout, op: BinaryOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().binary(l, rhs.cpu(), r, op)?))
    }
    fn cmp(&self, l: &Layout, rhs: &Self, r: &Layout, op: CmpOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().cmp(l, rhs.cpu(), r, op)?))
    }
    fn reduce(&self, layout: &Layout, dims: &[usize], op: ReduceOp) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().reduce(layout, dims, op)?))
    }
    fn arg_reduce(&self, layout: &Layout, dim: usize, max: bool) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().arg_reduce(layout, dim, max)?))
    }
    fn matmul(&self, l: &Layout, rhs: &Self, r: &Layout, dims: &MatmulDims) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().matmul(l, rhs.cpu(), r, dims)?))
    }
    fn softmax_last(&self, layout: &Layout, log: bool) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().softmax_last(layout, log)?))
    }
    fn softmax_last_backward(&self, grad: &Self, len: usize, log: bool) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().softmax_last_backward(grad.cpu(), len, log)?))
    }
    fn where_cond(&self, m: &Layout, a: &Self, al: &Layout, b: &Self, bl: &Layout) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().where_cond(m, a.cpu(), al, b.cpu(), bl)?))
    }
    fn index_select(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().index_select(layout, idx.cpu(), il, dim)?))
    }
    fn index_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().index_add(idx.cpu(), il, dim, shape)?))
    }
    fn gather(&self, layout: &Layout, idx: &Self, il: &Layout, dim: usize) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().gather(layout, idx.cpu(), il, dim)?))
    }
    fn scatter_add(&self, idx: &Self, il: &Layout, dim: usize, shape: &Shape) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().scatter_add(idx.cpu(), il, dim, shape)?))
    }
    fn copy_into(&self, src: &Layout, dst: &mut Self, dst_layout: &Layout) -> Result<()> {
        self.cpu().copy_into(src, dst.cpu_mut(), dst_layout)
    }
    fn full(dtype: DType, n: usize, v: f64) -> Self {
        Storage::Cpu(CpuStorage::full(dtype, n, v))
    }
    fn unfold2d(&self, layout: &Layout, win: &Window2d) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().unfold2d(layout, win)?))
    }
    fn fold2d(&self, shape: &Shape, win: &Window2d) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().fold2d(shape, win)?))
    }
    fn conv2d(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        bias: Option<(&Self, &Layout)>,
        spec: &Conv2dSpec,
    ) -> Result<(Self, Option<Self>)> {
        let (y, idx) = self.cpu().conv2d(l, w.cpu(), wl, bias.map(|(b, bl)| (b.cpu(), bl)), spec)?;
        Ok((Storage::Cpu(y), idx.map(Storage::Cpu)))
    }
    fn conv2d_backward(
        &self,
        l: &Layout,
        w: &Self,
        wl: &Layout,
        g: &Self,
        gl: &Layout,
        y: Option<&Self>,
        argmax: Option<&Self>,
        spec: &Conv2dSpec,
        need: [bool; 3],
    ) -> Result<(Option<Self>, Option<Self>, Option<Self>)> {
        let (y, argmax) = (y.map(|y| y.cpu()), argmax.map(|a| a.cpu()));
        let (dx, dw, db) = self.cpu().conv2d_backward(l, w.cpu(), wl, g.cpu(), gl, y, argmax, spec, need)?;
        Ok((dx.map(Storage::Cpu), dw.map(Storage::Cpu), db.map(Storage::Cpu)))
    }
    fn layer_norm(
        &self,
        layout: &Layout,
        w: Option<(&Self, &Layout)>,
        b: Option<(&Self, &Layout)>,
        n: usize,
        eps: f64,
    ) -> Result<(Self, Self, Self)> {
        let (w, b) = (w.map(|(s, l)| (s.cpu(), l)), b.map(|(s, l)| (s.cpu(), l)));
        let (y, mean, rstd) = self.cpu().layer_norm(layout, w, b, n, eps)?;
        Ok((Storage::Cpu(y), Storage::Cpu(mean), Storage::Cpu(rstd)))
    }
    fn layer_norm_backward(
        &self,
        layout: &Layout,
        w: Option<(&Self, &Layout)>,
        stats: (&Self, &Self),
        g: (&Self, &Layout),
        n: usize,
        need: [bool; 3],
    ) -> Result<(Self, Option<Self>, Option<Self>)> {
        let (w, stats, g) = (w.map(|(s, l)| (s.cpu(), l)), (stats.0.cpu(), stats.1.cpu()), (g.0.cpu(), g.1));
        let (dx, dw, db) = self.cpu().layer_norm_backward(layout, w, stats, g, n, need)?;
        Ok((Storage::Cpu(dx), dw.map(Storage::Cpu), db.map(Storage::Cpu)))
    }
    fn max_pool2d(&self, layout: &Layout, win: &Window2d) -> Result<(Self, Self)> {
        let (values, argmax) = self.cpu().max_pool2d(layout, win)?;
        Ok((Storage::Cpu(values), Storage::Cpu(argmax)))
    }
    fn max_pool2d_backward(&self, layout: &Layout, argmax: &Self, shape: &Shape) -> Result<Self> {
        Ok(Storage::Cpu(self.cpu().max_pool2d_backward(layout, argmax.cpu(), shape)?))
    }
}
