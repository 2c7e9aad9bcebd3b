#!/usr/bin/env python3
"""DGMF's score network trained in burn (mfpipe) and in PyTorch, side by side on one machine.

Both sides build the identical U-Net (mfpipe_fusion::dgmf::ScoreNet): conv_in 3x3 1 -> c; per
resolution a ResNet block (GroupNorm, SiLU, 3x3 conv, + Linear(embedding), GroupNorm, SiLU,
3x3 conv, 1x1 skip when the width changes) and a stride-2 3x3 conv down; a middle block; per
resolution upward a block on [h, skip] and nearest x2 upsampling + 3x3 conv; GroupNorm, SiLU,
3x3 conv out. The embedding is the sum of three two-layer SiLU MLPs (random Fourier features of
log sigma, 3 PDE parameters, a one-hot of 2 fidelities). Same data shape (64 fields on the
model grid), batch, loss (||net(y + sigma eps) + eps||^2, sigma log-uniform), Adam with the
same cosine learning-rate schedule, same number of steps, float32, same thread count.

    pip install torch numpy
    cargo build --release -p mfpipe-fusion --example dgmf_steps
    python3 bench/dgmf_vs_torch.py --threads 2 --steps 50

Prints ms per training step and ms per field per score evaluation for both sides.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import time

import numpy as np


def torch_side(args):
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, emb, grid = args.channels, 64, args.grid
    mults = [1, 2, 2]
    ch = [m * c for m in mults]

    def groups(n):
        return next((g for g in (8, 4, 2) if n % g == 0), 1)

    class Block(nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.n1, self.c1 = nn.GroupNorm(groups(i), i), nn.Conv2d(i, o, 3, padding=1)
            self.e = nn.Linear(emb, o)
            self.n2, self.c2 = nn.GroupNorm(groups(o), o), nn.Conv2d(o, o, 3, padding=1)
            self.skip = nn.Conv2d(i, o, 1, bias=False) if i != o else None

        def forward(self, x, e):
            h = self.c1(nn.functional.silu(self.n1(x))) + self.e(e)[:, :, None, None]
            h = self.c2(nn.functional.silu(self.n2(h)))
            return h + (self.skip(x) if self.skip is not None else x)

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, o), nn.SiLU(), nn.Linear(o, o))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.noise, self.params, self.fid = mlp(emb, emb), mlp(3, emb), mlp(2, emb)
            self.conv_in = nn.Conv2d(1, ch[0], 3, padding=1)
            self.down, self.ds = nn.ModuleList(), nn.ModuleList()
            prev = ch[0]
            for l, cc in enumerate(ch):
                self.down.append(Block(prev, cc))
                prev = cc
                if l + 1 < len(ch):
                    self.ds.append(nn.Conv2d(cc, cc, 3, stride=2, padding=1))
            self.mid = Block(prev, prev)
            self.up, self.us = nn.ModuleList(), nn.ModuleList()
            for l in reversed(range(len(ch))):
                self.up.append(Block(prev + ch[l], ch[l]))
                prev = ch[l]
                if l > 0:
                    self.us.append(nn.Conv2d(prev, ch[l - 1], 3, padding=1))
                    prev = ch[l - 1]
            self.norm_out = nn.GroupNorm(groups(ch[0]), ch[0])
            self.conv_out = nn.Conv2d(ch[0], 1, 3, padding=1)

        def forward(self, z, noise, x, fid):
            e = nn.functional.silu(self.noise(noise) + self.params(x) + self.fid(fid))
            h = self.conv_in(z)
            skips = []
            for l, b in enumerate(self.down):
                h = b(h, e)
                skips.append(h)
                if l < len(self.ds):
                    h = self.ds[l](h)
            h = self.mid(h, e)
            for k, b in enumerate(self.up):
                h = b(torch.cat([h, skips.pop()], 1), e)
                if k < len(self.us):
                    h = self.us[k](nn.functional.interpolate(h, scale_factor=2, mode="nearest"))
            return self.conv_out(nn.functional.silu(self.norm_out(h)))

    n, m = 64, grid * grid
    rng = np.random.default_rng(0)
    x = ((np.arange(n)[:, None] * 7 + np.arange(3)[None] * 5) % 13) / 6.5 - 1.0
    r, cc = np.meshgrid(np.arange(grid) / grid, np.arange(grid) / grid, indexing="ij")
    fields = np.stack([np.sin(x[i, 0] * r + x[i, 1] * cc) + x[i, 2] * r * cc for i in range(n)])
    fid = np.stack([[(i % 2) == j for j in range(2)] for i in range(n)]).astype(np.float32)
    d = fields.reshape(n, -1)
    smax = max(np.linalg.norm(d[i] - d[j]) for i in range(n) for j in range(i + 1, n))
    smin = 2e-3
    w = 16.0 * rng.standard_normal(emb // 2)

    def feats(sig):
        t = 2 * math.pi * np.outer(np.log(sig), w)
        return np.concatenate([np.sin(t), np.cos(t)], 1).astype(np.float32)

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    Y = torch.tensor(fields, dtype=torch.float32)[:, None]
    X = torch.tensor(x, dtype=torch.float32)
    F = torch.tensor(fid)
    b = args.batch
    t0 = time.perf_counter()
    first = last = None
    for step in range(args.steps):
        rows = rng.integers(0, n, b)
        tau = rng.random(b)
        sig = smin * (smax / smin) ** tau
        eps = torch.randn(b, 1, grid, grid)
        z = Y[rows] + torch.tensor(sig, dtype=torch.float32)[:, None, None, None] * eps
        for g in opt.param_groups:
            g["lr"] = 2e-3 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        loss = ((net(z, torch.tensor(feats(sig)), X[rows], F[rows]) + eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = loss.item()
        first = first if first is not None else last
    train = (time.perf_counter() - t0) / args.steps
    rows = 256
    idx = np.arange(rows) % n
    with torch.no_grad():
        z = torch.full((rows, 1, grid, grid), 0.1)
        nf, xx, ff = torch.tensor(feats(np.full(rows, 0.5))), X[idx], F[idx]
        t0 = time.perf_counter()
        for _ in range(10):
            net(z, nf, xx, ff)
        sample = (time.perf_counter() - t0) / (10 * rows)
    return train, sample, first, last


def burn_side(args):
    exe = os.path.join(os.path.dirname(__file__), "..", "target", "release", "examples", "dgmf_steps")
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    out = subprocess.run(
        [exe, str(args.steps), str(args.batch), str(args.grid), str(args.channels)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    train = float(re.search(r"\(([\d.]+) ms/step\)", out).group(1)) / 1e3
    sample = float(re.search(r"sample: ([\d.]+) ms", out).group(1)) / 1e3
    loss = re.search(r"loss ([\d.]+) -> ([\d.]+)", out)
    return train, sample, float(loss.group(1)), float(loss.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--grid", type=int, default=32)
    ap.add_argument("--channels", type=int, default=16)
    args = ap.parse_args()
    print(f"# {args.steps} steps, batch {args.batch}, {args.grid}x{args.grid}, "
          f"{args.channels} channels, {args.threads} thread(s)")
    print(f"{'side':8} {'ms/step':>9} {'ms/field/eval':>14} {'loss first -> last':>20}")
    rows = {}
    for name, f in (("burn", burn_side), ("pytorch", torch_side)):
        tr, sa, l0, l1 = f(args)
        rows[name] = (tr, sa)
        print(f"{name:8} {1e3 * tr:9.1f} {1e3 * sa:14.3f} {l0:9.3f} -> {l1:7.3f}")
    print(f"ratio burn/pytorch: training {rows['burn'][0] / rows['pytorch'][0]:.2f}x, "
          f"sampling {rows['burn'][1] / rows['pytorch'][1]:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
