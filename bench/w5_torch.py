"""W5 in PyTorch, the reference tensile's W5 is compared with.

Usage: python bench/w5_torch.py w5gru|w5tf [--fused] [--threads N]

- w5gru: x (32, 64 steps, 32 features) -> 1-layer GRU 128 (zero initial state) -> last hidden state -> linear 10.
- w5tf: tokens (32, 64), vocabulary 1000 -> embedding 128 + learned positions -> 2 pre-norm encoder layers
  (d 128, 4 heads, feed-forward 512, exact GELU, no dropout, no final LayerNorm) -> mean over positions -> linear 10.

Both: softmax cross-entropy, Adam lr 1e-3 (--fused: Adam(fused=True)), batch 32, 8,192 sequences (256 steps) per
epoch in file order, no shuffling. Epoch 1 is a warm-up whose per-step losses are recorded; then PEERS_REPS (default 3)
timed epochs. Prints one `RESULT {json}` line in the schema of ../shared/peers/common.py (the same models and protocol
as the peers' torch_bench.py), so tensile-bench's and the peers' lines merge into one table.

Data: the raw little-endian files ../shared/peers/gen_data.py writes, read from $PEERS_DATA, else $PEERS_ROOT/data,
else ~/.cache/tensile-peers/data.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQS, LEN, FEATURES, VOCAB, DIM, BATCH = 8192, 64, 32, 1000, 128, 32


def data_dir():
    if os.environ.get("PEERS_DATA"):
        return os.environ["PEERS_DATA"]
    root = os.environ.get("PEERS_ROOT") or os.path.expanduser("~/.cache/tensile-peers")
    return os.path.join(root, "data")


def read(name, dtype, count):
    path = os.path.join(data_dir(), name)
    if not os.path.exists(path):
        sys.exit(f"error: {path} does not exist. Create the data with `PEERS_DATA={data_dir()} python3 "
                 f"../shared/peers/gen_data.py` from the repository root, or run `bash bench/side_by_side.sh`.")
    a = np.fromfile(path, dtype=dtype)
    if a.size != count:
        sys.exit(f"error: {path} holds {a.size} values, expected {count}; write it again with gen_data.py.")
    return a


class GRUCls(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, DIM, batch_first=True)
        self.fc = nn.Linear(DIM, 10)

    def forward(self, x):  # x: (B, T, 32)
        return self.fc(self.gru(x)[1][-1])


class TinyTF(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, DIM), nn.Embedding(LEN, DIM)
        layer = nn.TransformerEncoderLayer(DIM, 4, 512, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)  # no final LayerNorm
        self.fc = nn.Linear(DIM, 10)

    def forward(self, t):  # t: (B, T) token ids
        h = self.tok(t) + self.pos.weight[: t.shape[1]]
        return self.fc(self.enc(h).mean(dim=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", choices=["w5gru", "w5tf"])
    ap.add_argument("--fused", action="store_true", help="Adam(fused=True) instead of the default Adam")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    reps = int(os.environ.get("PEERS_REPS", "3"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    y = torch.from_numpy(read(f"{args.work}_y.i32", "<i4", SEQS).astype(np.int64))
    if args.work == "w5gru":
        x = torch.from_numpy(read("w5gru_x.f32", "<f4", SEQS * LEN * FEATURES).reshape(SEQS, LEN, FEATURES))
        model = GRUCls()
    else:
        x = torch.from_numpy(read("w5tf_x.i32", "<i4", SEQS * LEN).reshape(SEQS, LEN).astype(np.int64))
        model = TinyTF()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True if args.fused else None)
    steps = SEQS // BATCH

    def epoch(record):
        losses = []
        for i in range(steps):
            xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if record:
                losses.append(loss.item())
        return losses

    losses = epoch(True)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        epoch(False)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print("RESULT " + json.dumps(dict(
        peer=f"torch {torch.__version__}" + (" fused-Adam" if args.fused else ""), work=args.work,
        epoch_s=round(med, 6), min_s=round(min(times), 6), max_s=round(max(times), 6), steps=steps, batch=BATCH,
        samples_per_s=round(steps * BATCH / med, 1), us_per_step=round(med / steps * 1e6, 2),
        loss_ep1_mean=round(float(np.mean(losses)), 4), loss_ep1_last20=round(float(np.mean(losses[-20:])), 4),
        threads=args.threads)), flush=True)


if __name__ == "__main__":
    main()
