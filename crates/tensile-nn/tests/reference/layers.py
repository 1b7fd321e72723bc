"""Reference values for crates/tensile-nn/tests/layers.rs (grouped, dilated, strided convolutions).

Run with PyTorch installed: `python layers.py`. Inputs are made by the same closed formulas the
Rust test uses, so no data file is needed; paste the printed numbers into the test.
"""

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def seq(n, a, m, off, scale):
    # ((i * a) mod m - off) / scale for i in 0..n, the same formula as `seq` in layers.rs.
    return torch.tensor([((i * a) % m - off) / scale for i in range(n)])


def show(name, t):
    print(f"{name} shape {list(t.shape)}")
    print(", ".join(f"{v:.10f}" for v in t.flatten().tolist()))


# conv2d: in 4, out 4, groups 2, kernel (2, 2), stride (2, 2), padding (1, 1), dilation (2, 1).
x = seq(1 * 4 * 4 * 5, 7, 11, 5, 4).reshape(1, 4, 4, 5)
w = seq(4 * 2 * 2 * 2, 5, 7, 3, 5).reshape(4, 2, 2, 2)
b = torch.tensor([0.1, -0.2, 0.3, 0.0])
show("conv2d", F.conv2d(x, w, b, stride=(2, 2), padding=(1, 1), dilation=(2, 1), groups=2))

# conv1d: in 4, out 2, groups 2, kernel 3, stride 2, padding 1, dilation 2.
x = seq(2 * 4 * 7, 3, 13, 6, 5).reshape(2, 4, 7)
w = seq(2 * 2 * 3, 4, 9, 4, 3).reshape(2, 2, 3)
b = torch.tensor([0.25, -0.5])
show("conv1d", F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2))
