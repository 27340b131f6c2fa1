#!/usr/bin/env bash
# Issuance throughput, latchkey next to cfssl: same machine, same run, one driver
# (examples/loadgen.rs) sending both the same CSRs at the same concurrency. Prints each run
# and the medians; absolute numbers drift on shared machines, the ratio holds.
#
#   scripts/bench-vs-cfssl.sh                 # RUNS=5 COUNT=2000 WARMUP=100 CONCURRENCY=16
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench scripts/bench-vs-cfssl.sh
#                                             # latchkey on PostgreSQL (an empty database)
#   PROFILE=1 scripts/bench-vs-cfssl.sh       # then one more latchkey run under `perf record`
#                                             # (Debian's linux-perf), and the profile's top
#   CONCURRENCY=256 scripts/bench-vs-cfssl.sh # 256 keep-alive mTLS connections
#   LATCHKEY_BIN=/tmp/old/latchkey scripts/bench-vs-cfssl.sh
#                                             # another build of the CA (before and after a
#                                             # change, in one sitting); the driver is this tree's
#
# Loopback only, bounded by request counts; both servers are stopped at the end.
# latchkey: `serve` on SQLite (synchronous=FULL), HTTPS, an enrollment token per request,
# every certificate recorded durably before it is answered. cfssl (Debian's golang-cfssl,
# installed if missing): `cfssl serve`, plain HTTP, `sign` with a P-256 CA and a 24 h
# client-auth profile, no credential, nothing recorded.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-5}"
count="${COUNT:-2000}"
warmup="${WARMUP:-100}"
concurrency="${CONCURRENCY:-16}"
latchkey_port="${LATCHKEY_PORT:-18443}"
cfssl_port="${CFSSL_PORT:-18888}"

if ! command -v cfssl >/dev/null 2>&1 || ! command -v cfssljson >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-cfssl >/dev/null
fi
cargo build --release --bin latchkey --example loadgen 2>&1 | tail -n 1 >&2

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

# cfssl: a P-256 CA and a client-auth signing profile like latchkey's certificates.
mkdir -p "$work/cfssl"
(
  cd "$work/cfssl"
  echo '{"CN":"bench cfssl CA","key":{"algo":"ecdsa","size":256},"ca":{"expiry":"87600h"}}' >ca-csr.json
  cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
  echo '{"signing":{"default":{"usages":["digital signature","client auth"],"expiry":"24h"}}}' >config.json
)
cfssl serve -address 127.0.0.1 -port "$cfssl_port" -ca "$work/cfssl/ca.pem" \
  -ca-key "$work/cfssl/ca-key.pem" -config "$work/cfssl/config.json" -loglevel 2 \
  >"$work/cfssl.log" 2>&1 &
cfssl_pid=$!
pids+=("$cfssl_pid")

database=()
[ -n "${DATABASE_URL:-}" ] && database=(--database-url "$DATABASE_URL")
latchkey_bin="${LATCHKEY_BIN:-target/release/latchkey}"
"$latchkey_bin" serve --home "$work/latchkey" --listen "127.0.0.1:$latchkey_port" \
  "${database[@]}" >"$work/latchkey.log" 2>&1 &
latchkey_pid=$!
pids+=("$latchkey_pid")
wait_port "$cfssl_port"
wait_port "$latchkey_port"
kill -0 "$latchkey_pid" 2>/dev/null || { cat "$work/latchkey.log" >&2; exit 1; }
# A fresh home is initialized while the port already listens: wait for the CA to answer and
# for the files loadgen reads.
for _ in $(seq 1 600); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$latchkey_port/healthz" 2>/dev/null || true)" = 200 ] &&
    [ -s "$work/latchkey/ca.pem" ] && [ -s "$work/latchkey/admin/key.pem" ] && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(cfssl version | head -n 1)" >&2
for run in $(seq 1 "$runs"); do
  target/release/examples/loadgen --server "https://127.0.0.1:$latchkey_port" \
    --home "$work/latchkey" --concurrency "$concurrency" --count "$count" --warmup "$warmup" \
    --server-pid "$latchkey_pid" --cfssl "http://127.0.0.1:$cfssl_port" --cfssl-pid "$cfssl_pid" \
    | sed "s/^{/{\"run\":$run,/" | tee -a "$work/results.jsonl"
done

python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(target, field):
    values = [r[field] for r in rows if r.get("target") == target and r.get(field) is not None]
    return statistics.median(values) if values else float("nan")
print(f"\nmedians of {len({r['run'] for r in rows})} runs")
print(f"{'CA':<9} {'certs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/cert':>12} "
      f"{'driver CPU':>11} {'errors':>7}")
for target in ("cfssl", "latchkey"):
    print(f"{target:<9} {med(target, 'certs_per_s'):>9.0f} {med(target, 'p50_ms'):>8.1f} "
          f"{med(target, 'p99_ms'):>8.1f} {med(target, 'server_cpu_ms_per_cert'):>12.3f} "
          f"{med(target, 'driver_cpu_ms_per_cert'):>11.3f} "
          f"{sum(r['errors'] for r in rows if r.get('target') == target):>7}")
ratios = [r["latchkey_over_cfssl_throughput"] for r in rows if "latchkey_over_cfssl_throughput" in r]
print(f"latchkey / cfssl throughput: median {statistics.median(ratios):.2f}x "
      f"(runs: {', '.join(f'{x:.2f}' for x in ratios)})")
PY

if [ -n "${PROFILE:-}" ]; then
  command -v perf >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
  }
  # Only the measured requests are profiled (loadgen makes its tokens first): perf attaches
  # when loadgen marks their start, sampling on the CPU clock (these virtual machines have
  # no hardware counters). Five times the count, so that the profile holds a few seconds.
  target/release/examples/loadgen --server "https://127.0.0.1:$latchkey_port" \
    --home "$work/latchkey" --concurrency "$concurrency" --count "$((count * 5))" --warmup 0 \
    --server-pid "$latchkey_pid" --mark "$work/measuring" >"$work/profiled.json" &
  loadgen_pid=$!
  while [ ! -e "$work/measuring" ] && kill -0 "$loadgen_pid" 2>/dev/null; do sleep 0.02; done
  perf record -e cpu-clock -F 1999 -g -o "$work/perf.data" -p "$latchkey_pid" 2>/dev/null &
  perf_pid=$!
  wait "$loadgen_pid"
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
  sed 's/^{/{"run":"profiled",/' "$work/profiled.json"
  echo
  echo "CPU by thread (threads of one pool summed):"
  perf report -i "$work/perf.data" --no-children --sort comm --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/-[0-9]+$//' | head -n 8
  echo
  echo "top functions (self time, >= 1.5%):"
  perf report -i "$work/perf.data" --no-children --sort dso,sym --percent-limit 1.5 \
    --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 30
fi
