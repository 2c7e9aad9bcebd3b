#!/usr/bin/env python3
"""One dmf-trans fit in burn (mfpipe) and in PyTorch, side by side on the same machine.

Both fit the identical network (3-cell DMF search space: deep 4x20, shallow 2x20, wide 2x40,
linear, zero; softmax alpha per edge), the identical data (Burgers, 32 LF + 32 HF samples,
inputs standardised, outputs reduced by PCA to the same number of components and scaled by
the first component's standard deviation), the identical optimiser (Adam, eps 1e-8; w every
step, alpha every k-th step at the updated w) and the identical step counts: the LF search
phase (`steps`) and the HF transfer phase with r1/r2/r3 (`fine_tune_steps`), with the loss
read back every 100 steps on both sides. Hyperparameters come from mfpipe's embedded
configs/burgers.toml (printed by burn into results.json), so the two cannot drift apart.

    pip install torch h5py numpy
    cargo build --release -p mfpipe-pipeline
    python3 bench/dmf_vs_torch.py --threads 1 [--repeats 3]

Prints one table row per side: wall seconds of the fit (median over repeats), ms per step,
and the test RMSE on the 32 held-out HF samples (a sanity check that both learned).

    python3 bench/dmf_vs_torch.py --accuracy --problem borehole [--seeds 0-4]

compares accuracy instead: mfpipe fits dmf-trans (search off) for every seed, and PyTorch
fits the same network on the very same split (read from mfpipe's splits.json) from its own
initial weights; one row per seed and the geometric-mean RMSE ratio (borehole, currin, park:
N_L = N_H = 20 of the Fig. 6/7 protocol; burgers: 32 + 32).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

N_LF, N_HF, N_TEST = 32, 32, 32


def run(cmd, env=None):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr}")
    return r


def make_data(pipeline, work):
    """Burgers levels 0 and 1 with a role array: HF samples 0..31 train, 32..63 test."""
    path = work / "bench.h5"
    if path.exists():
        return path
    raw = work / "raw.h5"
    if raw.exists():
        raw.unlink()
    run([pipeline, "generate", "burgers", "--levels", "0,1", "--n", f"{N_LF},{N_HF + N_TEST}",
         "--seed", "0", "--out", raw])
    with h5py.File(raw, "r+") as f:
        role = np.zeros(N_HF + N_TEST, dtype=np.uint8)
        role[N_HF:] = 1
        f["fidelity/1"].create_dataset("role", data=role)
    raw.rename(path)
    return path


def burn_fit(pipeline, data, work, threads):
    out = work / "burn"
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    run([pipeline, "train", data, "--model", "dmf-trans", "--n-lf", str(N_LF), "--n-hf",
         str(N_HF), "--seeds", "0", "--search", "none", "--out", out], env=env)
    wall = time.perf_counter() - t0
    rec = json.loads((out / "results.json").read_text())[0]
    return rec, wall


class Mlp(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        for l in self.layers:
            nn.init.xavier_uniform_(l.weight)
            nn.init.zeros_(l.bias)

    def forward(self, x):
        for k, l in enumerate(self.layers):
            x = l(x)
            if k < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class Edge(nn.Module):
    """The four candidates with weights; the zero candidate only takes its softmax share."""

    def __init__(self, i, o, width=20):
        super().__init__()
        self.ops = nn.ModuleList([
            Mlp([i, width, width, width, o]),  # deep: 4 layers
            Mlp([i, width, o]),                # shallow: 2 layers
            Mlp([i, 2 * width, o]),            # wide: 2 layers of 40
            Mlp([i, o]),                       # linear
        ])

    def forward(self, x, s):
        return sum(s[c] * op(x) for c, op in enumerate(self.ops))


class DmfNet(nn.Module):
    def __init__(self, cells, d_in, width, d_out):
        super().__init__()
        node = lambda k: d_in if k == 0 else (d_out if k == cells - 1 else width)
        self.cells = cells
        self.pairs = [(i, j) for j in range(1, cells) for i in range(j)]
        self.edges = nn.ModuleList(Edge(node(i), node(j), width) for i, j in self.pairs)
        self.alpha = nn.ParameterList(nn.Parameter(torch.zeros(5)) for _ in self.pairs)

    def w_params(self):
        return list(self.edges.parameters())

    def forward(self, x):
        h = [x]
        for j in range(1, self.cells):
            acc = 0
            for e, (i, jj) in enumerate(self.pairs):
                if jj == j:
                    acc = acc + self.edges[e](h[i], torch.softmax(self.alpha[e], 0))
            h.append(acc)
        return h[-1]


class DmfTrans(nn.Module):
    def __init__(self, low, d_in, d_out):
        super().__init__()
        self.low = low
        self.head = nn.Linear(d_in + d_out, d_out)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[:, d_in:] = torch.eye(d_out)
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(torch.cat([x, self.low(x)], 1))


def loss_fn(pred, y):
    return ((pred - y) ** 2).sum(1).mean()


def adam(params, lr):
    return torch.optim.Adam(params, lr=lr, eps=1e-8)


def train(net, w_params, w_lr, extra, alpha, a_lr, k, x, y, steps):
    """Algorithm 1: w (and `extra`, a list of (params, lr)) every step, alpha every k-th."""
    opts = [adam(w_params, w_lr)] + [adam(p, lr) for p, lr in extra]
    opt_a = adam(alpha, a_lr)
    last = float("nan")
    for step in range(1, steps + 1):
        net.zero_grad(set_to_none=True)
        l = loss_fn(net(x), y)
        if step == 1 or step % 100 == 0 or step == steps:
            last = l.item()
        l.backward()
        for o in opts:
            o.step()
        if step % k == 0:
            net.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt_a.step()
    return last


class OutputMap:
    """mfpipe's output map (fusion/src/prep.rs): PCA scaled by the first component's
    standard deviation for fields, standardisation for a single output."""

    def __init__(self, y, k):
        self.mean = y.mean(0)
        if y.shape[1] > 1:
            _, sv, vt = np.linalg.svd(y - self.mean, full_matrices=False)
            self.comps = vt[:k].T
            self.scale = sv[0] / np.sqrt(len(y))
        else:
            self.comps = np.ones((1, 1))
            sd = y.std(0)[0]
            self.scale = sd if sd > 1e-12 else 1.0

    def encode(self, y):
        return torch.tensor((y - self.mean) @ self.comps / self.scale, dtype=torch.float32)

    def decode(self, z):
        return z * self.scale @ self.comps.T + self.mean


def torch_fit_arrays(xl, yl, xh, yh, xt, yt, hp, seed):
    """One dmf-trans fit on the given split; returns (fit seconds, test RMSE, last loss)."""
    if hp.get("lambda1", 0) or hp.get("lambda2", 0) or hp.get("schedule") != "alternate":
        sys.exit("the PyTorch twin implements the alternate schedule without weight decay")
    x_all, y_all = np.vstack([xl, xh]), np.vstack([yl, yh])
    mu, sd = x_all.mean(0), x_all.std(0)
    sd[sd <= 1e-12] = 1.0
    k = hp["pca_components"]
    om = OutputMap(y_all, k)
    inp = lambda x: torch.tensor((x - mu) / sd, dtype=torch.float32)

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    d_in = xl.shape[1]
    low = DmfNet(hp["cells"], d_in, hp["width"], k)
    train(low, low.w_params(), hp["lr_w"], [], list(low.alpha), hp["lr_alpha"], hp["k"],
          inp(xl), om.encode(yl), hp["steps"])
    net = DmfTrans(low, d_in, k)
    last = train(net, low.w_params(), hp["r1"], [(list(net.head.parameters()), hp["r3"])],
                 list(low.alpha), hp["r2"], hp["k"], inp(xh), om.encode(yh),
                 hp["fine_tune_steps"])
    fit = time.perf_counter() - t0
    with torch.no_grad():
        z = net(inp(xt)).numpy().astype(np.float64)
    pred = om.decode(z)
    rmse = float(np.sqrt(np.mean((pred - yt) ** 2)))
    return fit, rmse, last


def torch_fit(data, hp, seed):
    with h5py.File(data) as f:
        xl = f["fidelity/0/inputs"][:]
        yl = f["fidelity/0/outputs"][:].reshape(N_LF, -1)
        xh_all = f["fidelity/1/inputs"][:]
        yh_all = f["fidelity/1/outputs"][:].reshape(N_HF + N_TEST, -1)
    return torch_fit_arrays(xl, yl, xh_all[:N_HF], yh_all[:N_HF], xh_all[N_HF:],
                            yh_all[N_HF:], hp, seed)


ACCURACY = {
    # problem: (levels' sample counts, N_L, N_H, held-out HF samples)
    "borehole": ("50,70", 20, 20, 50),
    "currin": ("50,70", 20, 20, 50),
    "park": ("50,70", 20, 20, 50),
    "burgers": ("32,160", 32, 32, 128),
}


def accuracy(a, work):
    """Test RMSE of burn and PyTorch on the same splits, one fit per seed and side."""
    n, n_lf, n_hf, n_test = ACCURACY[a.problem]
    data = work / f"{a.problem}.h5"
    if not data.exists():
        run([a.pipeline, "generate", a.problem, "--levels", "0,1", "--n", n, "--seed", "0",
             "--out", data])
    out = work / f"{a.problem}-burn"
    run([a.pipeline, "train", data, "--model", "dmf-trans", "--n-lf", str(n_lf), "--n-hf",
         str(n_hf), "--seeds", a.seeds, "--n-test", str(n_test), "--search", "none",
         "--save", "none", "--force", "--out", out])
    recs = json.loads((out / "results.json").read_text())
    splits = json.loads((out / "splits.json").read_text())
    with h5py.File(data) as f:
        xl_all = f["fidelity/0/inputs"][:]
        yl_all = f["fidelity/0/outputs"][:]
        yl_all = yl_all.reshape(len(yl_all), -1)
        xh_all = f["fidelity/1/inputs"][:]
        yh_all = f["fidelity/1/outputs"][:]
        yh_all = yh_all.reshape(len(yh_all), -1)
    test = splits["test_hf"]
    print(f"dmf-trans on {a.problem}, N_L = {n_lf}, N_H = {n_hf}, {len(test)} test samples, "
          f"search off; torch {torch.__version__}")
    print("| seed | burn RMSE | PyTorch RMSE |")
    print("|---|---:|---:|")
    b, t = [], []
    for rec in recs:
        sp = next(s for s in splits["train"] if s["seed"] == rec["seed"])
        _, rmse, _ = torch_fit_arrays(xl_all[sp["lf"]], yl_all[sp["lf"]], xh_all[sp["hf"]],
                                      yh_all[sp["hf"]], xh_all[test], yh_all[test],
                                      rec["hyperparameters"], rec["seed"])
        b.append(rec["rmse"])
        t.append(rmse)
        print(f"| {rec['seed']} | {rec['rmse']:.4g} | {rmse:.4g} |")
    gm = float(np.exp(np.mean(np.log(np.array(b) / np.array(t)))))
    print(f"| mean | {np.mean(b):.4g} | {np.mean(t):.4g} |")
    print(f"burn / PyTorch RMSE, geometric mean over seeds: {gm:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", default="target/release/pipeline")
    ap.add_argument("--work", default="bench/out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--accuracy", action="store_true",
                    help="compare test RMSE over seeds on --problem instead of timing")
    ap.add_argument("--problem", default="burgers", choices=sorted(ACCURACY))
    ap.add_argument("--seeds", default="0-4")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    if a.accuracy:
        return accuracy(a, work)
    data = make_data(a.pipeline, work)
    burn, torch_runs = [], []
    for _ in range(a.repeats):
        burn.append(burn_fit(a.pipeline, data, work, a.threads))
        torch_runs.append(torch_fit(data, burn[-1][0]["hyperparameters"], 0))
    rec = burn[0][0]
    hp = rec["hyperparameters"]
    steps = hp["steps"] + hp["fine_tune_steps"]
    b = float(np.median([r["fit_seconds"] for r, _ in burn]))
    t = float(np.median([f for f, _, _ in torch_runs]))
    print(f"dmf-trans, burgers, {N_LF} LF + {N_HF} HF, {hp['cells']} cells, "
          f"{hp['steps']} + {hp['fine_tune_steps']} steps, k = {hp['k']}, "
          f"{hp['pca_components']} PCA components, {a.threads} thread(s), "
          f"median of {a.repeats}; torch {torch.__version__}")
    print("| side | fit s | ms/step | test RMSE |")
    print("|---|---|---|---|")
    print(f"| burn (mfpipe) | {b:.3f} | {1e3 * b / steps:.3f} | {rec['rmse']:.3e} |")
    print(f"| PyTorch | {t:.3f} | {1e3 * t / steps:.3f} | {torch_runs[0][1]:.3e} |")
    print(f"burn / PyTorch time ratio: {b / t:.2f}")


if __name__ == "__main__":
    main()
