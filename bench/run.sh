#!/bin/sh
# bench/run.sh BUILD SHARED — speed and memory figures, printed (history lives in SPEED.md).
#
# Each section runs only when its program has been built. Figures are medians of several
# runs; ratios are against the upstream figures in $SHARED/reference/*/README.md. Nothing
# here asserts a speed: regressions are read by people, not by CI.
set -eu
B=${1:-build}
SHARED=${2:-../shared}
RUNS=${BENCH_RUNS:-5}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

if [ -x "$B/bench-encode" ]; then
    echo "== encoders (cost as a fraction of real time; lower is better)"
    "$B/bench-encode"
fi

if [ -x "$B/pocket-bench" ]; then
    echo "== pocket-tts (random full-size weights)"
    "$B/pocket-bench" "$SHARED/reference/pocket-tts"
fi

if [ -x "$B/pocket-engine-bench" ]; then
    echo "== pocket-tts engine (random full-size weights): startup, clone, TTFA, frames/s, memory"
    "$B/pocket-engine-bench" "$SHARED/reference/pocket-tts" "$RUNS" ${BENCH_POCKET_CONFIGS:-}
fi

if [ -x "$B/pockettts" ] && command -v curl >/dev/null 2>&1; then
    echo "== server, espeak engine: time to first byte and real-time factor (median of $RUNS)"
    port=$(( 20000 + $$ % 20000 ))
    t0=$(date +%s%N)
    "$B/pockettts" serve --host 127.0.0.1 --port "$port" --log-level ERROR &
    pid=$!
    trap 'kill $pid 2>/dev/null || true' EXIT
    i=0
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 400 ] && { echo "server did not start"; exit 1; }; sleep 0.01
    done
    t1=$(date +%s%N)
    echo "  start to ready (incl. curl polling at 10 ms): $(( (t1 - t0) / 1000000 )) ms"
    text="The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. How vexingly quick daft zebras jump. Sphinx of black quartz, judge my vow."
    for fmt in pcm wav mp3 opus aac flac; do
        ttfb=""; total=""
        r=0
        while [ $r -lt "$RUNS" ]; do
            out=$(curl -s -o /tmp/pockettts-bench.$$ -w '%{http_code} %{time_starttransfer} %{time_total}' \
                -H 'Content-Type: application/json' \
                -d "{\"model\":\"espeak\",\"input\":\"$text\",\"voice\":\"alloy\",\"response_format\":\"$fmt\",\"stream\":true}" \
                "http://127.0.0.1:$port/v1/audio/speech")
            set -- $out
            [ "$1" = 200 ] || { echo "  $fmt: HTTP $1 (skipped)"; break; }
            ttfb="$ttfb $2"; total="$total $3"
            r=$((r + 1))
        done
        [ -n "$ttfb" ] || continue
        med() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
        awk -v f="$fmt" -v a="$(med $ttfb)" -v b="$(med $total)" \
            'BEGIN { printf "  %-5s ttfb %7.1f ms   total %7.1f ms\n", f, a * 1000, b * 1000 }'
    done
    rm -f /tmp/pockettts-bench.$$
    rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
    echo "  server peak RSS: $((rss / 1024)) MB"
    kill $pid; wait $pid 2>/dev/null || true
    trap - EXIT
fi
