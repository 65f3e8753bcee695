#!/usr/bin/env bash
# The static lameduck (cmake -DLAMEDUCK_STATIC=ON) alone in an empty root, as in the image.
#
# The image is `FROM scratch` plus one file: /lameduck. Nothing else is needed because the
# binary is fully static (glibc, libstdc++ and Debian's libuv_a.a linked in; no ELF
# interpreter, no .so) and at run time it needs no file but those its options name (--config,
# --admin-token-file, --app-pidfile; --app-process reads /proc, which a container has): numeric
# addresses (inet_pton, no getaddrinfo: no /etc/hosts, /etc/nsswitch.conf or NSS modules), no
# user lookups, UTC timestamps, logs to stdout, no /tmp. The one NSS function linked in is
# getpwuid_r, from libuv's uv_os_get_passwd()/uv_os_homedir(), which lameduck never calls;
# that is the linker's "Using 'getpwuid_r' in statically linked applications" warning.
#
# This root is stricter than a container: no /proc, /dev, /sys or /etc at all (a container
# runtime mounts /proc, /dev and /sys and bind-mounts /etc/hosts and /etc/resolv.conf). strace
# shows three paths looked for, all optional: /proc/self/exe (glibc's static start-up, for
# dlopen's $ORIGIN), /dev/null (libuv's spare fd against EMFILE; it falls back to "/") and
# /etc/localtime (strftime's tzset; lameduck formats UTC from gmtime_r anyway).
# `chroot ROOT /lameduck ...` shares the host's network namespace, so it is tested from outside
# with curl: `version`; a proxy with no upstream (/live 200, /ready 503 "starting", 502 through
# the proxy) that exits 0 on SIGTERM; and `install`, if this build has it, without /proc.
#
# Usage: empty_root_test.sh CMAKE SOURCE_DIR STATIC_BUILD_DIR BINARY_RELATIVE_PATH VERSION
# Builds only the lameduck target in STATIC_BUILD_DIR (configured once, then reused). Needs root
# for chroot, or `unshare -r` for an unprivileged user namespace; else exits 77 (CTest skip).
set -euo pipefail

if (($# != 5)); then
  echo "usage: $0 CMAKE SOURCE_DIR STATIC_BUILD_DIR BINARY_RELATIVE_PATH VERSION" >&2
  exit 2
fi
cmake=$1 source_dir=$2 build_dir=$3 binary_path=$4 version=$5

skip() {
  echo "SKIP: $*"
  exit 77
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in chroot curl readelf; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
if ((EUID == 0)); then
  in_root=(chroot)
elif unshare -r chroot / true 2>/dev/null; then
  in_root=(unshare -r chroot)  # root in a user namespace may chroot; same network namespace
else
  skip "chroot needs root, and unprivileged user namespaces (unshare -r) are unavailable"
fi

# --- Build: the lameduck target only, in its own tree, configured once.
# The product alone: no tests or bench, so no GoogleTest needed, as in k8s/Dockerfile.
if ! grep -qx 'LAMEDUCK_STATIC:BOOL=ON' "$build_dir/CMakeCache.txt" 2>/dev/null ||
  ! grep -qx 'LAMEDUCK_BUILD_TESTS:BOOL=OFF' "$build_dir/CMakeCache.txt"; then
  "$cmake" -S "$source_dir" -B "$build_dir" -DLAMEDUCK_STATIC=ON -DCMAKE_BUILD_TYPE=Release \
    -DLAMEDUCK_BUILD_TESTS=OFF -DLAMEDUCK_BUILD_BENCH=OFF
fi
"$cmake" --build "$build_dir" --target lameduck -j"$(nproc)"
binary=$build_dir/$binary_path
[[ -x "$binary" ]] || fail "$binary was not built"

# --- Static: no program interpreter, no shared libraries.
if readelf -lW "$binary" | grep -q 'INTERP'; then
  fail "$binary is dynamic: $(readelf -lW "$binary" | grep -A1 INTERP)"
fi
if readelf -dW "$binary" | grep -q 'NEEDED'; then
  fail "$binary needs shared libraries: $(readelf -dW "$binary" | grep NEEDED)"
fi
if ldd_out=$(ldd "$binary" 2>&1); then
  fail "ldd lists dependencies of $binary: $ldd_out"
fi
if command -v file >/dev/null; then
  file "$binary"
  file -b "$binary" | grep -q 'statically linked' || fail "file(1) does not call $binary static"
fi
echo "static: $(stat -c %s "$binary") bytes, no interpreter, no NEEDED ($(echo "$ldd_out" | xargs))"

# --- The empty root: /lameduck and nothing else.
root=$(mktemp -d "${TMPDIR:-/tmp}/lameduck-empty-root.XXXXXX")
logs=$(mktemp -d "${TMPDIR:-/tmp}/lameduck-empty-root-logs.XXXXXX")
touch "$logs/out" "$logs/err"  # polled before the background lameduck's redirections exist
pid=
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf -- "$root" "$logs"
}
trap cleanup EXIT
cp -- "$binary" "$root/lameduck"
chmod 0755 "$root/lameduck"
contents=$(cd "$root" && find . -mindepth 1 | sort | xargs)
[[ "$contents" == "./lameduck" ]] || fail "the root holds more than /lameduck: $contents"

# --- version
out=$("${in_root[@]}" "$root" /lameduck version)
[[ "$out" == "lameduck $version" ]] || fail "version printed \"$out\", not \"lameduck $version\""
echo "version: $out"

# --- A proxy with no upstream. Ports 0: lameduck logs the ports it bound in its start line.
# The upstream: a loopback port that refuses connections (checked just before use).
upstream_port=
for _ in $(seq 50); do
  candidate=$((20000 + RANDOM % 30000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    upstream_port=$candidate
    break
  fi
done
[[ -n "$upstream_port" ]] || fail "no refusing loopback port found for the upstream"

"${in_root[@]}" "$root" /lameduck --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
  --upstream "127.0.0.1:$upstream_port" --drain-delay 0s >"$logs/out" 2>"$logs/err" &
pid=$!
show_logs() {
  echo "--- lameduck stdout:" >&2
  cat "$logs/out" >&2
  echo "--- lameduck stderr:" >&2
  cat "$logs/err" >&2
}
start_line=
for _ in $(seq 100); do
  start_line=$(grep '"event":"start"' "$logs/out" || true)
  [[ -n "$start_line" ]] && break
  kill -0 "$pid" 2>/dev/null || { show_logs; fail "lameduck exited before starting"; }
  sleep 0.05
done
[[ -n "$start_line" ]] || { show_logs; fail "no start line logged within 5s"; }
proxy_port=$(sed -n 's/.*"listen_ports":\[\([0-9]*\).*/\1/p' <<<"$start_line")
admin_port=$(sed -n 's/.*"admin_port":\([0-9]*\).*/\1/p' <<<"$start_line")
[[ -n "$proxy_port" && -n "$admin_port" ]] || { show_logs; fail "no ports in: $start_line"; }

# STATUS URL [EXPECTED_BODY_PART]: curl from outside the root, check the status and the body.
expect() {
  local status=$1 url=$2 part=${3:-} got body
  body=$(curl -sS --max-time 5 -o - -w '\n%{http_code}' "$url") || { show_logs; fail "curl $url"; }
  got=${body##*$'\n'}
  body=${body%$'\n'*}
  body=${body%$'\n'}
  if [[ "$got" != "$status" || "$body" != *"$part"* ]]; then
    show_logs
    fail "$url: $got $body (expected $status${part:+ with $part})"
  fi
  echo "$url: $got $body"
}
expect 200 "http://127.0.0.1:$admin_port/live" '"live"'
expect 503 "http://127.0.0.1:$admin_port/ready" '"starting"'
expect 502 "http://127.0.0.1:$proxy_port/"

# --- SIGTERM: drains (nothing open, no delay) and exits 0 within a few seconds.
kill -TERM "$pid"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
  show_logs
  fail "still running 5s after SIGTERM"
fi
status=0
wait "$pid" || status=$?
pid=
((status == 0)) || { show_logs; fail "exit status $status after SIGTERM, expected 0"; }
[[ ! -s "$logs/err" ]] || { show_logs; fail "lameduck wrote to stderr"; }
echo "SIGTERM: exit status 0"

# --- install (copies the running binary; here without /proc, so no /proc/self/exe).
# Before `install` existed, "install" was an unexpected argument: skip this part then.
status=0
out=$("${in_root[@]}" "$root" /lameduck install /copy 2>&1) || status=$?
if [[ "$out" == *"options start with --"* ]]; then
  echo "install: not in this build (\"$out\"); not checked"
else
  if ((status != 0)); then
    fail "\`lameduck install /copy\` in a root without /proc exited $status: $out" \
      "(without /proc, /proc/self/exe is missing: fall back to getauxval(AT_EXECFN) or argv[0])"
  fi
  [[ -f "$root/copy" && -x "$root/copy" ]] || fail "install exited 0; /copy is not an executable"
  cmp -s "$root/lameduck" "$root/copy" || fail "/copy differs from /lameduck"
  out=$("${in_root[@]}" "$root" /copy version)
  [[ "$out" == "lameduck $version" ]] || fail "/copy version printed \"$out\""
  echo "install: /copy is an identical executable; /copy version: $out"
fi
echo "PASS"
