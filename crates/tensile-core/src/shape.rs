//! Shapes, layouts and dimension arguments.
//!
//! A [`Layout`] is a shape plus per-dimension strides (in elements) and an offset into the
//! storage. Views (transpose, permute, narrow, broadcast, reshape of contiguous data) only make a
//! new layout over the same storage; kernels read through the layout. Broadcast dimensions have
//! stride 0. Strides are unsigned: tensile has no negative-step views (flip copies).

use smallvec::SmallVec;

use crate::error::{Error, Result};

/// Per-dimension numbers (sizes, strides) kept inline up to this rank. A training step makes
/// and drops hundreds of shapes and layouts; inline, they cost no allocation.
const INLINE_RANK: usize = 5;
type DimVec = SmallVec<[usize; INLINE_RANK]>;

/// A `DimVec` of `len` numbers written by `fill`, through a plain array when they fit inline:
/// filling the small vector through its own accessors cost more than the work (2.5% of a W3
/// step for the strides alone).
#[inline(always)]
fn filled(len: usize, fill: impl FnOnce(&mut [usize])) -> DimVec {
    if len > INLINE_RANK {
        let mut v = DimVec::from_elem(0, len);
        fill(&mut v);
        return v;
    }
    let mut buf = [0; INLINE_RANK];
    fill(&mut buf[..len]);
    DimVec::from_buf_and_len(buf, len)
}

/// The sizes of a tensor's dimensions, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(DimVec);

impl Shape {
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(DimVec::from_slice(&dims))
    }
    /// The shape of a scalar (rank 0, one element).
    pub fn scalar() -> Self {
        Shape(DimVec::new())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar).
    pub fn elem_count(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major (C order) strides for this shape.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        self.contiguous_strides_inline().into_vec()
    }
    fn contiguous_strides_inline(&self) -> DimVec {
        let dims = self.dims();
        filled(dims.len(), |strides| {
            let mut acc = 1;
            for (s, &d) in strides.iter_mut().zip(dims).rev() {
                *s = acc;
                acc *= d;
            }
        })
    }

    /// The NumPy broadcast of two shapes: align trailing dimensions; each pair must be equal or
    /// contain a 1.
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        if a == b {
            return Ok(a.clone());
        }
        let rank = a.rank().max(b.rank());
        let mut fits = true;
        let out = filled(rank, |out| {
            for (i, o) in out.iter_mut().enumerate() {
                let da = if i < rank - a.rank() { 1 } else { a.0[i - (rank - a.rank())] };
                let db = if i < rank - b.rank() { 1 } else { b.0[i - (rank - b.rank())] };
                fits &= da == db || da == 1 || db == 1;
                *o = if da == 1 { db } else { da };
            }
        });
        if !fits {
            return Err(Error::Broadcast { op, lhs: Box::new(a.clone()), rhs: Box::new(b.clone()) });
        }
        Ok(Shape(out))
    }
}

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape::new(v)
    }
}
impl From<&Vec<usize>> for Shape {
    fn from(v: &Vec<usize>) -> Self {
        Shape(DimVec::from_slice(v))
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(DimVec::from_slice(v))
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(DimVec::from_slice(&v))
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape::scalar()
    }
}
impl From<usize> for Shape {
    fn from(d: usize) -> Self {
        Shape::from([d])
    }
}
impl From<(usize, usize)> for Shape {
    fn from((a, b): (usize, usize)) -> Self {
        Shape::from([a, b])
    }
}
impl From<(usize, usize, usize)> for Shape {
    fn from((a, b, c): (usize, usize, usize)) -> Self {
        Shape::from([a, b, c])
    }
}
impl From<(usize, usize, usize, usize)> for Shape {
    fn from((a, b, c, d): (usize, usize, usize, usize)) -> Self {
        Shape::from([a, b, c, d])
    }
}

/// How a tensor's elements sit in its storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: DimVec,
    offset: usize,
}

impl Layout {
    /// A row-major layout starting at `offset`.
    pub fn contiguous_at(shape: Shape, offset: usize) -> Self {
        let strides = shape.contiguous_strides_inline();
        Layout { shape, strides, offset }
    }
    pub fn contiguous(shape: Shape) -> Self {
        Self::contiguous_at(shape, 0)
    }
    pub fn new(shape: Shape, strides: &[usize], offset: usize) -> Self {
        debug_assert_eq!(shape.rank(), strides.len());
        Layout { shape, strides: DimVec::from_slice(strides), offset }
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn elem_count(&self) -> usize {
        self.shape.elem_count()
    }

    /// Whether the elements are in row-major order with no gaps (dimensions of size 1 may carry
    /// any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.shape.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// Whether the elements fill `offset..offset + n` with no gaps and no repeats, in any order:
    /// a permutation of a contiguous layout (a transposed matrix, a permuted tensor).
    pub fn is_dense(&self) -> bool {
        if self.elem_count() == 0 {
            return true;
        }
        let mut dims: SmallVec<[(usize, usize); INLINE_RANK]> =
            self.shape.dims().iter().zip(&self.strides).map(|(&d, &s)| (s, d)).filter(|&(_, d)| d != 1).collect();
        dims.sort_unstable();
        let mut acc = 1;
        for (s, d) in dims {
            if s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }

    /// The storage range `offset..offset + n` when contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous().then(|| self.offset..self.offset + self.elem_count())
    }

    /// The layout seen when broadcasting to `target` (stride 0 on new or size-1 dimensions).
    pub fn broadcast_to(&self, op: &'static str, target: &Shape) -> Result<Layout> {
        let (r, tr) = (self.shape.rank(), target.rank());
        let err = || Error::Broadcast { op, lhs: Box::new(self.shape.clone()), rhs: Box::new(target.clone()) };
        if r > tr {
            return Err(err());
        }
        let mut fits = true;
        let strides = filled(tr, |strides| {
            for (i, stride) in strides.iter_mut().enumerate().skip(tr - r) {
                let d = self.shape.0[i - (tr - r)];
                fits &= d == target.0[i] || d == 1;
                *stride = if d == 1 { 0 } else { self.strides[i - (tr - r)] };
            }
        });
        if !fits {
            return Err(err());
        }
        Ok(Layout { shape: target.clone(), strides, offset: self.offset })
    }

    /// The layout with dimensions reordered: new dimension `i` is old dimension `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Layout {
        let dims = filled(perm.len(), |d| d.iter_mut().zip(perm).for_each(|(d, &p)| *d = self.shape.0[p]));
        let strides = filled(perm.len(), |s| s.iter_mut().zip(perm).for_each(|(s, &p)| *s = self.strides[p]));
        Layout { shape: Shape(dims), strides, offset: self.offset }
    }

    /// The sub-range `start..start + len` of dimension `dim`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut dims = self.shape.0.clone();
        dims[dim] = len;
        Layout { shape: Shape(dims), strides: self.strides.clone(), offset: self.offset + start * self.strides[dim] }
    }

    /// The layout of the rows (all dimensions but the last): its `r`-th offset is where row `r`
    /// starts. Rank 0 stays rank 0.
    pub fn rows(&self) -> Layout {
        let r = self.shape.rank().saturating_sub(1);
        Layout::new(Shape::from(&self.shape.dims()[..r]), &self.strides[..r], self.offset)
    }

    /// Storage offsets of every element in row-major order, starting at element `start`.
    pub fn offsets_from(&self, start: usize) -> StridedOffsets<'_> {
        StridedOffsets::new(self, start)
    }
}

/// Iterator over the storage offsets of a layout's elements in row-major order. Used by the
/// general (non-contiguous) paths of the kernels.
pub struct StridedOffsets<'a> {
    dims: &'a [usize],
    strides: &'a [usize],
    index: DimVec,
    next: usize,
    remaining: usize,
}

impl<'a> StridedOffsets<'a> {
    fn new(layout: &'a Layout, start: usize) -> Self {
        let dims = layout.shape.dims();
        let n = layout.elem_count();
        let mut index = DimVec::from_elem(0, dims.len());
        let mut rem = start.min(n);
        let mut next = layout.offset;
        for i in (0..dims.len()).rev() {
            if dims[i] == 0 {
                break;
            }
            index[i] = rem % dims[i];
            rem /= dims[i];
            next += index[i] * layout.strides[i];
        }
        StridedOffsets { dims, strides: &layout.strides, index, next, remaining: n.saturating_sub(start) }
    }
}

impl Iterator for StridedOffsets<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let out = self.next;
        for i in (0..self.dims.len()).rev() {
            self.index[i] += 1;
            if self.index[i] < self.dims[i] {
                self.next += self.strides[i];
                break;
            }
            self.next -= (self.index[i] - 1) * self.strides[i];
            self.index[i] = 0;
        }
        Some(out)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// A dimension argument: `usize` counts from the front, negative `i32`/`i64`/`isize` from the
/// back (`-1` is the last dimension), as in PyTorch.
pub trait Dim: Copy {
    fn to_index(self, op: &'static str, rank: usize) -> Result<usize>;
}

impl Dim for usize {
    fn to_index(self, op: &'static str, rank: usize) -> Result<usize> {
        if self < rank { Ok(self) } else { Err(Error::DimOutOfRange { op, dim: self as i64, rank }) }
    }
}

macro_rules! signed_dim {
    ($t:ty) => {
        impl Dim for $t {
            fn to_index(self, op: &'static str, rank: usize) -> Result<usize> {
                let d = self as i64;
                let r = rank as i64;
                let i = if d < 0 { d + r } else { d };
                if (0..r).contains(&i) { Ok(i as usize) } else { Err(Error::DimOutOfRange { op, dim: d, rank }) }
            }
        }
    };
}
signed_dim!(i32);
signed_dim!(i64);
signed_dim!(isize);

/// One or several dimensions (for reductions): a single [`Dim`], a slice, an array or a `Vec`.
pub trait Dims {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>>;
}

fn check_unique(op: &'static str, mut v: Vec<usize>) -> Result<Vec<usize>> {
    v.sort_unstable();
    for w in v.windows(2) {
        if w[0] == w[1] {
            return Err(Error::DuplicateDim { op, dim: w[0] });
        }
    }
    Ok(v)
}

impl<D: Dim> Dims for D {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        Ok(vec![self.to_index(op, rank)?])
    }
}
impl<D: Dim> Dims for &[D] {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        let v = self.iter().map(|d| d.to_index(op, rank)).collect::<Result<Vec<_>>>()?;
        check_unique(op, v)
    }
}
impl<D: Dim, const N: usize> Dims for [D; N] {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        (&self[..]).to_indices(op, rank)
    }
}
impl<D: Dim, const N: usize> Dims for &[D; N] {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        (&self[..]).to_indices(op, rank)
    }
}
impl<D: Dim> Dims for Vec<D> {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        (&self[..]).to_indices(op, rank)
    }
}
impl<D: Dim> Dims for &Vec<D> {
    fn to_indices(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        (&self[..]).to_indices(op, rank)
    }
}

/// Every dimension of the tensor (a full reduction).
#[derive(Clone, Copy, Debug)]
pub struct All;
impl Dims for All {
    fn to_indices(&self, _op: &'static str, rank: usize) -> Result<Vec<usize>> {
        Ok((0..rank).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row-major strides and permutations, for ranks kept inline and for ranks that spill to the
    /// heap: each stride is the product of the later sizes, and a permuted layout takes size
    /// and stride `i` from dimension `perm[i]`.
    #[test]
    fn strides_and_permutations_at_every_rank() {
        for rank in 0..=INLINE_RANK + 2 {
            let dims: Vec<usize> = (0..rank).map(|i| i + 2).collect();
            let l = Layout::contiguous_at(Shape::from(&dims[..]), 7);
            let want: Vec<usize> = (0..rank).map(|i| dims[i + 1..].iter().product()).collect();
            assert_eq!(l.strides(), &want[..], "rank {rank}");
            assert_eq!(Shape::from(&dims[..]).contiguous_strides(), want, "rank {rank}");
            let perm: Vec<usize> = (0..rank).rev().collect();
            let p = l.permute(&perm);
            assert_eq!(p.dims(), &perm.iter().map(|&i| dims[i]).collect::<Vec<_>>()[..], "rank {rank}");
            assert_eq!(p.strides(), &perm.iter().map(|&i| want[i]).collect::<Vec<_>>()[..], "rank {rank}");
            assert_eq!(p.offset(), 7);
        }
    }

    #[test]
    fn broadcast_follows_numpy() {
        let s = |v: &[usize]| Shape::from(v);
        assert_eq!(Shape::broadcast("t", &s(&[3, 1, 5]), &s(&[4, 1])).unwrap(), s(&[3, 4, 5]));
        assert_eq!(Shape::broadcast("t", &s(&[]), &s(&[2, 3])).unwrap(), s(&[2, 3]));
        assert!(Shape::broadcast("t", &s(&[3]), &s(&[4])).is_err());
    }

    #[test]
    fn strided_offsets_walk_a_transpose() {
        let l = Layout::contiguous(Shape::from((2, 3))).permute(&[1, 0]);
        assert_eq!(l.offsets_from(0).collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(l.offsets_from(3).collect::<Vec<_>>(), vec![4, 2, 5]);
        assert!(!l.is_contiguous());
    }

    #[test]
    fn dense_layouts_are_permutations_of_contiguous_ones() {
        let c = Layout::contiguous(Shape::from((2, 3, 4)));
        assert!(c.is_dense());
        assert!(c.permute(&[2, 0, 1]).is_dense());
        assert!(c.narrow(0, 1, 1).is_dense(), "one whole slab at an offset");
        assert!(!c.narrow(2, 0, 3).is_dense(), "gaps between rows");
        assert!(!c.broadcast_to("t", &Shape::from((5, 2, 3, 4))).unwrap().is_dense(), "repeats");
        assert!(Layout::contiguous(Shape::from((5, 0))).permute(&[1, 0]).is_dense(), "empty");
    }

    #[test]
    fn rows_start_where_each_row_of_a_view_starts() {
        let l = Layout::contiguous(Shape::from((2, 3, 4))).permute(&[1, 0, 2]).narrow(2, 1, 2);
        assert_eq!(l.rows().offsets_from(0).collect::<Vec<_>>(), vec![1, 13, 5, 17, 9, 21]);
    }

    #[test]
    fn negative_dims_count_from_the_back() {
        assert_eq!((-1i32).to_index("t", 3).unwrap(), 2);
        assert!((-4i32).to_index("t", 3).is_err());
        assert!([0usize, 0].to_indices("t", 2).is_err());
    }
}
