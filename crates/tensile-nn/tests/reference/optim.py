"""Reference parameter trajectories for tests/optim.rs, from torch.optim (CPU, f32, for-loop path).

Run: /root/.cache/tensile-ref/bin/python crates/tensile-nn/tests/reference/optim.py
Prints one Rust match arm per case: the parameter after each of the six steps. Lion is not in
torch.optim; it is written out as lucidrains' lion-pytorch `update_fn` does it.
"""

import torch

P0 = [0.5, -1.2, 2.0, -0.03]
GRADS = [
    [0.1, -0.2, 0.3, 0.05],
    [-0.4, 0.25, 0.1, 0.2],
    [0.3, 0.3, -0.5, -0.1],
    [0.05, -0.6, 0.2, 0.4],
    [-0.2, 0.1, 0.7, -0.3],
    [0.15, 0.35, -0.25, 0.6],
]


class Lion(torch.optim.Optimizer):
    """lion-pytorch's Lion (https://github.com/lucidrains/lion-pytorch), single-tensor update."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, lr, wd = p.grad, group["lr"], group["weight_decay"]
                beta1, beta2 = group["betas"]
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                p.data.mul_(1.0 - lr * wd)
                update = exp_avg.clone().mul_(beta1).add(grad, alpha=1.0 - beta1).sign_()
                p.add_(update, alpha=-lr)
                exp_avg.mul_(beta2).add_(grad, alpha=1.0 - beta2)


CASES = {
    "sgd_plain": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adam_wd_amsgrad": lambda p: torch.optim.Adam(
        p, lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=True
    ),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "adamw_amsgrad": lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.85, 0.99), weight_decay=0.05, amsgrad=True),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01),
    "rmsprop_centered_momentum_wd": lambda p: torch.optim.RMSprop(
        p, lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05, momentum=0.7, centered=True
    ),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1),
    "adagrad_full": lambda p: torch.optim.Adagrad(
        p, lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.1, eps=1e-8
    ),
    "lion": lambda p: Lion(p, lr=0.01),
    "lion_wd": lambda p: Lion(p, lr=0.02, weight_decay=0.5),
}

for name, make in CASES.items():
    p = torch.tensor(P0, dtype=torch.float32, requires_grad=True)
    opt = make([p])
    rows = []
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        rows.append("[" + ", ".join(f"{v:.9e}" for v in p.detach().tolist()) + "]")
    print(f'        "{name}" => [\n            ' + ",\n            ".join(rows) + ",\n        ],")
