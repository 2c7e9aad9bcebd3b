#!/usr/bin/env python3
"""The plasmonic coupled-dipole solve in mfpipe and in numpy, side by side on one machine.

numpy builds the same 3N x 3N system (I - alpha A) E = E0 for the same Vogel spiral (gold,
Le Ru-Etchegoin permittivity, radiative polarizability; DESIGN sec. 5 `plasmonic`),
vectorised, solves it with np.linalg.solve (LAPACK zgesv through OpenBLAS) and computes
[Q_ext, Q_sca]. mfpipe solves it with `pipeline solve plasmonic --fidelity L --json` (dense
LU up to N = 100, COCG above). Both sides get the same thread count (OPENBLAS/OMP threads
for numpy, RAYON_NUM_THREADS for mfpipe); each time is the wall time of a full solve
(assembly + solve + cross-sections), the median over the repeats. mfpipe's figure is the
wall time of the process minus that of the same command at N = 2 (start-up and I/O).

    pip install numpy
    cargo build --release -p mfpipe-pipeline
    python3 bench/plasmonic_vs_numpy.py --threads 2 [--repeats 3] [--n 50,500,2000]

Prints one row per N: both times, their ratio and the largest relative difference of Q.
"""
import argparse
import json
import os
import subprocess
import sys
import time

LEVEL = {2: 0, 25: 1, 50: 2, 500: 3, 2000: 4, 10000: 5}
RADIUS = 25.0
INPUTS = [(520.0, 2.39996, 300.0), (640.0, 1.0, 120.0), (450.0, 3.7, 800.0)]


def gold(lam, np):
    eps_inf, lp, mp = 1.54, 177.5, 14500.0
    eps = eps_inf * (1 - 1 / (lp**2 * (1 / lam**2 + 1j / (mp * lam))))
    phase = np.exp(-1j * np.pi / 4)
    for a, l, m in [(1.27, 470.0, 1900.0), (1.1, 325.0, 1060.0)]:
        eps += (a / l) * (phase / (1 / l - 1 / lam - 1j / m)
                          + np.conj(phase) / (1 / l + 1 / lam + 1j / m))
    return eps


def numpy_solve(np, n, lam, alpha_vs, a_vs):
    k = 2 * np.pi / lam
    eps = gold(lam, np)
    a0 = RADIUS**3 * (eps - 1) / (eps + 2)
    alpha = a0 / (1 - 2j / 3 * k**3 * a0)
    idx = np.arange(1, n + 1)
    rho, th = np.sqrt(idx) * a_vs, idx * alpha_vs
    pos = np.stack([rho * np.cos(th), rho * np.sin(th), np.zeros(n)], axis=1)
    d = pos[:, None, :] - pos[None, :, :]
    r = np.linalg.norm(d, axis=2)
    np.fill_diagonal(r, 1.0)
    u = d / r[:, :, None]
    kr = k * r
    e = np.exp(1j * kr) / r**3
    g1 = e * (kr**2 + 1j * kr - 1)
    g2 = e * (3 - kr**2 - 3j * kr)
    np.fill_diagonal(g1, 0)
    np.fill_diagonal(g2, 0)
    a = g1[:, :, None, None] * np.eye(3) + g2[:, :, None, None] * (u[:, :, :, None] * u[:, :, None, :])
    m = np.eye(3 * n, dtype=complex) - alpha * a.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    e0 = np.tile([1.0, 0.0, 0.0], n).astype(complex)
    field = np.linalg.solve(m, e0)
    p = alpha * field
    ext = 4 * np.pi * k * np.sum(np.imag(np.conj(e0) * p))
    ab = 4 * np.pi * k * np.sum(np.imag(np.conj(field) * p) - 2 / 3 * k**3 * np.abs(p) ** 2)
    norm = n * np.pi * RADIUS**2
    return ext / norm, (ext - ab) / norm


def ours(pipeline, n, x, env):
    cmd = [pipeline, "solve", "plasmonic", "--fidelity", str(LEVEL[n]), "--json",
           "--set", f"lambda={x[0]}", "--set", f"alpha_vs={x[1]}", "--set", f"a_vs={x[2]}"]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return wall, json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", default="50,500,2000")
    ap.add_argument("--pipeline", default="target/release/pipeline")
    args = ap.parse_args()
    t = str(args.threads)
    for var in ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]:
        os.environ[var] = t
    import numpy as np  # after the thread variables, which OpenBLAS reads at load time

    env = dict(os.environ, RAYON_NUM_THREADS=t)
    print(f"threads {t}, repeats {args.repeats}, numpy {np.__version__}, inputs {INPUTS}")
    print()
    print("| N | numpy s | mfpipe s | mfpipe / numpy | max rel. diff of Q | mfpipe path |")
    print("|---|---|---|---|---|---|")
    for n in [int(v) for v in args.n.split(",")]:
        t_np, t_us, diff = [], [], 0.0
        path = ""
        for x in INPUTS:
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                q = numpy_solve(np, n, *x)
                t_np.append(time.perf_counter() - t0)
                base, _ = ours(args.pipeline, 2, x, env)
                wall, sol = ours(args.pipeline, n, x, env)
                t_us.append(max(wall - base, 0.0))
                v = sol["values"]
                diff = max(diff, *(abs(a - b) / abs(b) for a, b in zip(v, q)))
                path = "COCG" if sol["diagnostics"]["path"] == 1.0 else "dense LU"
        med = lambda v: sorted(v)[len(v) // 2]
        a, b = med(t_np), med(t_us)
        print(f"| {n} | {a:.4f} | {b:.4f} | {b / a:.2f} | {diff:.1e} | {path} |", flush=True)


if __name__ == "__main__":
    main()
