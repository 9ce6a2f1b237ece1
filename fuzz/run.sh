#!/usr/bin/env bash
# Builds the libFuzzer target over the parser, engine and encoder, and runs it for FUZZ_SECONDS.
#   fuzz/run.sh            # FUZZ_SECONDS=300 by default (`make fuzz`)
#   FUZZ_SECONDS=20 fuzz/run.sh   # the bounded run of `make test`
# New inputs go to .build/fuzz/corpus (fuzz/corpus, the seeds, is only read); a crash leaves its input
# in .build/fuzz/artifacts/ and exits non-zero. Reproduce one with: .build/fuzz/heatgate-fuzz FILE
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${FUZZ_SECONDS:-300}"
OUT=.build/fuzz
mkdir -p "$OUT/corpus" "$OUT/artifacts"
BIN="$OUT/heatgate-fuzz"
# Rebuild only when a source changed.
if [ ! -x "$BIN" ] || [ -n "$(find Sources/HeatGateCore fuzz/FuzzEngine.swift -newer "$BIN" -name '*.swift' | head -1)" ]; then
    echo "fuzz: building $BIN" >&2
    swiftc -parse-as-library -module-name HeatGateFuzz -O -sanitize=fuzzer,address -use-ld=lld \
        -swift-version 6 -enable-upcoming-feature ExistentialAny \
        Sources/HeatGateCore/*.swift fuzz/FuzzEngine.swift -o "$BIN"
fi
echo "fuzz: running for ${SECONDS_TO_RUN}s" >&2
"$BIN" "$OUT/corpus" fuzz/corpus -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" -dict=fuzz/json.dict
