#!/usr/bin/env bash
# Soak (issue 14): issuance at 80% of the measured maximum for MINUTES minutes on a fresh CA,
# then a verdict: the paced rate held, no error, the CA's RSS at the end at most 10% above
# its RSS after the first minute, the last minute's p99 at most 20% above the first
# minute's (growth is what a soak looks for: the first minute, with the caches and the store
# still cold, is often the slower one, so a fall is no failure; both changes are printed).
#
#   scripts/bench-soak.sh                    # ENGINE=sqlite MINUTES=10
#   ENGINE=postgres scripts/bench-soak.sh    # DATABASE_URL (default
#                                            # postgres://postgres@127.0.0.1:5432/latchkey_soak),
#                                            # dropped and created again first
#
# 1. The maximum: examples/loadgen.rs, MAX_COUNT (3000) enrollments at CONCURRENCY (16).
# 2. The soak: loadgen --rate (SHARE, 0.8, of the maximum) --duration MINUTES×60 at the same
#    concurrency. Each request needs a token and a CSR of its own, made before the clock
#    starts (rate × 60 × MINUTES of each: 1.5M at 2,500/s for 10 minutes); the API makes one
#    token per request, so this takes a while, printed as "prepared … seconds".
#    REPORT_EVERY (60) seconds between two lines.
#
# Loopback only; the CA is stopped at the end; its SQLite store lives in a temporary
# directory removed at the end (about 1.5 GB after 1.5M certificates), the PostgreSQL
# database is left for inspection. SKIP_BUILD=1 uses the binaries in target/release;
# LATCHKEY_BIN=/tmp/old/latchkey soaks another build of the CA with this tree's driver.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${ENGINE:-sqlite}"
minutes="${MINUTES:-10}"
concurrency="${CONCURRENCY:-16}"
max_count="${MAX_COUNT:-3000}"
share="${SHARE:-0.8}"
report_every="${REPORT_EVERY:-60}"
port="${PORT:-19643}"
server="https://127.0.0.1:$port"

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --bin latchkey --example loadgen 2>&1 | tail -n 1 >&2
fi

work="$(mktemp -d)"
home="$work/certs"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

database=()
case "$engine" in
  sqlite) ;;
  postgres)
    url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/latchkey_soak}"
    name="${url##*/}"
    name="${name%%\?*}"
    admin_url="${url%/*}/postgres"
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\"" >/dev/null
    database=(--database-url "$url")
    ;;
  *)
    echo "ENGINE is sqlite or postgres" >&2
    exit 2
    ;;
esac

latchkey_bin="${LATCHKEY_BIN:-target/release/latchkey}"
"$latchkey_bin" serve --home "$home" --listen "127.0.0.1:$port" "${database[@]}" \
  >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' "$server/healthz" 2>/dev/null || true)" = 200 ] &&
    [ -s "$home/ca.pem" ] && [ -s "$home/admin/key.pem" ] && break
  sleep 0.05
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); engine $engine" >&2
max="$(target/release/examples/loadgen --server "$server" --home "$home" --concurrency "$concurrency" \
  --count "$max_count" --warmup 100 --server-pid "$pid")"
echo "maximum: $max"
rate="$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["certs_per_s"] * float(sys.argv[2])))' "$max" "$share")"
echo "soak: $rate certificates/s ($share of the maximum) for $minutes minutes at c=$concurrency"

target/release/examples/loadgen --server "$server" --home "$home" --concurrency "$concurrency" \
  --warmup 100 --server-pid "$pid" --rate "$rate" --duration "$((minutes * 60))" \
  --report-every "$report_every" --token-concurrency "${TOKEN_CONCURRENCY:-8}" \
  2> >(tee "$work/soak.err" >&2) | tee "$work/soak.jsonl"

python3 - "$work/soak.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
intervals = [r for r in rows if r.get("soak") == "interval"]
total = next(r for r in rows if r.get("soak") == "total")
first, last = intervals[0], intervals[-1]
def pct(a, b):
    return (a - b) / b * 100 if a is not None and b else float("nan")
rss_first, rss_end = first["rss_mb"], total["rss_mb_end"]
rss_change = pct(rss_end, rss_first)
p99_change = pct(last["p99_ms"], first["p99_ms"])
print(f"\n{'minute':>6} {'count':>8} {'errors':>7} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} {'lag ms':>7} {'RSS MB':>7}")
for r in intervals:
    print(f"{r['minute']:>6} {r['count']:>8} {r['errors']:>7} {r['certs_per_s']:>7.0f} "
          f"{r['p50_ms'] or float('nan'):>7.2f} {r['p99_ms'] or float('nan'):>7.2f} "
          f"{r['max_lag_ms']:>7.1f} {r['rss_mb'] or float('nan'):>7.1f}")
print(f" total {total['ok'] + total['errors']:>8} {total['errors']:>7} {total['certs_per_s']:>7.0f} "
      f"{total['p50_ms'] or float('nan'):>7.2f} {total['p99_ms'] or float('nan'):>7.2f}"
      f"   (rate {total['rate']}/s asked; tokens and CSRs made in {total['preparation_s']:.0f} s)")
max_lag = max(r["max_lag_ms"] for r in intervals)
checks = [
    ("the rate held: every request sent within 1 s of its due time", max_lag <= 1000,
     f"latest send {max_lag:.0f} ms after its due time; {total['certs_per_s']:.0f}/s of {total['rate']:.0f}/s asked"),
    ("no error", total["errors"] == 0, f"{total['errors']} errors of {total['requests']}"),
    ("RSS at the end at most 10% above its value after the first interval", rss_change <= 10,
     f"{rss_first:.1f} MB -> {rss_end:.1f} MB ({rss_change:+.1f}%)"),
    ("p99 of the last interval at most 20% above the first's", p99_change <= 20,
     f"{first['p99_ms']:.2f} ms -> {last['p99_ms']:.2f} ms ({p99_change:+.1f}%)"),
]
if len(intervals) < 2:
    print("(one interval only: first and last are the same; set REPORT_EVERY below 60 for short runs)")
for name, ok, detail in checks:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
print("verdict:", "PASS" if all(ok for _, ok, _ in checks) else "FAIL")
PY
