#!/usr/bin/env bash
# A relying service of the library (examples/analytics_hub.rs) next to nginx with
# `ssl_verify_client`, both holding the same CRL bundle with KEYS revoked certificates (1M by
# default), driven by one client (examples/loadgen.rs) with one latchkey key, in one run
# (issue 14):
#
#   scripts/bench-hub-vs-nginx.sh      # KEYS=1000000 RUNS=5 HANDSHAKES=5000 REQUESTS=200000
#                                      # CONCURRENCY=16 (both modes) WARMUP=200
#   RUNS=0 PROFILE=1 scripts/bench-hub-vs-nginx.sh   # the hub's handshake profile alone
#
# 1. A fresh CA, KEYS revoked keys loaded by examples/bulkload.rs (as scripts/bench-scale.sh
#    does), one good key and one revoked key enrolled; the CA's chain (`GET /v1/ca`) and its
#    whole CRL bundle (`latchkey crl sync --bundle --once`: the intermediate's CRL and the
#    root's, which nginx needs for OpenSSL's check of every CA of the chain) written to
#    files; then the CA is stopped: neither server needs it.
# 2. The hub with --ca-chain/--crl-file (the same two files nginx reads), and nginx
#    (worker_processes 2 for the 2 cores the hub's runtime uses, no session cache, no
#    tickets, a static `return 200`), each with the same P-256 server key, on 127.0.0.1.
# 3. The revoked key is refused by both and the good key accepted, so the CRL is loaded.
# 4. RUNS times, alternating: --handshakes (a new mTLS connection per GET) against nginx then
#    the hub, then --requests (keep-alive) against each. A table of the runs, the medians
#    and hub / nginx.
#
# nginx's cost per handshake grows with the CRL (a profile of its workers at 100k entries:
# 84% in libcrypto, on top a SHA-256 loop, i.e. the CRL's signature checked, its whole body
# hashed, at every verification): on the 2-core test machine 0.7 ms of CPU without a CRL,
# 1.6 ms at 20k entries, 7.3 ms at 200k, so some 35 ms at 1M, about 55 handshakes/s; the
# default HANDSHAKES=5000 then takes ~1.5 minutes per nginx run, ~10 minutes in all.
#
# Loopback only, bounded by counts; everything started here is stopped at the end; the data
# lives in a temporary directory (about 0.6 GB per million keys) removed at the end.
# SKIP_BUILD=1 uses the binaries in target/release as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

keys="${KEYS:-1000000}"
runs="${RUNS:-5}"
handshakes="${HANDSHAKES:-5000}"
requests="${REQUESTS:-200000}"
concurrency="${CONCURRENCY:-16}"
warmup="${WARMUP:-200}"
ca_port="${CA_PORT:-19543}"
hub_port="${HUB_PORT:-19544}"
nginx_port="${NGINX_PORT:-19545}"
ca="https://127.0.0.1:$ca_port"

if ! [ -x /usr/sbin/nginx ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --bin latchkey --example loadgen --example bulkload \
    --example analytics_hub 2>&1 | tail -n 1 >&2
fi

work="$(mktemp -d)"
home="$work/certs"
ca_pid=""
hub_pid=""
nginx_pid=""
cleanup() {
  for pid in "$ca_pid" "$hub_pid" "$nginx_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

lk() { target/release/latchkey --server "$ca" --home "$home" --ca-cert "$home/ca.pem" "$@"; }
wait_port() {
  # Up to 3 minutes: the hub and nginx parse the whole CRL (49 MB at 1M entries) first.
  for _ in $(seq 1 3600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  exit 1
}
crl_number() {
  curl -sk -o /dev/null -D - "$ca/v1/crl" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "latchkey-crl-number" {print $2}'
}
# A key of owner $1 in tenant bulk, into $work/keys/$1/; prints its id.
new_key() {
  local token dir
  token="$(lk token create --owner "$1@bulk" --scopes bench:issue --ttl 1h 2>/dev/null | head -n 1)"
  dir="$work/keys/$1"
  lk enroll --token "$token" --name "$1" --out "$dir/" >/dev/null
  openssl x509 -in "$dir/cert.pem" -noout -ext subjectAltName | grep -o 'key/[0-9a-f]*' | cut -d/ -f2
}

# 1. The CA, its revoked million, the two keys, the files; then the CA stops.
target/release/latchkey --home "$home" init >/dev/null
target/release/examples/bulkload --home "$home" --keys "$keys" --revoke-every 1 --tenant bulk >&2
target/release/latchkey --home "$home" serve --listen "127.0.0.1:$ca_port" >"$work/ca.log" 2>&1 &
ca_pid=$!
wait_port "$ca_port"
until [ "$(curl -sk -o /dev/null -w '%{http_code}' "$ca/healthz")" = 200 ]; do sleep 0.1; done
new_key good >/dev/null
revoked_id="$(new_key revoked)"
before="$(crl_number)"
lk keys revoke "$revoked_id" >/dev/null
for _ in $(seq 1 600); do [ "$(crl_number)" != "$before" ] && break; sleep 0.1; done
[ "$(crl_number)" != "$before" ] || { echo "no CRL after the revocation" >&2; exit 1; }
curl -sf --cacert "$home/ca.pem" "$ca/v1/ca" >"$work/ca-chain.pem"
lk crl sync --bundle --once --out "$work/crl.pem" >/dev/null
kill "$ca_pid"
wait "$ca_pid" 2>/dev/null || true
ca_pid=""
entries="$(openssl crl -in "$work/crl.pem" -noout -text | grep -c 'Serial Number:' || true)"
echo "CRL bundle: $(stat -c %s "$work/crl.pem") bytes, $(grep -c 'BEGIN X509 CRL' "$work/crl.pem") CRLs," \
  "$entries entries in the first (the intermediate's)" >&2

# 2. One P-256 server key for both, certified for 127.0.0.1 by a throwaway root.
(
  cd "$work"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench-server-root -keyout server-root-key.pem -out server-root.pem 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=127.0.0.1 -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >ext.cnf
  openssl x509 -req -in server.csr -CA server-root.pem -CAkey server-root-key.pem \
    -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
)

target/release/examples/analytics_hub --listen "127.0.0.1:$hub_port" --ca-cert "$home/ca.pem" \
  --ca-chain "$work/ca-chain.pem" --crl-file "$work/crl.pem" \
  --tls-cert "$work/server.pem" --tls-key "$work/server-key.pem" >"$work/hub.log" 2>&1 &
hub_pid=$!

mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $work/nginx/logs/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        ssl_certificate $work/server.pem;
        ssl_certificate_key $work/server-key.pem;
        ssl_session_cache off;
        ssl_session_tickets off;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_client_certificate $work/ca-chain.pem;
        ssl_crl $work/crl.pem;
        keepalive_requests 1000000;
        location / { return 200 "ok"; }
    }
}
EOF
/usr/sbin/nginx -p "$work/nginx" -e "$work/nginx/logs/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>>"$work/nginx/logs/error.log" &
nginx_pid=$!
wait_port "$nginx_port"
wait_port "$hub_port"
# nginx's master and its workers, whose CPU loadgen adds up.
sleep 0.5
nginx_pids="$nginx_pid,$(pgrep -d, -P "$nginx_pid")"

hub_url="https://127.0.0.1:$hub_port/api/v1/whoami"
nginx_url="https://127.0.0.1:$nginx_port/"
key() { echo --client-chain "$work/keys/$1/chain.pem" --client-key "$work/keys/$1/key.pem" --trust "$work/server-root.pem"; }

# 3. The CRL is really loaded: the revoked key is refused by both, the good key accepted.
status() {
  curl -s -o /dev/null -w '%{http_code}' --cacert "$work/server-root.pem" \
    --cert "$work/keys/$1/chain.pem" --key "$work/keys/$1/key.pem" "$2" 2>/dev/null || true
}
for url in "$nginx_url" "$hub_url"; do
  good="$(status good "$url")"
  bad="$(status revoked "$url")"
  echo "$url: good key $good, revoked key ${bad:-refused} (000 = handshake refused)" >&2
  if [ "$good" != 200 ] || [ "$bad" = 200 ]; then
    echo "the CRL is not in force at $url" >&2
    exit 1
  fi
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(/usr/sbin/nginx -v 2>&1)" >&2
lg() { target/release/examples/loadgen --concurrency "$concurrency" --warmup "$warmup" "$@"; }
if [ -n "${PROFILE:-}" ]; then
  # The hub's handshakes under `perf record` (Debian's linux-perf), three seconds in the middle
  # of a run of its own, before the measured runs; RUNS=0 PROFILE=1 gives the profile alone.
  # shellcheck disable=SC2046
  lg --handshakes "$hub_url" $(key good) --count "$((handshakes * 2))" --label hub \
    --server-pid "$hub_pid" >"$work/profiled.json" &
  profiled=$!
  sleep 1
  timeout -s INT 3 perf record -e cpu-clock -F 1999 -g -o "$work/perf.data" -p "$hub_pid" 2>/dev/null || true
  wait "$profiled"
  sed 's/^{/{"run":"profiled",/' "$work/profiled.json"
  echo "hub, top functions while handshaking (self time, >= 1.5%):"
  perf report -i "$work/perf.data" --no-children --sort dso,sym --percent-limit 1.5 \
    --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 30
  [ "$runs" -gt 0 ] || exit 0
fi
for run in $(seq 1 "$runs"); do
  for mode in handshakes requests; do
    count="$handshakes"
    [ "$mode" = requests ] && count="$requests"
    # shellcheck disable=SC2046
    lg --"$mode" "$nginx_url" $(key good) --count "$count" --label nginx --server-pid "$nginx_pids" |
      sed "s/^{/{\"run\":$run,/" | tee -a "$work/results.jsonl"
    # shellcheck disable=SC2046
    lg --"$mode" "$hub_url" $(key good) --count "$count" --label hub --server-pid "$hub_pid" |
      sed "s/^{/{\"run\":$run,/" | tee -a "$work/results.jsonl"
  done
done
echo "hub RSS at the end: $(awk '/VmRSS/ {print $2/1024 " MB"}' "/proc/$hub_pid/status")," \
  "nginx: $(for p in ${nginx_pids//,/ }; do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{s += $1} END {print s/1024 " MB"}')"

python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(mode, target, run, field):
    for r in rows:
        if r["mode"] == mode and r["target"] == target and r["run"] == run:
            return r.get(field)
runs = sorted({r["run"] for r in rows})
def f(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else format("n/a", spec[:-3] if "." in spec else spec.rstrip("d"))
for mode, rate, cpu in (("handshakes", "handshakes_per_s", "server_cpu_ms_per_handshake"),
                        ("requests", "requests_per_s", "server_cpu_ms_per_request")):
    print(f"\n{mode} (c={rows[0]['concurrency']})")
    print(f"{'run':>4} {'server':<6} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'errors':>7}")
    for run in runs:
        for target in ("nginx", "hub"):
            g = lambda field: get(mode, target, run, field)
            print(f"{run:>4} {target:<6} {f(g(rate), '>9.0f')} {f(g('p50_ms'), '>8.2f')} "
                  f"{f(g('p99_ms'), '>8.2f')} {f(g(cpu), '>8.3f')} {g('errors'):>7}"
                  + (f"  first error: {g('first_error')}" if g('first_error') else ""))
    med = {}
    for target in ("nginx", "hub"):
        vals = lambda f: [get(mode, target, r, f) for r in runs if get(mode, target, r, f) is not None]
        med[target] = {f: statistics.median(vals(f)) if vals(f) else float("nan")
                       for f in (rate, "p50_ms", "p99_ms", cpu)}
        m = med[target]
        errors = sum(get(mode, target, r, "errors") for r in runs)
        print(f"{'med':>4} {target:<6} {f(m[rate], '>9.0f')} {f(m['p50_ms'], '>8.2f')} "
              f"{f(m['p99_ms'], '>8.2f')} {f(m[cpu], '>8.3f')} {errors:>7}")
    ratios = [get(mode, "hub", r, rate) / get(mode, "nginx", r, rate) for r in runs
              if get(mode, "nginx", r, rate)]
    if not ratios or not med["nginx"][rate] or not med["nginx"][cpu]:
        print("no ratio: a server answered nothing, or its CPU was not measured")
        continue
    print(f"hub / nginx {mode}/s: median of the runs' ratios {statistics.median(ratios):.2f}x "
          f"(runs: {', '.join(f'{x:.2f}' for x in ratios)}); ratio of medians "
          f"{med['hub'][rate] / med['nginx'][rate]:.2f}x; CPU per {mode[:-1]} hub / nginx "
          f"{med['hub'][cpu] / med['nginx'][cpu]:.3g}x")
PY
