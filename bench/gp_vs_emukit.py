#!/usr/bin/env python3
"""mfpipe's `ar` and `nar` next to Emukit's AR1 and NARGP, on the same splits of the same data.

For each test function (borehole, currin, park) this runs `pipeline run` with the DMF paper's
Fig. 6 protocol (N_L = 20, N_H = 4, 8, 12, 16, 20, seeds 0-4, 50 HF test points) and only the
GP models, then reads the dataset (h5py) and `splits.json` (the exact sample indices of every
training set and of the test set) and fits Emukit on each identical training set:

- `GPyLinearMultiFidelityModel` with `LinearMultiFidelityKernel` (Kennedy-O'Hagan AR1),
  noise variances free, `GPyMultiOutputWrapper(n_optimization_restarts=5)`;
- `NonLinearMultiFidelityModel` (NARGP) with `make_non_linear_kernels(GPy.kern.RBF, 2, d,
  ARD=True)`, `optimization_restarts=5`, 100 Monte Carlo samples (Emukit's default).

Both sides see the same preprocessing: inputs standardised with the mean and std of all
training inputs, outputs with those of all training outputs (what mfpipe does for a scalar
output); RMSE is computed in the data's own units on the 50 test points.

    pip install emukit GPy h5py numpy
    cargo build --release -p mfpipe-pipeline
    python3 bench/gp_vs_emukit.py [--problems borehole,currin,park] [--seeds 5] [--models ar,nar]

Emukit's random restarts and Monte Carlo draws make one fit of it a random variable: two
unseeded runs on identical data differed by 0.29x to 2.6x on single NARGP fits. So each
training set is fitted `--emukit-draws` times (default 3) with numpy seeded 0, 1, 2, ..., and
mfpipe is compared with the median of those RMSEs; the summary also gives Emukit's own
spread (median over fits of max/min across its draws).

Emukit's RMSEs are cached in `<out>/emukit-cache.json`, keyed by a hash of the exact training
and test arrays and the draw, so rerunning after a change on the mfpipe side refits only
mfpipe. `--no-cache` refits.

Prints per problem a table (N_H x seed) of both RMSEs and their ratio, and a summary: the
median ratio per model, the share of fits where mfpipe is within 5 % of Emukit or better, and
the total fit wall time of each side.
"""
import argparse
import hashlib
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np

warnings.filterwarnings("ignore")
import GPy  # noqa: E402
from emukit.model_wrappers.gpy_model_wrappers import GPyMultiOutputWrapper  # noqa: E402
from emukit.multi_fidelity.convert_lists_to_array import convert_xy_lists_to_arrays  # noqa: E402
from emukit.multi_fidelity.kernels import LinearMultiFidelityKernel  # noqa: E402
from emukit.multi_fidelity.models import GPyLinearMultiFidelityModel  # noqa: E402
from emukit.multi_fidelity.models.non_linear_multi_fidelity_model import (  # noqa: E402
    NonLinearMultiFidelityModel,
    make_non_linear_kernels,
)

ROOT = Path(__file__).resolve().parent.parent
N_HF = [4, 8, 12, 16, 20]

CONFIG = """version = 1
problem = "{problem}"
[data]
design = "sobol"
seed = 0
levels = [0, 1]
n = [50, 70]
[protocol]
n_lf = [20]
n_hf = {n_hf}
seeds = {seeds}
n_test = 50
models = {models}
[models.ar]
{restarts}
[models.nar]
{restarts}
mc_samples = 100
{nar_extra}

[search]
method = "none"
"""


def run_mfpipe(problem, seeds, out, restarts, models, n_hf=N_HF, nar_extra=""):
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "gp.toml"
    cfg.write_text(
        CONFIG.format(problem=problem, n_hf=n_hf, seeds=seeds,
                      restarts=f"restarts = {restarts}" if restarts else "",
                      models=json.dumps(models), nar_extra=nar_extra)
    )
    exe = ROOT / "target" / "release" / "pipeline"
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(exe), "run", problem, "--config", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        sys.exit(f"pipeline run {problem} failed:\n{r.stderr}")
    wall = time.perf_counter() - t0
    records = json.loads((out / "results.json").read_text())
    splits = json.loads((out / "splits.json").read_text())
    with h5py.File(out / f"{problem}.h5", "r") as f:
        lf = (f["fidelity/0/inputs"][()], f["fidelity/0/outputs"][()].reshape(-1, 1))
        hf = (f["fidelity/1/inputs"][()], f["fidelity/1/outputs"][()].reshape(-1, 1))
    return records, splits, lf, hf, wall


def emukit_fit(kind, xl, yl, xh, yh, xt, draw):
    """Predictive mean at xt (standardised units) and the fit's wall seconds."""
    np.random.seed(draw)  # GPy's restarts and Emukit's Monte Carlo draws use numpy's global RNG
    d = xl.shape[1]
    X, Y = convert_xy_lists_to_arrays([xl, xh], [yl, yh])
    xt_f = np.hstack([xt, np.ones((len(xt), 1))])
    t0 = time.perf_counter()
    if kind == "ar1":
        k = LinearMultiFidelityKernel([GPy.kern.RBF(d, ARD=True), GPy.kern.RBF(d, ARD=True)])
        gm = GPyLinearMultiFidelityModel(X, Y, k, n_fidelities=2)
        m = GPyMultiOutputWrapper(gm, 2, n_optimization_restarts=5, verbose_optimization=False)
        m.optimize()
    else:
        kernels = make_non_linear_kernels(GPy.kern.RBF, 2, d, ARD=True)
        m = NonLinearMultiFidelityModel(X, Y, n_fidelities=2, kernels=kernels, verbose=False, optimization_restarts=5)
        m.optimize()
    secs = time.perf_counter() - t0
    mean, _ = m.predict(xt_f)
    return mean.reshape(-1), secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", default="borehole,currin,park")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "emukit"))
    ap.add_argument("--restarts", type=int, default=None,
                    help="mfpipe's L-BFGS starts (default: each model's own, ar 5, nar 20; Emukit: 5)")
    ap.add_argument("--models", default="ar,nar", help="mfpipe models to compare: ar (vs AR1), nar (vs NARGP)")
    ap.add_argument("--no-cache", action="store_true", help="refit Emukit even where a cached RMSE exists")
    ap.add_argument("--emukit-draws", type=int, default=3, help="seeded Emukit fits per training set")
    ap.add_argument("--n-hf", default=",".join(map(str, N_HF)), help="HF training sizes (Fig. 6: 4,8,12,16,20)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="split seeds are first-seed .. first-seed + seeds - 1 (other random splits than Fig. 6's)")
    ap.add_argument("--nar", default="", help="extra [models.nar] lines for mfpipe, e.g. 'restarts = 20'")
    a = ap.parse_args()
    models = a.models.split(",")
    if not set(models) <= {"ar", "nar"}:
        sys.exit(f"--models: expected ar and/or nar, got {a.models}")
    cache_path = Path(a.out) / "emukit-cache.json"
    cache = {} if a.no_cache or not cache_path.exists() else json.loads(cache_path.read_text())
    summary = []
    for problem in a.problems.split(","):
        records, splits, (xl_all, yl_all), (xh_all, yh_all), wall = run_mfpipe(
            problem, list(range(a.first_seed, a.first_seed + a.seeds)), Path(a.out) / problem,
            a.restarts, models, [int(v) for v in a.n_hf.split(",")],
            a.nar.replace(";", "\n"),
        )
        test = splits["test_hf"]
        xt, yt = xh_all[test], yh_all[test].reshape(-1)
        ours = {(r["model"], r["n_hf"], r["seed"]): r for r in records}
        print(f"\n### {problem}\n")
        pairs = [(m, {"ar": "ar1", "nar": "nargp"}[m]) for m in models]
        head = " | ".join(f"mfpipe {m} | Emukit {k.upper()} | ratio" for m, k in pairs)
        print(f"| N_H | seed | {head} |")
        print("|---|---|" + "---|---|---|" * len(pairs))
        for s in splits["train"]:
            if s["n_lf"] != 20:
                continue
            xl, yl = xl_all[s["lf"]], yl_all[s["lf"]]
            xh, yh = xh_all[s["hf"]], yh_all[s["hf"]]
            x_all, y_all = np.vstack([xl, xh]), np.vstack([yl, yh])
            mu, sd = x_all.mean(0), x_all.std(0)
            sd[sd == 0] = 1.0
            ym, ys = y_all.mean(), y_all.std() or 1.0
            z = lambda x: (x - mu) / sd  # noqa: E731
            row = [s["n_hf"], s["seed"]]
            for ours_name, kind in pairs:
                h = hashlib.sha256(kind.encode())
                for arr in (xl, yl, xh, yh, xt, yt):
                    h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
                draws = []
                for draw in range(a.emukit_draws):
                    key = f"{h.hexdigest()}-{draw}"
                    if key not in cache:
                        pred, secs = emukit_fit(kind, z(xl), (yl - ym) / ys, z(xh), (yh - ym) / ys, z(xt), draw)
                        cache[key] = [float(np.sqrt(np.mean((pred * ys + ym - yt) ** 2))), secs]
                        cache_path.parent.mkdir(parents=True, exist_ok=True)
                        cache_path.write_text(json.dumps(cache))
                    draws.append(cache[key])
                e_rmse = float(np.median([d[0] for d in draws]))
                spread = max(d[0] for d in draws) / min(d[0] for d in draws)
                secs = float(np.mean([d[1] for d in draws]))
                r = ours[(ours_name, s["n_hf"], s["seed"])]
                o_rmse = r["rmse"] if r["rmse"] is not None else float("inf")
                summary.append((problem, ours_name, o_rmse, e_rmse, r["fit_seconds"], secs, spread))
                row += [f"{o_rmse:.4g}", f"{e_rmse:.4g}", f"{o_rmse / e_rmse:.3f}"]
            print("| " + " | ".join(map(str, row)) + " |")
        print(f"\n(pipeline run wall time, data generation + all mfpipe fits: {wall:.1f} s)")
    print("\n### Summary\n")
    print(
        "| problem | model | median RMSE ratio mfpipe/Emukit | geometric mean ratio "
        "| mfpipe within 5 % or better | Emukit's own spread (median max/min) "
        "| fit time mfpipe | fit time Emukit (mean of draws) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for problem in a.problems.split(","):
        for m in models:
            rows = [x for x in summary if x[0] == problem and x[1] == m]
            ratios = np.array([x[2] / x[3] for x in rows])
            ok = int(np.sum(ratios <= 1.05))
            t_o, t_e = sum(x[4] for x in rows), sum(x[5] for x in rows)
            gm = float(np.exp(np.mean(np.log(ratios))))
            sp = float(np.median([x[6] for x in rows]))
            print(
                f"| {problem} | {m} | {np.median(ratios):.3f} | {gm:.3f} | {ok} of {len(rows)} "
                f"| {sp:.3f} | {t_o:.1f} s | {t_e:.1f} s |"
            )


if __name__ == "__main__":
    main()
