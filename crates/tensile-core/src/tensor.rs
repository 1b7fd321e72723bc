//! The [`Tensor`] handle: a cheap-to-clone reference to storage, a layout, and (while gradients
//! are tracked) the op that produced it.
//!
//! Tensors are immutable values, except that a tensor which owns all of its storage can be
//! updated in place ([`Tensor::update_`]); optimizers use that to step parameters without
//! allocating. Shape notation used in docs across tensile: `B` batch, `T` time/sequence, `C`
//! channels, `D` features, `M×K @ K×N` for matrix products, `...` any leading dimensions.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use parking_lot::{RwLock, RwLockReadGuard};

use crate::autograd;
use crate::device::Device;
use crate::dtype::{DType, WithDType};
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::rng::Rng;
use crate::shape::{Dim, Layout, Shape};
use crate::storage::{BackendStorage, CpuStorage, Storage};

/// A tensor's identity, used as the key of gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

static LIVE: AtomicU64 = AtomicU64::new(0);

/// How many tensor handles' inner records are alive right now. Autodiff frees its graph as it
/// goes, so in a training loop this number returns to the same value after every step; tests use
/// it to prove that memory does not grow across steps.
pub fn live_tensors() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

impl Drop for Inner {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LIVE.fetch_add(1, Ordering::Relaxed);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Inner {
    id: TensorId,
    storage: Arc<Shared>,
    layout: Layout,
    device: Device,
    /// Taken (set to `None`) by `backward`, which is what frees the graph.
    op: Mutex<Option<Op>>,
    /// Whether gradients flow to or through this tensor.
    track: bool,
    /// Set once `backward` has taken this tensor's op: its graph is gone.
    freed: std::sync::atomic::AtomicBool,
}

/// The storage a tensor shares with its views, and its dtype, readable without the lock: ops
/// check dtypes several times each, and the lock's two atomic read-modify-writes per check cost
/// more than a small op's arithmetic. The dtype changes only under the write lock (`cast_`).
struct Shared {
    dtype: AtomicU8,
    data: RwLock<Storage>,
    /// Bumped by every in-place write (under the write lock); keys `transposed`.
    version: AtomicU64,
    /// See [`Tensor::cached_transpose`].
    transposed: Mutex<Option<TransposedCopy>>,
}

/// A row-major copy of the transpose of one 2-D view of a storage, valid at one version of it.
struct TransposedCopy {
    version: u64,
    layout: Layout,
    /// Made on the view's second use at that version (`None` after the first).
    copy: Option<Tensor>,
}

impl Shared {
    fn new(storage: Storage) -> Arc<Shared> {
        Arc::new(Shared {
            dtype: AtomicU8::new(storage.dtype() as u8),
            data: RwLock::new(storage),
            version: AtomicU64::new(0),
            transposed: Mutex::new(None),
        })
    }
}

/// An n-dimensional array of numbers on a device, with reverse-mode autodiff.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

impl Tensor {
    // ---- construction -------------------------------------------------------------------

    pub(crate) fn from_storage(storage: Storage, shape: Shape, device: Device) -> Tensor {
        Tensor::from_storage_in(storage, Layout::contiguous(shape), device)
    }

    /// A tensor over all of `storage`, its elements in the order `layout` gives (`layout` must
    /// be dense and start at offset 0).
    pub(crate) fn from_storage_in(storage: Storage, layout: Layout, device: Device) -> Tensor {
        debug_assert!(layout.offset() == 0 && layout.is_dense() && storage.len() == layout.elem_count());
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: Shared::new(storage),
            layout,
            device,
            op: Mutex::new(None),
            track: false,
            freed: Default::default(),
        }))
    }

    /// A new tensor viewing the same storage through `layout`, with no history.
    pub(crate) fn view_untracked(&self, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            layout,
            device: self.0.device,
            op: Mutex::new(None),
            track: false,
            freed: Default::default(),
        }))
    }

    /// Records `op` as this (freshly made) tensor's origin when any input tracks gradients and
    /// gradient mode is on.
    pub(crate) fn with_op(mut self, op: impl FnOnce() -> Op, inputs: &[&Tensor]) -> Tensor {
        if autograd::is_grad_enabled() && inputs.iter().any(|t| t.0.track) {
            let inner = Arc::get_mut(&mut self.0).expect("internal: with_op on a shared tensor");
            inner.op = Mutex::new(Some(op()));
            inner.track = true;
        }
        self
    }

    /// A tensor of `shape` from row-major `data`.
    pub fn from_vec<T: WithDType>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.elem_count() {
            return Err(Error::ElementCount {
                op: "from_vec",
                expected: shape.elem_count(),
                got: data.len(),
                shape: Box::new(shape),
            });
        }
        Ok(Tensor::from_storage(Storage::Cpu(T::wrap(data)), shape, Device::Cpu))
    }

    /// A tensor of `shape` copied from row-major `data`.
    pub fn from_slice<T: WithDType>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A rank-0 `f32` tensor.
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_storage(Storage::Cpu(CpuStorage::F32(vec![v])), Shape::scalar(), Device::Cpu)
    }

    /// A tensor of `shape` with every element `v`.
    pub fn full(v: f64, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        let storage = Storage::full(dtype, shape.elem_count(), v);
        Tensor::from_storage(storage, shape, Device::Cpu)
    }
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(0.0, shape, dtype)
    }
    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Tensor::full(1.0, shape, dtype)
    }
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype())
    }
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype())
    }
    /// `[0, 1, …, n-1]`.
    pub fn arange(n: usize, dtype: DType) -> Tensor {
        let storage = match dtype {
            DType::F32 => CpuStorage::F32((0..n).map(|i| i as f32).collect()),
            DType::F64 => CpuStorage::F64((0..n).map(|i| i as f64).collect()),
            DType::U8 => CpuStorage::U8((0..n).map(|i| i as u8).collect()),
            DType::U32 => CpuStorage::U32((0..n).map(|i| i as u32).collect()),
        };
        Tensor::from_storage(Storage::Cpu(storage), Shape::from(n), Device::Cpu)
    }
    /// Uniform in `[lo, hi)`, drawn from `rng` in row-major order.
    pub fn rand_uniform(shape: impl Into<Shape>, lo: f64, hi: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count()).map(|_| rng.uniform(lo, hi)).collect();
        Tensor::from_f64s(v, shape, dtype)
    }
    /// Normal with the given mean and standard deviation, drawn from `rng`.
    pub fn randn(shape: impl Into<Shape>, mean: f64, std: f64, dtype: DType, rng: &mut Rng) -> Tensor {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count()).map(|_| mean + std * rng.normal()).collect();
        Tensor::from_f64s(v, shape, dtype)
    }
    fn from_f64s(v: Vec<f64>, shape: Shape, dtype: DType) -> Tensor {
        let t = Tensor::from_storage(Storage::Cpu(CpuStorage::F64(v)), shape, Device::Cpu);
        if dtype == DType::F64 { t } else { t.to_dtype(dtype).expect("internal: f64 converts to every dtype") }
    }

    // ---- gradients ------------------------------------------------------------------------

    /// This tensor as a leaf that requires gradients (a trainable parameter). Shares storage.
    pub fn requires_grad(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            device: self.0.device,
            op: Mutex::new(None),
            track: self.dtype().is_float(),
            freed: Default::default(),
        }))
    }
    /// The same values, cut from the graph: gradients do not flow through the result.
    pub fn detach(&self) -> Tensor {
        self.view_untracked(self.0.layout.clone())
    }
    /// Whether gradients flow to or through this tensor.
    pub fn tracks_grad(&self) -> bool {
        self.0.track
    }
    /// Whether this tensor is a leaf that requires gradients (made by `requires_grad`).
    pub fn is_leaf_var(&self) -> bool {
        self.0.track && self.op().is_none()
    }
    /// The name of the op that computed this tensor (`"conv2d_relu"`, `"matmul"`, `"unary"`…),
    /// recorded only while it tracks gradients; `None` for a leaf or an untracked result. Like
    /// PyTorch's `grad_fn`, it shows what the backward pass will run, fused forms included.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.op.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Op::name)
    }
    pub(crate) fn op(&self) -> Option<Op> {
        self.0.op.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Calls `f` with each input of this tensor's op, without cloning the op.
    pub(crate) fn for_each_input(&self, mut f: impl FnMut(&Tensor)) {
        if let Some(op) = self.0.op.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            op.inputs().into_iter().for_each(&mut f);
        }
    }
    pub(crate) fn take_op(&self) -> Option<Op> {
        let op = self.0.op.lock().unwrap_or_else(|e| e.into_inner()).take();
        if op.is_some() {
            self.0.freed.store(true, Ordering::Relaxed);
        }
        op
    }
    /// Whether a backward pass has already consumed this tensor's graph.
    pub(crate) fn graph_freed(&self) -> bool {
        self.0.freed.load(Ordering::Relaxed)
    }

    // ---- accessors ------------------------------------------------------------------------

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        self.0.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.dims()
    }
    pub fn rank(&self) -> usize {
        self.dims().len()
    }
    /// Size of dimension `d` (negative counts from the back).
    pub fn dim(&self, d: impl Dim) -> Result<usize> {
        Ok(self.dims()[d.to_index("dim", self.rank())?])
    }
    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }
    /// The element type. Read from the storage, because [`Tensor::cast_`] may change it.
    pub fn dtype(&self) -> DType {
        DType::ALL[usize::from(self.0.storage.dtype.load(Ordering::Relaxed))]
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    /// Whether two tensors view the same storage.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        // Recursive: an op may read one storage twice (`x * x`, or an op inside `with_slice`),
        // and a plain read queues behind a waiting writer, which waits for the first read: both
        // threads would hang (tests/storage_lock.rs).
        self.0.storage.data.read_recursive()
    }

    /// A row-major copy of this matrix's transpose, for a product that reads it as a transposed
    /// right operand (`x @ wᵀ`), kept with the storage from the matrix's second use at one
    /// version of its data until the next in-place write (an optimizer step): a recurrent
    /// layer's per-step product, or evaluation batches, then copy the weight once instead of at
    /// every use. `None` on a first use, where the product makes its own copy as usual, so a
    /// weight used once per step holds no extra memory.
    pub(crate) fn cached_transpose(&self) -> Result<Option<Tensor>> {
        // The read guard keeps writers, and so the version, still until the copy is made.
        let data = self.storage();
        let version = self.0.storage.version.load(Ordering::Relaxed);
        let mut cache = self.0.storage.transposed.lock().unwrap_or_else(|e| e.into_inner());
        match cache.as_mut() {
            Some(entry) if entry.version == version && entry.layout == *self.layout() => {
                if entry.copy.is_none() {
                    let t = self.layout().permute(&[1, 0]);
                    let copy = data.copy_strided(&t)?;
                    entry.copy = Some(Tensor::from_storage(copy, t.shape().clone(), self.device()));
                }
                Ok(entry.copy.clone())
            }
            _ => {
                *cache = Some(TransposedCopy { version, layout: self.layout().clone(), copy: None });
                Ok(None)
            }
        }
    }

    pub(crate) fn require_float(&self, op: &'static str) -> Result<()> {
        if self.dtype().is_float() {
            Ok(())
        } else {
            Err(Error::UnsupportedDType { op, dtype: self.dtype(), expected: "f32 or f64" })
        }
    }

    // ---- reading and writing values ------------------------------------------------------

    /// The elements in row-major order. `T` must match the dtype.
    pub fn to_vec<T: WithDType>(&self) -> Result<Vec<T>> {
        let s = self.storage();
        let data = T::slice(s.cpu()).ok_or(Error::DTypeMismatch { op: "to_vec", lhs: s.dtype(), rhs: T::DTYPE })?;
        Ok(crate::cpu::gather_strided(data, self.layout()))
    }
    /// The elements as `f64`, whatever the dtype (for tests and printing).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        self.to_dtype(DType::F64)?.to_vec::<f64>()
    }
    /// The single element of a one-element tensor, as `f64`.
    pub fn item(&self) -> Result<f64> {
        if self.elem_count() != 1 {
            return Err(Error::NotScalar { op: "item", shape: Box::new(self.shape().clone()) });
        }
        Ok(self.to_f64_vec()?[0])
    }

    /// Changes the elements in place through `f`. The tensor must be contiguous, cover its whole
    /// storage, and have dtype `T`. Views sharing the storage see the change; the autodiff graph
    /// does not (use only on parameters between steps, as optimizers do).
    pub fn update_<T: WithDType, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R> {
        let mut s = self.0.storage.data.write();
        let whole = self.layout().contiguous_range() == Some(0..s.len());
        if !whole {
            return crate::error::invalid("update_", "the tensor must own all of its storage contiguously");
        }
        let found = s.dtype();
        let data =
            T::slice_mut(s.cpu_mut()).ok_or(Error::DTypeMismatch { op: "update_", lhs: found, rhs: T::DTYPE })?;
        self.0.storage.version.fetch_add(1, Ordering::Relaxed);
        Ok(f(data))
    }

    /// Reads the elements without copying when contiguous. `T` must match the dtype.
    pub fn with_slice<T: WithDType, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        if let Some(r) = self.layout().contiguous_range() {
            let s = self.storage();
            let data =
                T::slice(s.cpu()).ok_or(Error::DTypeMismatch { op: "with_slice", lhs: s.dtype(), rhs: T::DTYPE })?;
            return Ok(f(&data[r]));
        }
        let v = self.to_vec::<T>()?;
        Ok(f(&v))
    }

    /// Overwrites the elements with those of `src` (same shape and dtype).
    pub fn assign_(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "assign_",
                lhs: Box::new(self.shape().clone()),
                rhs: Box::new(src.shape().clone()),
            });
        }
        if src.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch { op: "assign_", lhs: self.dtype(), rhs: src.dtype() });
        }
        let fresh = src.dense()?.storage().clone();
        self.update_storage(fresh)
    }

    fn update_storage(&self, new: Storage) -> Result<()> {
        let mut s = self.0.storage.data.write();
        if self.layout().contiguous_range() != Some(0..s.len()) || new.len() != s.len() {
            return crate::error::invalid("assign_", "the tensor must own all of its storage contiguously");
        }
        self.0.storage.dtype.store(new.dtype() as u8, Ordering::Relaxed);
        self.0.storage.version.fetch_add(1, Ordering::Relaxed);
        *s = new;
        Ok(())
    }

    /// Converts the elements to `dtype` in place, like PyTorch's `module.double()`: every handle
    /// and view of this storage sees the new dtype. The tensor must own its whole storage
    /// contiguously (a parameter or a buffer); use it between steps, never inside a graph.
    pub fn cast_(&self, dtype: DType) -> Result<()> {
        let mut s = self.0.storage.data.write();
        if s.dtype() == dtype {
            return Ok(());
        }
        if self.layout().contiguous_range() != Some(0..s.len()) {
            return crate::error::invalid("cast_", "the tensor must own all of its storage contiguously");
        }
        let converted = s.to_dtype(&Layout::contiguous(Shape::from(s.len())), dtype)?;
        *s = converted;
        self.0.storage.dtype.store(dtype as u8, Ordering::Relaxed);
        self.0.storage.version.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The same values in another dtype (the gradient converts back).
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let storage = self.storage().to_dtype(self.layout(), dtype)?;
        let out = Tensor::from_storage(storage, self.shape().clone(), self.device());
        if dtype.is_float() && self.dtype().is_float() {
            Ok(out.with_op(|| Op::ToDType(self.clone()), &[self]))
        } else {
            Ok(out)
        }
    }

    /// A contiguous tensor with the same values (`self` when already contiguous).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let storage = self.storage().copy_strided(self.layout())?;
        let out = Tensor::from_storage(storage, self.shape().clone(), self.device());
        Ok(out.with_op(|| Op::Reshape(self.clone()), &[self]))
    }

    /// This tensor when its storage holds exactly its elements in row-major order, else a copy
    /// that does. For kernels that read a whole storage without a layout: `contiguous` is not
    /// enough there, since a contiguous view (a narrow of the first dimension) can start at an
    /// offset into a larger storage.
    pub(crate) fn dense(&self) -> Result<Tensor> {
        if self.layout().contiguous_range() == Some(0..self.storage().len()) {
            Ok(self.clone())
        } else {
            self.deep_clone()
        }
    }

    /// A copy with its own storage (what a parameter or an optimizer buffer should start as).
    pub fn deep_clone(&self) -> Result<Tensor> {
        let storage = self.storage().copy_strided(self.layout())?;
        Ok(Tensor::from_storage(storage, self.shape().clone(), self.device()))
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{}; {:?}", self.shape(), self.dtype())?;
        if let Ok(v) = self.to_f64_vec() {
            let shown: Vec<String> = v.iter().take(8).map(|x| format!("{x:.6}")).collect();
            write!(f, "; {}{}", shown.join(", "), if v.len() > 8 { ", …" } else { "" })?;
        }
        write!(f, "]")
    }
}
