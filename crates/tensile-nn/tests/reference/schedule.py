"""Reference learning rates for tests/schedule.rs, from torch.optim.lr_scheduler.

Run: /root/.cache/tensile-ref/bin/python crates/tensile-nn/tests/reference/schedule.py
Prints one Rust match arm per schedule: the rate at the steps in STEPS (the rate used by the
step-th step, i.e. after `step` calls to scheduler.step()), and the rates of the plateau runs
after each metric.
"""

import warnings

import torch
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")
BASE = 0.1
STEPS = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 99]


def opt():
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)


CASES = {
    "step": lambda o: S.StepLR(o, step_size=7, gamma=0.5),
    "multi_step": lambda o: S.MultiStepLR(o, milestones=[10, 25, 25, 60], gamma=0.3),
    "exponential": lambda o: S.ExponentialLR(o, gamma=0.97),
    "cosine": lambda o: S.CosineAnnealingLR(o, T_max=40, eta_min=0.001),
    "warm_restarts_mult2": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.0005),
    "warm_restarts_mult1": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=15),
    "one_cycle": lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=100, cycle_momentum=False),
    "one_cycle_three_phase_linear": lambda o: S.OneCycleLR(
        o,
        max_lr=0.5,
        total_steps=100,
        pct_start=0.25,
        anneal_strategy="linear",
        div_factor=10.0,
        final_div_factor=100.0,
        three_phase=True,
        cycle_momentum=False,
    ),
    "warmup_cosine": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, total_iters=5), S.CosineAnnealingLR(o, T_max=20)], milestones=[5]
    ),
}

for name, make in CASES.items():
    o = opt()
    s = make(o)
    lrs = []
    for t in range(100):
        lrs.append(o.param_groups[0]["lr"])
        o.step()
        s.step()
    picked = ", ".join(f"({t}, {lrs[t]!r})" for t in STEPS)
    print(f'        "{name}" => vec![{picked}],')

METRICS = [1.0, 0.9, 0.85, 0.849, 0.86, 0.8499, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.79, 0.79, 0.79, 0.79]
PLATEAU = {
    "plateau_min_rel": dict(mode="min", factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=0.02),
    "plateau_max_abs": dict(mode="max", factor=0.3, patience=1, threshold=0.05, threshold_mode="abs", cooldown=0),
}
for name, kw in PLATEAU.items():
    o = opt()
    s = S.ReduceLROnPlateau(o, **kw)
    lrs = []
    for m in METRICS:
        o.step()
        s.step(m)
        lrs.append(o.param_groups[0]["lr"])
    print(f'        "{name}" => vec![{", ".join(repr(x) for x in lrs)}],')
