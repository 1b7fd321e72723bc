"""Reference values for tests/recurrent.rs, from torch.nn.GRU and torch.nn.LSTM.

Every parameter (in PyTorch's named_parameters order, index p) and the inputs are filled with a
formula the Rust test repeats: element k of tensor p is 0.3 * sin(1.3 k + 0.7 p + 0.1); the input
x is sin(0.9 k + 0.5) and initial states are 0.5 * cos(0.6 k + s) (s = 0 for h0, 1 for c0).

Run: python tests/reference/rnn.py  (prints Rust arrays to paste into the test)
"""
import math

import torch


def fill(t, f):
    flat = torch.tensor([f(k) for k in range(t.numel())], dtype=torch.float64)
    return flat.to(torch.float32).reshape(t.shape)


def set_weights(m):
    with torch.no_grad():
        for p, (_, w) in enumerate(m.named_parameters()):
            w.copy_(fill(w, lambda k, p=p: 0.3 * math.sin(1.3 * k + 0.7 * p + 0.1)))


def x_input(shape):
    return fill(torch.empty(shape), lambda k: math.sin(0.9 * k + 0.5))


def state(shape, s):
    return fill(torch.empty(shape), lambda k: 0.5 * math.cos(0.6 * k + s))


def show(name, t):
    vals = ", ".join(f"{v:.7}" for v in t.detach().flatten().tolist())
    print(f"const {name}: [f32; {t.numel()}] = [{vals}];")


B, T, D, H = 2, 3, 2, 3
x = x_input((B, T, D))

# Case A: two layers, bidirectional, given initial state.
gru = torch.nn.GRU(D, H, num_layers=2, bidirectional=True, batch_first=True)
set_weights(gru)
h0 = state((4, B, H), 0)
out, h_n = gru(x, h0)
show("GRU_BI_OUT", out)
show("GRU_BI_HN", h_n)

# Case B: one layer, one direction, no biases, zero initial state.
gru = torch.nn.GRU(D, H, bias=False, batch_first=True)
set_weights(gru)
out, h_n = gru(x)
show("GRU_NOBIAS_OUT", out)
show("GRU_NOBIAS_HN", h_n)

lstm = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True, batch_first=True)
set_weights(lstm)
c0 = state((4, B, H), 1)
out, (h_n, c_n) = lstm(x, (h0, c0))
show("LSTM_BI_OUT", out)
show("LSTM_BI_HN", h_n)
show("LSTM_BI_CN", c_n)

lstm = torch.nn.LSTM(D, H, bias=False, batch_first=True)
set_weights(lstm)
out, (h_n, c_n) = lstm(x)
show("LSTM_NOBIAS_OUT", out)
show("LSTM_NOBIAS_HN", h_n)
show("LSTM_NOBIAS_CN", c_n)

# Case C: a sequence longer than the Rust implementation's block of 8 steps (T = 11), so block
# boundaries are crossed in both directions. B = 1, H = 2.
x = x_input((1, 11, D))
gru = torch.nn.GRU(D, 2, num_layers=2, bidirectional=True, batch_first=True)
set_weights(gru)
out, h_n = gru(x)
show("GRU_LONG_OUT", out)
show("GRU_LONG_HN", h_n)
lstm = torch.nn.LSTM(D, 2, bidirectional=True, batch_first=True)
set_weights(lstm)
out, (h_n, c_n) = lstm(x)
show("LSTM_LONG_OUT", out)
show("LSTM_LONG_HN", h_n)
show("LSTM_LONG_CN", c_n)
