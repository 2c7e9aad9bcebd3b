#!/usr/bin/env python3
"""DMF ablations: one change at a time to dmf-trans, same splits, 5 seeds (issue 18).

Every variant is a `[models.dmf-trans]` section merged over the problem's embedded config
(its values are read back from `pipeline train`'s results.json, so the baseline is exactly
what `pipeline run <problem>` fits with the search switched off). Each variant is fitted on
two independent datasets of the same problem:

- *validation*: generated with design seed 1 (different LF and HF samples, different held-out
  set). Decisions are taken on this column only.
- *test*: design seed 0, the dataset `pipeline run <problem>` trains on. Reported, never used
  to choose.

Reference GP baselines (ar, gar, nar, gp-hf) are fitted on the same splits once.

    cargo build --release -p mfpipe-pipeline
    python3 bench/dmf_ablation.py --problems borehole,currin,burgers [--variants NAME,..]
        [--seeds 0-4] [--work /tmp/dmf-ablation] [--smoke]

Prints one markdown table per problem: mean RMSE over seeds per (N_L, N_H) cell, for the
validation and the test dataset, and each variant's geometric-mean ratio to the baseline.
"""
import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

# Per problem: levels' sample counts, held-out HF samples, (N_L, N_H) cells.
PROBLEMS = {
    "borehole": dict(n="50,70", n_test=50, cells=[(20, 4), (20, 20), (50, 20)]),
    "currin": dict(n="50,70", n_test=50, cells=[(20, 4), (20, 20), (50, 20)]),
    "park": dict(n="50,70", n_test=50, cells=[(20, 4), (20, 20), (50, 20)]),
    "burgers": dict(n="32,160", n_test=128, cells=[(32, 8), (32, 32)]),
}

# name -> overrides of [models.dmf-trans] (one change from the baseline each).
VARIANTS = {
    "baseline": {},
    # training length
    "steps 500": {"steps": 500},
    "steps 8000": {"steps": 8000},
    "fine_tune 300": {"fine_tune_steps": 300},
    "fine_tune 3000": {"fine_tune_steps": 3000},
    # learning rates of the LF search phase
    "lr_w 1e-3": {"lr_w": 1e-3},
    "lr_w 1e-2": {"lr_w": 1e-2},
    "lr_alpha 3e-2": {"lr_alpha": 3e-2},
    # transfer-phase rates
    "r1 1e-3": {"r1": 1e-3},
    "r1 1e-2": {"r1": 1e-2},
    "r3 1e-3": {"r3": 1e-3},
    "r3 3e-2": {"r3": 3e-2},
    # weight decays of eq. (5)
    "lambda1 1e-4": {"lambda1": 1e-4},
    "lambda1 1e-3": {"lambda1": 1e-3},
    "lambda1 1e-2": {"lambda1": 1e-2},
    "lambda2 1e-2": {"lambda2": 1e-2},
    # alternate optimisation
    "k 1": {"k": 1},
    "k 20": {"k": 20},
    "joint": {"schedule": "joint"},
    # architecture
    "cells 2": {"cells": 2},
    "cells 5": {"cells": 5},
    "width 40": {"width": 40},
    "width 10": {"width": 10},
    # optimisation in batches, ensembles
    "batch 8": {"batch": 8},
    "ensemble 5": {"ensemble": 5},
    # field outputs: PCA components
    "pca 4": {"output": {"max_components": 4}},
    "pca 8": {"output": {"max_components": 8}},
    "pca 64": {"output": {"max_components": 64}},
}
FIELD_ONLY = {"pca 4", "pca 8", "pca 64"}
BASELINES = ["ar", "nar", "gar", "gp-hf"]


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr}")
    return r


def toml_value(v):
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def write_config(path, problem, overrides, extra=""):
    lines = ["version = 1", f'problem = "{problem}"', "", "[models.dmf-trans]"]
    tables = {}
    for k, v in overrides.items():
        if isinstance(v, dict):
            tables[k] = v
        else:
            lines.append(f"{k} = {toml_value(v)}")
    for t, kv in tables.items():
        lines.append(f"[models.dmf-trans.{t}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in kv.items()]
    path.write_text("\n".join(lines) + "\n" + extra)


def dataset(pipeline, work, problem, design_seed):
    spec = PROBLEMS[problem]
    path = work / f"{problem}-s{design_seed}.h5"
    if not path.exists():
        run([pipeline, "generate", problem, "--levels", "0,1", "--n", spec["n"],
             "--seed", design_seed, "--out", path])
    return path


def fit(pipeline, data, problem, models, config, seeds, out, max_epochs=None):
    """Mean RMSE per (model, n_lf, n_hf) over seeds, every cell of the problem."""
    spec = PROBLEMS[problem]
    res = {}
    for n_lf, n_hf in spec["cells"]:
        d = out / f"{n_lf}-{n_hf}"
        if not (d / "results.json").exists():
            cmd = [pipeline, "train", data, "--model", ",".join(models), "--n-lf", n_lf,
                   "--n-hf", n_hf, "--seeds", seeds, "--n-test", spec["n_test"],
                   "--search", "none", "--save", "none", "--force", "--out", d]
            if config:
                cmd += ["--config", config]
            if max_epochs:
                cmd += ["--max-epochs", max_epochs]
            run(cmd)
        for rec in json.loads((d / "results.json").read_text()):
            key = (rec["model"], n_lf, n_hf)
            res.setdefault(key, []).append(rec["rmse"])
    return {k: sum(v) / len(v) for k, v in res.items()}


def fmt(x):
    return f"{x:.3g}" if x >= 1e-2 else f"{x:.2e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pipeline", default="target/release/pipeline")
    ap.add_argument("--problems", default="borehole,currin,burgers")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--work", default="/tmp/dmf-ablation")
    ap.add_argument("--smoke", action="store_true", help="60 epochs per phase, 2 seeds")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    pipeline = Path(a.pipeline).resolve()
    seeds = "0-1" if a.smoke else a.seeds
    max_epochs = 60 if a.smoke else None
    names = [v.strip() for v in a.variants.split(",")]
    for v in names:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    if "baseline" not in names:
        names.insert(0, "baseline")
    for problem in a.problems.split(","):
        spec = PROBLEMS[problem]
        field = problem == "burgers"
        data = {s: dataset(pipeline, work, problem, s) for s in (1, 0)}
        cells = spec["cells"]
        rows = {}
        ref = {}
        for s, path in data.items():
            ref[s] = fit(pipeline, path, problem, BASELINES, None, seeds,
                         work / problem / f"s{s}" / "baselines", max_epochs)
        for v in names:
            if v in FIELD_ONLY and not field:
                continue
            slug = v.replace(" ", "_")
            cfg = work / problem / f"{slug}.toml"
            cfg.parent.mkdir(parents=True, exist_ok=True)
            write_config(cfg, problem, VARIANTS[v])
            rows[v] = {s: fit(pipeline, path, problem, ["dmf-trans"], cfg, seeds,
                              work / problem / f"s{s}" / slug, max_epochs)
                       for s, path in data.items()}
            print(f"{problem}: {v} done", file=sys.stderr)
        head = " | ".join(f"val {l}/{h}" for l, h in cells) + " | " + \
            " | ".join(f"test {l}/{h}" for l, h in cells)
        print(f"\n### {problem} (mean RMSE over seeds {seeds}; cells N_L/N_H)\n")
        print(f"| variant | {head} | val ratio | test ratio |")
        print("|---|" + "---:|" * (2 * len(cells) + 2))
        base = rows["baseline"]

        def ratio(r, s):
            logs = [math.log(r[s][("dmf-trans", l, h)] / base[s][("dmf-trans", l, h)])
                    for l, h in cells]
            return math.exp(sum(logs) / len(logs))

        for v, r in rows.items():
            vals = [fmt(r[s][("dmf-trans", l, h)]) for s in (1, 0) for l, h in cells]
            print(f"| {v} | " + " | ".join(vals) + f" | {ratio(r, 1):.2f} | {ratio(r, 0):.2f} |")
        for m in BASELINES:
            vals = [fmt(ref[s][(m, l, h)]) for s in (1, 0) for l, h in cells]
            print(f"| *{m}* | " + " | ".join(vals) + " | | |")


if __name__ == "__main__":
    main()
