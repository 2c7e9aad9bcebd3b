#!/usr/bin/env bash
# Peak memory, wall time, file and journal size of `pipeline generate` as the sample count
# grows (Burgers level 0, a 100x100 field per sample): the memory curve of streaming
# generation (BENCHMARKS.md, "Generation at scale"). Usage:
#   bench/generate_memory.sh [PIPELINE] [N...]      (default: target/release/pipeline; 1000 10000 100000)
# Each file is removed after its row (10^5 samples take about 6 GB of file + 8 GB of journal
# at the peak).
set -euo pipefail
P=${1:-target/release/pipeline}
shift || true
NS=${*:-1000 10000 100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "| samples | peak RSS | wall | file | raw output | raw MB/s | solve only |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in $NS; do
    out="$dir/b$n.h5"
    /usr/bin/time -f "%M %e" -o "$dir/time" "$P" generate burgers --levels 0 --n "$n" \
        --design uniform --out "$out" > /dev/null 2>&1
    read -r rss wall < "$dir/time"
    size=$(stat -c %s "$out")
    raw=$((n * 10000 * 8))
    # The solver alone, the same samples' cost from the file's cost_s column.
    solve=$(python3 -c "import h5py; print('%.1f' % h5py.File('$out')['fidelity/0/cost_s'][:].sum())")
    awk -v n="$n" -v rss="$rss" -v wall="$wall" -v size="$size" -v raw="$raw" -v solve="$solve" 'BEGIN {
        printf "| %d | %.0f MB | %.1f s | %.0f MB | %.0f MB | %.0f | %s CPU s |\n",
            n, rss / 1024, wall, size / 1e6, raw / 1e6, raw / 1e6 / wall, solve }'
    rm -f "$out"
done
