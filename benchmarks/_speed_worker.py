"""One framework's side of ``bench_speed.py``: a long-lived process that times blocks of steps.

    python benchmarks/_speed_worker.py chainrule|torch|numpy|products WORKLOAD THREADS DIR

Started by ``bench_speed.py`` (never by hand), with the thread and allocator variables already
in its environment. It imports NumPy and exactly one framework (``chainrule`` or ``torch``,
never both; ``numpy``, the MLP step written out in NumPy, and ``products``, its matrix
products alone, import neither), reads the initial weights (``DIR/WORKLOAD-weights.npz``) and
the mini-batches (``DIR/WORKLOAD-x.npy``, ``DIR/WORKLOAD-y.npy``) that the parent wrote, takes
the first steps from those weights (their losses go back to the parent, which compares the
frameworks), warms up, and then answers one JSON line per request line on stdin:

    {"steps": n, "settle": s}   sleep s seconds (the other worker's idle threads go to sleep),
                                one untimed step (this worker's threads wake), then n timed steps;
                                answer {"seconds", "own_ticks", "busy_ticks"}: wall time, this
                                process's CPU time (/proc/self/stat, all threads) and the whole
                                machine's busy CPU time (/proc/stat) during the n steps, in ticks
    {"quit": true}              exit

A step is one training step: forward, loss, backward, SGD update (lr 0.01; momentum 0.9 for
the MNIST-sized workloads), on batch ``k mod K`` at step ``k``. chainrule's MNIST-sized step
is the one ``chainrule train --threads THREADS`` runs (chainrule.train.threads.BatchThreads:
LeNet-5's batches split over the threads, the MLP's products on BLAS's threads and its SGD
momentum folded into back propagation).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _torch_nets as torch_nets  # benchmarks/ is on sys.path: these run as scripts
import numpy as np

FIRST_STEPS = 3  # steps from the initial weights whose losses the parent compares
WARMUP_S = 1.0  # untimed steps before the first block (caches, allocator, thread pools)
CALIBRATE_S = 0.3  # then the time per step is measured, for the parent to size the blocks
LR = 0.01
MOMENTUM = {"mlp": 0.9, "lenet": 0.9, "tiny": 0.0}


def busy_ticks() -> int:
    """CPU time all processes have used, summed over the cores (/proc/stat), in clock ticks."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return user + nice + system + irq + softirq + steal  # guest time is counted in user


def own_ticks() -> int:
    """CPU time of this process, all its threads (utime + stime of /proc/self/stat), in ticks."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


# a framework's (step(x, y) -> loss, array -> its input type, loss -> float)
Built = tuple[Callable[[Any, Any], Any], Callable[[np.ndarray], Any], Callable[[Any], float]]


def build_chainrule(workload: str, weights: dict[str, np.ndarray], threads: int) -> Built:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import chainrule as cr
    from chainrule import models, nn, optim
    from chainrule.backend import tune_allocator
    from chainrule.train.threads import BatchThreads, default_batch_threads

    tune_allocator()  # as `chainrule train` does
    model_name = {"mlp": "mlp", "lenet": "cnn"}.get(workload, "tiny")
    if workload == "mlp":
        model = models.mlp(hidden=800)
    elif workload == "lenet":
        model = models.cnn()
    else:
        model = nn.Sequential(
            nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1)
        )
    model.load_state_dict(weights)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM[workload])
    if workload == "tiny":

        def step(x, y):
            opt.zero_grad()
            loss = cr.mse(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return step, lambda a: cr.tensor(a), lambda loss: float(loss.data)

    # as `chainrule train --threads N` does (--parallel auto): the CNN splits each batch over
    # the N threads, one BLAS thread each; the MLP runs each product on N BLAS threads
    # the MLP's SGD update folded into back propagation (SGD.backward_step), as in one process
    split = BatchThreads(model, opt.params, default_batch_threads(model_name, threads), opt)

    def step(x, y):
        opt.zero_grad()
        loss_sum, _ = split(x, y)  # forward, softmax cross-entropy, backward, update
        return loss_sum / len(y)

    return step, lambda a: a, float


def build_products(workload: str, weights: dict[str, np.ndarray], threads: int) -> Built:
    """The MLP step's matrix products alone, called as chainrule's backend calls them.

    No step of any framework built on NumPy's BLAS can take less time than these products
    (the forward pass's two, the backward pass's three: the input needs no gradient), so
    ``peer's step / products alone`` bounds the ratio any such implementation could reach.
    """
    if workload != "mlp":
        raise SystemExit(f"products alone: only the mlp workload, not {workload!r}")
    w1, w2 = weights["1.weight"], weights["3.weight"]

    def step(x, y):
        x = x.reshape(len(x), -1)
        h = (w1 @ x.T).T  # numpy_kernels.linear: H X^T, the samples as columns
        z = (w2 @ h.T).T
        dh = (w2.T @ z.T).T  # numpy_kernels._linear_vjp, z standing in for the loss gradient
        _dw2 = z.T @ h
        _dw1 = dh.T @ x
        return None

    return step, lambda a: a, lambda loss: float("nan")


def build_numpy(workload: str, weights: dict[str, np.ndarray], threads: int) -> Built:
    """The MLP step written out in NumPy, no engine: the same operations as chainrule's step
    (products called the same way, the fused softmax cross-entropy, the momentum computed into
    v by one GEMM and the weights updated by axpy, through chainrule's backend module loaded
    on its own, so the ``chainrule`` package is never imported). What is left between this and
    chainrule's step is the engine's cost; this against the peer bounds any NumPy framework
    that does not beat these kernels."""
    if workload != "mlp":
        raise SystemExit(f"plain NumPy: only the mlp workload, not {workload!r}")
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "src/chainrule/backend/numpy_updates.py"
    spec = importlib.util.spec_from_file_location("_plain_numpy_updates", path)
    assert spec is not None and spec.loader is not None
    updates = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(updates)
    params = [weights[k] for k in ("1.weight", "1.bias", "3.weight", "3.bias")]
    w1, b1, w2, b2 = params
    if w1.shape[1] != 784 or w2.shape[1] != w1.shape[0]:
        raise SystemExit(f"plain NumPy: a 784-H-10 MLP, got {w1.shape} and {w2.shape}")
    velocity: list[Any] = [None] * 4
    mu = MOMENTUM[workload]
    zero_row = np.zeros(256, dtype=w1.dtype)  # numpy_kernels.relu: maximum against a zero row

    def step(x, y):
        x = x.reshape(len(x), -1)
        rows = np.arange(len(y))
        h = (w1 @ x.T).T
        h += b1
        if h.size % 256 == 0:  # h: F-ordered
            r = np.maximum(h.T.reshape(-1, 256), zero_row).reshape(h.T.shape).T
        else:
            r = np.maximum(h, 0)
        z = (w2 @ r.T).T
        z += b2
        step.correct = int(np.count_nonzero(z.argmax(axis=1) == y))  # as chainrule train counts
        z -= np.maximum.reduce(z, axis=1, keepdims=True)
        z_true = z[rows, y]
        e = np.exp(z, out=z)
        total = np.add.reduce(e, axis=1, keepdims=True)
        loss = -(np.add.reduce(z_true - np.log(total[:, 0])) / len(y))
        e /= total  # p
        g = e * (1 / len(y))
        g[rows, y] -= 1 / len(y)  # de/dz = (p - onehot) / N
        dr = (w2.T @ g.T).T
        dh = dr * (h > 0)
        db1 = np.ones(len(y), dtype=dh.dtype) @ dh  # numpy_kernels._batch_sum
        grads = [updates.Product(dh.T, x), db1, updates.Product(g.T, r), g.sum(axis=0)]
        for i, (h_i, g_i) in enumerate(zip(params, grads, strict=True)):
            velocity[i] = updates.momentum_into(velocity[i], g_i, mu)
            updates.sgd_apply(h_i, velocity[i], LR)
        return loss

    return step, lambda a: a, float


def build_torch(workload: str, weights: dict[str, np.ndarray], threads: int) -> Built:
    import torch

    torch.set_num_threads(threads)
    tnn, F = torch.nn, torch.nn.functional
    if workload == "mlp":
        net = torch_nets.mlp(tnn)
    elif workload == "lenet":
        net = torch_nets.lenet(tnn)
    else:
        net = tnn.Sequential(
            tnn.Linear(2, 16), tnn.ReLU(), tnn.Linear(16, 16), tnn.ReLU(), tnn.Linear(16, 1)
        )
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM[workload])
    loss_fn = F.mse_loss if workload == "tiny" else F.cross_entropy

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, torch.from_numpy, lambda loss: float(loss.detach())


def main(argv: list[str]) -> int:
    framework, workload, threads, folder = argv[1], argv[2], int(argv[3]), Path(argv[4])
    with np.load(folder / f"{workload}-weights.npz", allow_pickle=False) as f:
        weights = {k: f[k].copy() for k in f.files}
    xs = np.load(folder / f"{workload}-x.npy", allow_pickle=False)
    ys = np.load(folder / f"{workload}-y.npy", allow_pickle=False)
    if framework == "chainrule":
        step, convert, value = build_chainrule(workload, weights, threads)
    elif framework == "torch":
        step, convert, value = build_torch(workload, weights, threads)
    elif framework == "products":
        step, convert, value = build_products(workload, weights, threads)
    elif framework == "numpy":
        step, convert, value = build_numpy(workload, weights, threads)
    else:
        raise SystemExit(f"unknown framework {framework!r}: chainrule, torch, numpy or products")
    batches = [(convert(x), convert(y)) for x, y in zip(xs, ys, strict=True)]
    losses = [value(step(*batches[k])) for k in range(FIRST_STEPS)]
    k, end = FIRST_STEPS, time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        step(*batches[k % len(batches)])
        k += 1
    t0, n0 = time.perf_counter(), k
    while time.perf_counter() < t0 + CALIBRATE_S:
        step(*batches[k % len(batches)])
        k += 1
    ready = {
        "losses": losses,
        "step_seconds": (time.perf_counter() - t0) / (k - n0),
        "modules": sorted(m for m in ("chainrule", "torch") if m in sys.modules),
        "numpy": np.__version__,
    }
    if framework == "torch":
        import torch

        ready["torch"] = torch.__version__
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        time.sleep(request["settle"])
        step(*batches[k % len(batches)])  # untimed: wakes this process's thread pool
        k += 1
        n = request["steps"]
        busy0, own0, t0 = busy_ticks(), own_ticks(), time.perf_counter()
        for _ in range(n):
            step(*batches[k % len(batches)])
            k += 1
        seconds = time.perf_counter() - t0
        answer = {"seconds": seconds, "own_ticks": own_ticks() - own0}
        answer["busy_ticks"] = busy_ticks() - busy0
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
