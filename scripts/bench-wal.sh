#!/usr/bin/env bash
# What an issuance writes on SQLite (issue 14): the bytes and write calls per certificate,
# the fsyncs, and which B-trees the pages of a commit belong to. Each page a commit touches
# is written to the WAL whole, so this is where an index keyed at random shows.
#
#   scripts/bench-wal.sh                               # COUNT=20000 at CONCURRENCY=16
#   LATCHKEY_BIN=/tmp/old/latchkey scripts/bench-wal.sh  # another build of the CA
#
# 1. A fresh CA on loopback (SQLite, synchronous=FULL); examples/loadgen.rs enrolls COUNT
#    keys, each with a token of its own (made first, not counted).
# 2. Over the measured enrollments only: `wchar` and `syscw` of /proc/<pid>/io, and the
#    fsync calls (`perf stat` on the syscall tracepoint, Debian's linux-perf, if present).
# 3. The CA is killed (-9, so the WAL is left as it was) and the frames of the WAL's last
#    generation are mapped to their tables and indexes with SQLite's `dbstat` (Python's
#    sqlite3): pages per commit by B-tree, medians of the middle half of the commits.
#
# Loopback only, bounded by COUNT; the CA is stopped and its directory removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

count="${COUNT:-20000}"
concurrency="${CONCURRENCY:-16}"
port="${LATCHKEY_PORT:-18543}"
latchkey_bin="${LATCHKEY_BIN:-target/release/latchkey}"
cargo build --release --bin latchkey --example loadgen 2>&1 | tail -n 1 >&2

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$latchkey_bin" serve --home "$work/home" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/healthz" 2>/dev/null || true)" = 200 ] &&
    [ -s "$work/home/ca.pem" ] && [ -s "$work/home/admin/key.pem" ] && break
  sleep 0.1
done

target/release/examples/loadgen --server "https://127.0.0.1:$port" --home "$work/home" \
  --concurrency "$concurrency" --count "$count" --warmup 0 --server-pid "$pid" \
  --mark "$work/measuring" >"$work/run.json" &
loadgen=$!
while [ ! -e "$work/measuring" ] && kill -0 "$loadgen" 2>/dev/null; do sleep 0.01; done
io() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/io"; }
w0="$(io wchar)" s0="$(io syscw)"
perf_pid=""
if command -v perf >/dev/null 2>&1; then
  perf stat -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p "$pid" \
    -o "$work/fsyncs" 2>/dev/null &
  perf_pid=$!
fi
wait "$loadgen"
w1="$(io wchar)" s1="$(io syscw)"
if [ -n "$perf_pid" ]; then
  kill -INT "$perf_pid"
  wait "$perf_pid" 2>/dev/null || true
fi
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=""

cat "$work/run.json"
echo "bytes written per certificate: $(((w1 - w0) / count)); write calls per certificate: $(python3 -c "print(round(($s1 - $s0) / $count, 2))")"
[ -s "$work/fsyncs" ] && awk '/sys_enter_f(data)?sync/ {gsub(",", "", $1); print "  " $2 ": " $1}' "$work/fsyncs"

python3 - "$work/home" <<'PY'
import collections, os, shutil, sqlite3, struct, sys
home = sys.argv[1]
wal = open(os.path.join(home, "latchkey.db-wal"), "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">8I", wal[:32])
commits, frames, at = [], [], 32
while at + 24 + page_size <= len(wal):
    page, db_size, s1, s2 = struct.unpack(">4I", wal[at:at + 16])
    if (s1, s2) != (salt1, salt2):
        break  # the rest is an older generation
    frames.append(page)
    if db_size:  # a commit frame
        commits.append(frames)
        frames = []
    at += 24 + page_size
copy = os.path.join(home, "copy")
os.mkdir(copy)
for name in os.listdir(home):
    if name.startswith("latchkey.db"):
        shutil.copy(os.path.join(home, name), copy)
owner = dict(sqlite3.connect(os.path.join(copy, "latchkey.db")).execute("SELECT pageno, name FROM dbstat"))
middle = commits[len(commits) // 4: 3 * len(commits) // 4] or commits
pages = collections.Counter()
for commit in middle:
    for page in set(commit):
        pages[owner.get(page, "?")] += 1
print(f"WAL: {len(commits)} commits in its last generation, "
      f"{sorted(map(len, middle))[len(middle) // 2]} frames per commit (median)")
print("pages per commit, by B-tree:")
for name, n in pages.most_common():
    print(f"  {n / len(middle):6.2f}  {name}")
PY
