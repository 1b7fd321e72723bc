"""Prints the scalars TensorBoard itself reads from a directory of event files, as JSON.

Usage: python3 tensorboard_read.py <dir>

Output: {"tag": [[step, value], ...], ...} in TensorBoard's order. Non-finite values are written
as the strings "NaN", "inf", "-inf" (JSON has no literal for them). Used by
crates/tensile-train/tests/tensorboard.rs to check event files with TensorBoard's own reader
(CRC checks, protobuf decoding, file merging and restart purging included).
"""

import json
import math
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def number(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def main():
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
    acc.Reload()
    out = {tag: [[e.step, number(e.value)] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
