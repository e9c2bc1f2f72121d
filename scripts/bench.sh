#!/usr/bin/env bash
# make bench: measures herald and writes the figures into BENCHMARKS.md (between the markers of
# each section). Needs a release build (the Makefile builds it first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/herald
[ -x "$BIN" ] || { echo "bench: build first (make build)"; exit 1; }

# What the benchmarks drive besides what the tests need: wrk for the console.
bash scripts/test-deps.sh
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo DEBIAN_FRONTEND=noninteractive"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

# BENCH_ONLY="inbound console" measures only those sections (footprint inbound outbound replies
# console); the others keep their figures.
only() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Writes $2 between the markers of section $1 in BENCHMARKS.md.
write_section() {
python3 - "$1" "$2" <<'PY'
import sys
name, body = sys.argv[1], sys.argv[2]
path = "BENCHMARKS.md"
text = open(path).read()
start, end = f"<!-- bench:{name}:start -->\n", f"<!-- bench:{name}:end -->"
a, b = text.index(start) + len(start), text.index(end)
open(path, "w").write(text[:a] + body + "\n" + text[b:])
PY
}

# --- footprint: stripped binary size, idle memory of `herald run` ---
if only footprint; then
size=$(stat -c %s "$BIN")
cat > "$work/herald.toml" <<CFG
hostname = "bench.example.test"
[console]
listen = "127.0.0.1:0"
[inbound]
listen = "127.0.0.1:0"
CFG
"$BIN" run --config "$work/herald.toml" --data "$work/data" 2>"$work/log" &
pid=$!
for _ in $(seq 1 100); do grep -q "ready" "$work/log" 2>/dev/null && break; sleep 0.1; done
grep -q "ready" "$work/log" || { cat "$work/log"; echo "bench: herald did not start"; exit 1; }
sleep 2   # let it settle: idle means after boot
rss_kb=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status)
pss_kb=$(awk '/^Pss:/ {print $2}' /proc/$pid/smaps_rollup)
threads=$(awk '/^Threads:/ {print $2}' /proc/$pid/status)
kill -TERM "$pid"; wait "$pid" || true; pid=""

fmt_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
section=$(cat <<MD
| measure | value |
|---|---|
| stripped release binary | $(awk -v b="$size" 'BEGIN { printf "%.2f MB (%d bytes)", b / 1e6, b }') |
| idle RSS of \`herald run\` (after boot, 2 s settled) | $(fmt_mib "$rss_kb") |
| idle PSS | $(fmt_mib "$pss_kb") |
| threads | $threads |

Measured $(date -u +%Y-%m-%d) on $(nproc) cores, rustc $(rustc --version | cut -d' ' -f2).
MD
)
echo "$section"

write_section footprint "$section"
fi

# --- inbound: herald and Postfix (../shared/bench/postfix-anchor.sh), same run ---
shared=${SHARED:-../shared}
if ! only inbound; then :
elif [ -f "$shared/bench/postfix-anchor.sh" ]; then
  inbound=$(python3 scripts/bench_inbound.py "$BIN" target/release/examples/smtp_probe "$shared" "$work/inbound")
  echo "$inbound"
  write_section inbound "$inbound"
else
  echo "bench: $shared/bench/postfix-anchor.sh not found: inbound benchmark skipped"
fi

# --- outbound: notifications from API 202 to smarthost 250, herald and Postfix relaying to the
# same smtp-sink, same run ---
if ! only outbound; then :
elif [ -f "$shared/bench/postfix-anchor.sh" ]; then
  outbound=$(python3 scripts/bench_outbound.py "$BIN" target/release/examples/api_load "$shared" "$work/outbound")
  echo "$outbound"
  write_section outbound "$outbound"
else
  echo "bench: $shared/bench/postfix-anchor.sh not found: outbound benchmark skipped"
fi

# --- reply processing: replies from the 250 to the webhook's 2xx, with a local webhook receiver;
# smtp-source comes with Postfix (postfix-anchor.sh installs it) ---
if ! only replies; then :
elif command -v smtp-source >/dev/null; then
  replies=$(python3 scripts/bench_replies.py "$BIN" "$work/replies")
  echo "$replies"
  write_section replies "$replies"
else
  echo "bench: smtp-source not found (Debian's postfix package): reply processing benchmark skipped"
fi

# --- the console: configuration runs under inbound load, page latency under wrk ---
if ! only console; then :
elif command -v smtp-source >/dev/null && command -v wrk >/dev/null; then
  console=$(cd scripts && python3 bench_console.py "../$BIN" "$work/console")
  echo "$console"
  write_section console "$console"
else
  echo "bench: smtp-source or wrk not found (Debian's postfix and wrk packages): console benchmark skipped"
fi
