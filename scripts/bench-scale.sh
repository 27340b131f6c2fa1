#!/usr/bin/env bash
# Scale: a CA whose store holds many keys, loaded by examples/bulkload.rs (not through HTTP).
#
#   scripts/bench-scale.sh crl        # 1M revoked: start-up, CRL rebuild time, memory,
#                                     # issuance while 1M-entry CRLs are being rebuilt
#   scripts/bench-scale.sh inventory  # 10M keys (1% revoked): start-up, listing pages
#
# KEYS overrides the count. Loopback only; the CA is stopped at the end; the data lives in a
# temporary directory (about 0.6 GB per million keys) removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-crl}"
port="${PORT:-19443}"
server="https://127.0.0.1:$port"
work="$(mktemp -d)"
home="$work/certs"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --bin latchkey --example loadgen --example bulkload 2>&1 | tail -n 1 >&2
lk() { target/release/latchkey --server "$server" --home "$home" --ca-cert "$home/ca.pem" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
status_of() { curl -sk -o /dev/null -w '%{http_code}' "$server$1" 2>/dev/null || true; }
wait_for() {
  for _ in $(seq 1 1200); do [ "$(status_of "$1")" = 200 ] && return 0; sleep 0.05; done
  echo "$1 did not answer 200" >&2
  exit 1
}
start_ca() {
  local started
  started="$(now)"
  target/release/latchkey --home "$home" serve --listen "127.0.0.1:$port" >>"$work/serve.log" 2>&1 &
  pid=$!
  wait_for /healthz
  echo "start-up: listening after $(since "$started") s (the CA waits for its first CRL)"
}
peak_rss() { awk '/VmHWM/ {print $2/1024 " MB peak, "} /VmRSS/ {print $2/1024 " MB now"}' "/proc/$pid/status" | tr -d '\n'; echo; }
crl_number() {
  curl -sk -o /dev/null -D - "$server/v1/crl" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "latchkey-crl-number" {print $2}'
}
# A fresh key of owner $1 in tenant bulk; prints its id.
new_key() {
  local token dir
  token="$(lk token create --owner "$1@bulk" --scopes bench:issue --ttl 1h 2>/dev/null | head -n 1)"
  dir="$work/keys/$1"
  lk enroll --token "$token" --name "$1" --out "$dir/" >/dev/null
  openssl x509 -in "$dir/cert.pem" -noout -ext subjectAltName | grep -o 'key/[0-9a-f]*' | cut -d/ -f2
}

target/release/latchkey --home "$home" init >/dev/null
case "$mode" in
  crl)
    keys="${KEYS:-1000000}"
    target/release/examples/bulkload --home "$home" --keys "$keys" --revoke-every 1 --tenant bulk
    start_ca
    echo "memory after the first CRL ($keys entries): $(peak_rss)"
    # Build, sign, store and publish after one revocation, seen by a long-polling client of
    # the whole CRL, and by a follower of deltas: the long poll of the newest number, then the
    # delta from the CRL it held (the bytes it receives are both answers' bodies).
    issuer="$(curl -sk "$server/v1/issuers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuers"][0]["id"])')"
    for i in 1 2 3 4 5; do
      id="$(new_key "r$i")"
      n="$(crl_number)"
      ( curl -sk -o /dev/null "$server/v1/crl?newer_than=$n&wait=60"; now >"$work/seen$i" ) &
      poller=$!
      (
        curl -sk -o "$work/latest$i" "$server/v1/issuers/$issuer/crl/latest?newer_than=$n&wait=60"
        delta="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["delta"])' "$work/latest$i")"
        curl -sk -o "$work/delta$i" "$server$delta"
        now >"$work/applied$i"
      ) &
      follower=$!
      sleep 0.3
      revoked="$(now)"
      lk keys revoke "$id" >/dev/null
      wait "$poller" "$follower"
      echo "rebuild $i: revocation to new CRL at the client: $(echo "$(cat "$work/seen$i") - $revoked" | bc) s"
      echo "rebuild $i: revocation to delta at a follower: $(echo "$(cat "$work/applied$i") - $revoked" | bc) s," \
        "bytes received: $(( $(stat -c %s "$work/latest$i") + $(stat -c %s "$work/delta$i") ))"
    done
    echo "memory after the rebuilds: $(peak_rss)"
    # Issuance with and without CRL rebuilds going on (a revocation every second).
    target/release/examples/loadgen --server "$server" --home "$home" --concurrency 16 \
      --count 2000 --warmup 100 --server-pid "$pid" | sed 's/^/quiet: /'
    ( for i in $(seq 1 30); do lk revoke --tenant bench --owner "load-0-$i" >/dev/null 2>&1 || true; sleep 1; done ) &
    revoker=$!
    target/release/examples/loadgen --server "$server" --home "$home" --concurrency 16 \
      --count 2000 --warmup 100 --server-pid "$pid" | sed 's/^/rebuilding: /'
    kill "$revoker" 2>/dev/null || true
    echo "CRLs published during the run: $(grep -c 'CRL published' "$work/serve.log")"
    echo "memory at the end: $(peak_rss)"
    ;;
  inventory)
    keys="${KEYS:-10000000}"
    target/release/examples/bulkload --home "$home" --keys "$keys" --revoke-every 100 --tenant bulk
    echo "store: $(du -sh "$home/latchkey.db" | cut -f1)"
    start_ca
    echo "memory: $(peak_rss)"
    target/release/examples/loadgen --server "$server" --home "$home" --tenant bulk --list-pages 1000
    echo "memory: $(peak_rss)"
    ;;
  *)
    echo "usage: $0 crl|inventory" >&2
    exit 2
    ;;
esac
