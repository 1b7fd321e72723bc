"""tensile against each peer, per workload, with the targets. Usage: python3 bench/compare.py RAW.jsonl [MORE.jsonl ...]

Reads `RESULT` objects (one JSON object per line, as run_all.sh and bench/side_by_side.sh store them) and prints
Markdown tables: for each workload tensile's figure, its target and whether it is met, and each peer's figure with the
speed ratio tensile / peer (peer time / tensile time, or tensile GFLOP/s / peer GFLOP/s): above 1 means tensile is
faster. Rows whose `peer` starts with "tensile" are tensile's; when a key appears twice, the last line wins.
Standard library only.
"""
import json
import sys

TRAIN = [  # work, metric key, unit, label, target (upper bound on the metric) or None
    ("w1", "epoch_s", "s/epoch", "W1 MLP 784-512-256-10", 0.8),
    ("w2", "epoch_s", "s/epoch", "W2 CNN", 1.2),
    ("w3", "us_per_step", "us/step", "W3 MLP 16-64-64-1", 20.0),
    ("w5gru", "epoch_s", "s/epoch", "W5 GRU", None),    # target: faster than PyTorch
    ("w5tf", "epoch_s", "s/epoch", "W5 transformer", None),
]
RATIO = [  # work, metric key, unit, label, least speed ratio, against: "fastest" peer or "torch" (its fastest run)
    ("w1", "epoch_s", "s/epoch", "W1", 1.5, "fastest"),
    ("w2", "epoch_s", "s/epoch", "W2", 2.0, "torch"),
    ("w3", "us_per_step", "us/step", "W3", 5.0, "fastest"),
]
MEMORY_WORKS = ["w1", "w2", "w3", "w5gru", "w5tf"]   # peak resident memory at most the smallest peer's
THREAD_TARGET = 1.8          # 2 threads at least this much faster than 1, on W1 and W2
SCALING_TOLERANCE = 0.10     # epoch time at k times the rows within 10% of k times the time
GEMM_TARGET = 0.9            # n = 1024 and 2048 with 2 threads: at least 90% of torch.mm


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if line.startswith("RESULT "):
                    line = line[len("RESULT "):]
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"error: {path}, line {number}: not a JSON object ({e.msg} at column {e.colno})")
    return rows


def is_tensile(r):
    return str(r.get("peer", "")).startswith("tensile")


def fmt(x):
    return "-" if x is None else (f"{x:,.0f}" if x >= 1000 else f"{x:.3g}" if x < 10 else f"{x:.1f}")


def met(ok):
    return "-" if ok is None else ("yes" if ok else "**no**")


def last(rows, pred):
    hits = [r for r in rows if pred(r)]
    return hits[-1] if hits else None


def train_table(rows):
    works = [w for w, *_ in TRAIN]
    peers = list(dict.fromkeys(r["peer"] for r in rows if r.get("work") in works and not is_tensile(r)))
    out = ["| workload | metric | tensile | target | met | " + " | ".join(peers) + " |",
           "|---|---|---:|---|---|" + "---:|" * len(peers)]
    for work, key, unit, label, bound in TRAIN:
        t = last(rows, lambda r: r.get("work") == work and is_tensile(r))
        tv = t.get(key) if t else None
        cells = []
        for p in peers:
            r = last(rows, lambda r: r.get("work") == work and r.get("peer") == p)
            pv = r.get(key) if r else None
            cells.append("-" if pv is None else fmt(pv) + (f" ({pv / tv:.2f}x)" if tv else ""))
        if bound is not None:
            target, ok = f"<= {fmt(bound)}", (None if tv is None else tv <= bound)
        else:
            torch = [r.get(key) for r in rows if r.get("work") == work and str(r.get("peer", "")).startswith("torch")]
            best = min(torch) if torch else None
            target = "faster than torch" + (f" ({fmt(best)})" if best else "")
            ok = None if tv is None or best is None else tv < best
        if t is None and not any(c != "-" for c in cells):
            continue
        out.append(f"| {label} | {unit} | {fmt(tv)} | {target} | {met(ok)} | " + " | ".join(cells) + " |")
    return out


def ratio_table(rows):
    """The targets that are ratios to peers measured in the same run: W1 and W3 against the fastest peer that ran,
    W2 against PyTorch's faster run. The ratio is the peer's time over tensile's."""
    out = ["| target | measured | met |", "|---|---|---|"]
    for work, key, unit, label, least, against in RATIO:
        t = last(rows, lambda r: r.get("work") == work and is_tensile(r))
        tv = t.get(key) if t else None
        peers = {}
        for r in rows:
            if r.get("work") == work and not is_tensile(r) and isinstance(r.get(key), (int, float)):
                if against == "fastest" or str(r.get("peer", "")).startswith("torch"):
                    peers[r["peer"]] = r[key]   # the last line of a peer wins
        if not tv or not peers:
            continue
        peer, pv = min(peers.items(), key=lambda kv: kv[1])
        ratio = pv / tv
        who = "the fastest peer that ran" if against == "fastest" else "PyTorch"
        # W2's target reads "over 2x", the others "at least"
        ok = ratio > least if against == "torch" else ratio >= least
        word = "over" if against == "torch" else "at least"
        out.append(f"| {label} {word} {least:g}x faster than {who} | {ratio:.2f}x: tensile {fmt(tv)} {unit}, "
                   f"{peer} {fmt(pv)} | {met(ok)} |")
    return out


def memory_table(rows):
    """Peak resident memory of each process (data included, the same data for every peer) against the smallest
    peer's on the same workload."""
    out = ["| workload | tensile MiB | smallest peer, MiB | target | met |", "|---|---:|---|---|---|"]
    for work in MEMORY_WORKS:
        t = last(rows, lambda r: r.get("work") == work and is_tensile(r) and isinstance(r.get("rss_mib"), (int, float)))
        peers = {r["peer"]: r["rss_mib"] for r in rows
                 if r.get("work") == work and not is_tensile(r) and isinstance(r.get("rss_mib"), (int, float))}
        if t is None or not peers:
            continue
        peer, pv = min(peers.items(), key=lambda kv: kv[1])
        label = next((lab for w, _, _, lab, _ in TRAIN if w == work), work)
        out.append(f"| {label} | {t['rss_mib']:.0f} | {peer} {pv:.0f} | <= smallest peer's | "
                   f"{met(t['rss_mib'] <= pv)} |")
    return out


def gemm_table(rows):
    g = [r for r in rows if r.get("work") == "w4"]
    if not g:
        return []
    peers = list(dict.fromkeys(r["peer"] for r in g if not is_tensile(r)))
    out = ["| n | threads | tensile GFLOP/s | target | met | " + " | ".join(peers) + " |",
           "|---:|---:|---:|---|---|" + "---:|" * len(peers)]
    for n, threads in sorted({(r["n"], r["threads"]) for r in g}):
        def at(pred):
            return last(g, lambda r: r["n"] == n and r["threads"] == threads and pred(r))
        t = at(is_tensile)
        tv = t["gflops"] if t else None
        cells = []
        for p in peers:
            r = at(lambda r: r["peer"] == p)
            cells.append("-" if r is None else fmt(r["gflops"]) + (f" ({tv / r['gflops']:.2f}x)" if tv else ""))
        target, ok = "-", None
        if n in (1024, 2048) and threads == 2:
            torch = at(lambda r: str(r["peer"]).startswith("torch"))
            target = f">= {GEMM_TARGET:.0%} of torch.mm"
            ok = None if tv is None or torch is None else tv >= GEMM_TARGET * torch["gflops"]
        out.append(f"| {n} | {threads} | {fmt(tv)} | {target} | {met(ok)} | " + " | ".join(cells) + " |")
    return out


def check_table(rows):
    out = []
    for r in rows:
        work = str(r.get("work", ""))
        if work.startswith("threads_") and is_tensile(r):
            out.append(f"| {work[8:].upper()}: 1 vs 2 threads | 1 thread {r['t1_s']:.3f} s/epoch, 2 threads "
                       f"{r['t2_s']:.3f} s/epoch: {r['speedup']:.2f}x | >= {THREAD_TARGET}x | "
                       f"{met(r['speedup'] >= THREAD_TARGET)} |")
        elif work.startswith("scaling_") and is_tensile(r):
            ok = abs(r["ratio_over_factor"] - 1) <= SCALING_TOLERANCE
            out.append(f"| {work[8:].upper()}: {r['factor']}x the rows | {r['rows']} rows {r['t_s']:.3f} s, "
                       f"{r['rows_scaled']} rows {r['t_scaled_s']:.3f} s: {r['ratio']:.2f}x the time "
                       f"({r['ratio_over_factor']:.2f} of linear) | within {SCALING_TOLERANCE:.0%} of linear | "
                       f"{met(ok)} |")
    return ["| check | measured | target | met |", "|---|---|---|---|"] + out if out else []


def limit_table(rows):
    """The f32 limit `tensile-bench peak` measured, and tensile's matrix-product rates as a share of it."""
    peaks = {r["threads"]: r for r in rows if r.get("work") == "peak" and is_tensile(r)}
    if not peaks:
        return []
    out = ["| measured | GFLOP/s | share of the peak with as many threads |", "|---|---:|---:|"]
    for threads, r in sorted(peaks.items()):
        out.append(f"| f32 multiply-add peak, {threads} thread(s) ({r.get('isa', '?')}) | {r['peak_gflops']:.1f} | - |")

    def share(threads, gflops):
        p = peaks.get(threads)
        return f"{gflops / p['peak_gflops']:.0%}" if p else "-"
    for work, _, _, label, _ in TRAIN:
        t = last(rows, lambda r: r.get("work") == work and is_tensile(r) and r.get("model_gflops") is not None)
        if t:
            out.append(f"| {label}: matrix products, {t['threads']} threads | {t['model_gflops']:.1f} | "
                       f"{share(t['threads'], t['model_gflops'])} |")
    for r in rows:
        if r.get("work") == "w4" and is_tensile(r):
            out.append(f"| W4 n = {r['n']}, {r['threads']} thread(s) | {r['gflops']:.1f} | {share(r['threads'], r['gflops'])} |")
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().split("\n")[0])
    rows = load(sys.argv[1:])
    sections = [("Training workloads (in brackets: speed ratio tensile / peer, above 1 = tensile faster)",
                 train_table(rows)),
                ("Targets that are ratios to the peers in this run", ratio_table(rows)),
                ("W4 square f32 GEMM (in brackets: tensile / peer)", gemm_table(rows)),
                ("Peak resident memory (data included; every peer reads the same data)", memory_table(rows)),
                ("Checks", check_table(rows)),
                ("How close to the machine's limit (tensile-bench peak)", limit_table(rows))]
    loads = [r["load1"] for r in rows if isinstance(r.get("load1"), (int, float))]
    for title, lines in sections:
        if len(lines) > 2:
            print(f"### {title}\n")
            print("\n".join(lines) + "\n")
    if loads:
        print(f"1-minute load average after the runs: {min(loads):.2f}-{max(loads):.2f} "
              f"(about the thread count means nothing else ran).")


if __name__ == "__main__":
    main()
