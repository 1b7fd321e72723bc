"""Reference values for tests/attention.rs, from torch.nn.MultiheadAttention and
torch.nn.TransformerEncoderLayer (batch_first=True, dropout 0).

Every parameter (in PyTorch's named_parameters order, index p) and the input are filled with a
formula the Rust test repeats: element k of tensor p is 0.3 * sin(1.3 k + 0.7 p + 0.1), plus 1
for layer-norm weights (so they stay near PyTorch's initial ones); the input x is
sin(0.9 k + 0.5).

Run: python tests/reference/attention.py  (prints Rust arrays to paste into the test)
"""
import math

import torch


def fill(t, f):
    flat = torch.tensor([f(k) for k in range(t.numel())], dtype=torch.float64)
    return flat.to(torch.float32).reshape(t.shape)


def set_weights(m):
    with torch.no_grad():
        for p, (name, w) in enumerate(m.named_parameters()):
            shift = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0
            w.copy_(fill(w, lambda k, p=p, s=shift: s + 0.3 * math.sin(1.3 * k + 0.7 * p + 0.1)))


def show(name, t):
    vals = ", ".join(f"{v:.7}" for v in t.detach().flatten().tolist())
    print(f"const {name}: [f32; {t.numel()}] = [{vals}];")


B, T, E, NH = 2, 3, 4, 2
x = fill(torch.empty(B, T, E), lambda k: math.sin(0.9 * k + 0.5))
causal = torch.nn.Transformer.generate_square_subsequent_mask(T)
# Batch 1 ignores its last key.
padding = torch.tensor([[False, False, False], [False, False, True]])

mha = torch.nn.MultiheadAttention(E, NH, batch_first=True)
set_weights(mha)
show("MHA_OUT", mha(x, x, x, need_weights=False)[0])
show("MHA_CAUSAL_OUT", mha(x, x, x, attn_mask=causal, need_weights=False)[0])
show("MHA_PADDED_OUT", mha(x, x, x, key_padding_mask=padding, need_weights=False)[0])

layer = torch.nn.TransformerEncoderLayer(E, NH, dim_feedforward=6, dropout=0.0, norm_first=True, batch_first=True)
set_weights(layer)
layer.eval()
show("ENCODER_PRE_NORM_OUT", layer(x))
show("ENCODER_PRE_NORM_CAUSAL_OUT", layer(x, src_mask=causal, is_causal=True))

layer = torch.nn.TransformerEncoderLayer(
    E, NH, dim_feedforward=6, dropout=0.0, activation="gelu", norm_first=False, batch_first=True
)
set_weights(layer)
layer.eval()
show("ENCODER_POST_NORM_GELU_PADDED_OUT", layer(x, src_key_padding_mask=padding))
print("# parameter order:", [n for n, _ in layer.named_parameters()])
