#!/usr/bin/env bash
# mfpipe's `md` solver next to LAMMPS (serial `lmp`, Debian package `lammps`) on one machine,
# one thread each, from the same initial state:
#   - trajectory: the temperature at every step, compared over the first 100 fs and followed
#     until the two part by more than 1e-8 relative;
#   - speed: STEPS steps of DT fs (same cutoff 7.5 A, same `neighbor 2.0 bin`), time per
#     atom-step.
# Usage: bench/md/compare.sh [T0 [RHO_STAR [SEED [STEPS [DT [R_CAP]]]]]]  (default 700 0.95 1
# 2000 1 2.5: the densest system of the design, 696 atoms, the 2 ps HF run; R_CAP = 0 runs
# ours without the repulsion cap, i.e. exactly LAMMPS's lj/cut).
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=${1:-700}; RHO=${2:-0.95}; SEED=${3:-1}; STEPS=${4:-2000}; DT=${5:-1}; RCAP=${6:-2.5}
command -v lmp >/dev/null || { echo "lmp not found: apt-get install lammps" >&2; exit 1; }
cargo build --release -q -p mfpipe-solvers --example md_state
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ours=$(RAYON_NUM_THREADS=1 target/release/examples/md_state "$T0" "$RHO" "$SEED" "$STEPS" "$DT" "$work" "$RCAP")
(cd "$work" && OMP_NUM_THREADS=1 lmp -nocite -log lammps.log -screen none \
    -var nsteps "$STEPS" -var ntrace "$STEPS" -var dt "$DT" -in "$OLDPWD/bench/md/in.lj")
python3 - "$work" "$ours" "$DT" <<'PY'
import re, sys
work, ours, dt = sys.argv[1], sys.argv[2], float(sys.argv[3])
mine = {}
for line in open(f"{work}/ours.txt"):
    if line.startswith("#"):
        continue
    s, t, e = line.split()
    mine[int(s)] = (float(t), float(e))
log = open(f"{work}/lammps.log").read()
runs = log.split("Loop time")
lmp = {}
for line in runs[0].splitlines():
    f = line.split()
    if len(f) == 3 and f[0].isdigit():
        lmp[int(f[0])] = (float(f[1]), float(f[2]))
worst, parted = 0.0, None
for s in sorted(mine):
    if s not in lmp:
        continue
    rel = abs(mine[s][0] - lmp[s][0]) / abs(lmp[s][0])
    if s * dt <= 100:
        worst = max(worst, rel)
    if parted is None and not rel <= 1e-8:
        parted = s
k100 = int(round(100 / dt))
last = max(s for s in mine if s in lmp)
print(f"trajectory (dt = {dt} fs): max relative difference in T over the first 100 fs: {worst:.3e}; "
      + (f"first step above 1e-8: {parted} (t = {parted * dt:g} fs)" if parted is not None else f"never above 1e-8 in {last} steps"))
print(f"  T(0) ours {mine[0][0]:.12f} K, LAMMPS {lmp[0][0]:.12f} K; T(100 fs) ours {mine[k100][0]:.12f} K, LAMMPS {lmp[k100][0]:.12f} K; "
      f"T({last * dt:g} fs) ours {mine[last][0]:.6f} K, LAMMPS {lmp[last][0]:.6f} K")
m = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", log)
t, procs, steps, atoms = m[-1]
per = float(t) / (int(steps) * int(atoms))
print(ours)
print(f"LAMMPS: {steps} steps, {atoms} atoms: {float(t):.3f} s wall on {procs} proc, {per:.4e} s per atom-step")
mp = float(re.search(r"([0-9.eE+-]+) s per atom-step", ours).group(1))
print(f"ratio mfpipe / LAMMPS time per atom-step: {mp / per:.3f}")
PY
