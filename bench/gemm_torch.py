"""W4 in PyTorch: square f32 torch.mm, n = 256, 1024, 2048, with 1 and 2 threads.

Usage: python bench/gemm_torch.py

The method of ../shared/peers/gemm_bench.py (one warm-up call, then 5 repetitions of k back-to-back calls with k chosen
so that one repetition takes about 0.25 s; GFLOP/s = 2n^3 k / t; median, min, max), without its threadpoolctl and
NumPy-BLAS parts, so it runs with nothing but torch and numpy installed. One `RESULT {json}` line per (n, threads) in
gemm_bench.py's schema.
"""
import json
import statistics
import time

import numpy as np
import torch


def gflops(n, f):
    t = time.perf_counter()
    f()
    one = time.perf_counter() - t
    k = max(1, min(10000, int(0.25 / max(one, 1e-6))))
    g = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(k):
            f()
        g.append(2 * n ** 3 * k / (time.perf_counter() - t) / 1e9)
    return round(statistics.median(g), 2), round(min(g), 2), round(max(g), 2)


for n in (256, 1024, 2048):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(np.empty_like(a))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        r = gflops(n, lambda: torch.mm(ta, tb, out=tc))
        print("RESULT " + json.dumps(dict(peer=f"torch {torch.__version__} mm", work="w4", n=n, threads=threads,
                                          gflops=r[0], gflops_min=r[1], gflops_max=r[2])), flush=True)
