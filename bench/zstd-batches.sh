#!/bin/sh
# What per-batch zstd compression of journal values would give (issue 17 allows it; not implemented):
# compresses each exported batch of 512 journaled decisions (hg-bench --only restart writes them to
# results/p6-batches) with the zstd CLI at each level given, and estimates the durable journal's size per
# 1 000 000 decisions if each batch were one LMDB value: overflow pages of ceil((16 + bytes) / 4096) pages
# each, 1 000 000 / 512 of them. Usage: bench/zstd-batches.sh DIR [LEVEL...]
set -eu
dir=$1
shift
[ $# -gt 0 ] || set -- 1 3 9 19
raw=0
n=0
for f in "$dir"/batch-*.json; do
    raw=$((raw + $(wc -c < "$f")))
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "no batches in $dir" >&2; exit 1; }
echo "batches $n, raw bytes $raw, mean decision $((raw / n / 512)) B"
for level in "$@"; do
    comp=0
    pages=0
    for f in "$dir"/batch-*.json; do
        c=$(zstd -q -c "-$level" "$f" | wc -c)
        comp=$((comp + c))
        pages=$((pages + (16 + c + 4095) / 4096))
    done
    awk -v l="$level" -v raw="$raw" -v comp="$comp" -v pages="$pages" -v n="$n" 'BEGIN {
        printf "zstd -%s: %d -> %d bytes (ratio %.2f, %.1f B/decision); est. journal %.1f MiB per 1M decisions\n",
            l, raw, comp, raw / comp, comp / (n * 512), pages * 4096 / n * (1e6 / 512) / 1048576 }'
done
