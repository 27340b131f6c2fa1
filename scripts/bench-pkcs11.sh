#!/usr/bin/env bash
# Signatures per second with the issuing key in a file and inside a PKCS#11 token (SoftHSM2),
# through the same signer: the `signer/` benches of `benches/issuance.rs`. Makes a throw-away
# token in a temporary directory; needs Debian's softhsm2.
set -euo pipefail
cd "$(dirname "$0")/.."
module=/usr/lib/softhsm/libsofthsm2.so
[ -e "$module" ] || { echo "SoftHSM2 is missing: apt-get install softhsm2" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label bench --pin 1234 --so-pin 5678 >/dev/null
LATCHKEY_BENCH_PKCS11_MODULE=$module LATCHKEY_BENCH_PKCS11_TOKEN=bench LATCHKEY_BENCH_PKCS11_PIN=1234 \
  cargo bench --bench issuance -- signer/ "$@"
