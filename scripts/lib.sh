# shellcheck shell=bash
# Steps the bench scripts share: pinning checks, a temporary work
# directory removed at exit with the processes started, building certgate,
# a CA, and a certgate server on 127.0.0.1. Sourced, not run: a script sets
# KEEP (1 keeps the directory) and calls these in order. Messages are
# prefixed with the script's name.

bench_name=$(basename "$0" .sh)

# need_pinning WHAT: taskset must be there to pin WHAT ("server",
# "servers"); on a single CPU, SERVER_CPU and CLIENT_CPU both become 0.
need_pinning() {
  command -v taskset >/dev/null || { echo "$bench_name: taskset (util-linux) is needed to pin the $1" >&2; exit 1; }
  if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" != "$CLIENT_CPU" ]; then
    echo "$bench_name: one CPU only: $1 and load generator share CPU 0" >&2
    SERVER_CPU=0 CLIENT_CPU=0
  fi
}

# make_work PARENT: sets work to a new directory in PARENT, removed at exit
# (kept with KEEP=1) after every process in pids is stopped.
pids=()
make_work() {
  work=$(mktemp -d "$1/certgate-$bench_name.XXXXXX")
  trap cleanup EXIT
}

cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}

# warn_tmpfs: the store's fsync is part of what is measured; on a tmpfs it
# costs nothing.
warn_tmpfs() {
  if [ "$(findmnt -n -o FSTYPE -T "$work")" = tmpfs ]; then
    echo "$bench_name: WARNING: $BENCH_DIR is a tmpfs: fsync costs nothing there; set BENCH_DIR to a directory on disk" >&2
  fi
}

# build_certgate [BIN]: sets cg to BIN if given, else to certgate built
# into the work directory.
build_certgate() {
  if [ -n "${1:-}" ]; then
    cg=$(realpath "$1")
  else
    echo "== building certgate" >&2
    go build -o "$work/certgate" ./cmd/certgate
    cg=$work/certgate
  fi
}

# init_ca ARGS...: a CA in $work/ca under a random passphrase (exported for
# the commands that follow); ARGS go to "certgate init".
init_ca() {
  CERTGATE_PASSPHRASE="bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  export CERTGATE_PASSPHRASE
  "$cg" init --dir "$work/ca" "$@" >/dev/null
}

# start_server [PREFIX...]: starts "certgate server" on 127.0.0.1, run
# through PREFIX (e.g. taskset -c 0), and waits up to 30 s for it to
# listen; sets server_pid and url.
start_server() {
  "$@" "$cg" server --dir "$work/ca" --listen 127.0.0.1:0 >"$work/server.out" 2>"$work/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  url=
  for _ in $(seq 1 300); do
    url=$(sed -n 's/^certgate server listening on //p' "$work/server.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "$bench_name: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$url" ] || { echo "$bench_name: the server did not start in 30 s" >&2; exit 1; }
}

# print_host: the machine and Go lines of a report.
print_host() {
  echo "machine:  $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -sr)"
  echo "go:       $(go version | cut -d' ' -f3-)"
}

# free_port prints a TCP port of 127.0.0.1 nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_line FILE PATTERN PID: wait up to 60 s for a line matching PATTERN
# (sed -n expression printing the wanted part) in FILE while PID lives;
# print the part. Errors name the calling script.
wait_line() {
  local file=$1 expr=$2 pid=$3 got= me=${0##*/}
  for _ in $(seq 1 600); do
    got=$(sed -n "$expr" "$file" 2>/dev/null | head -1)
    if [ -n "$got" ]; then
      echo "$got"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "${me%.sh}: process $pid exited:" >&2; cat "$work"/*.log >&2; return 1; }
    sleep 0.1
  done
  echo "${me%.sh}: timed out waiting for $file" >&2
  return 1
}

# wait_port PORT: wait up to 60 s until something listens on 127.0.0.1:PORT.
wait_port() {
  local me=${0##*/}
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "${me%.sh}: nothing listens on port $1 after 60 s" >&2
  return 1
}

# install_nginx: nginx from apt when it is missing (the peer of the
# gateway benchmarks).
install_nginx() {
  command -v nginx >/dev/null && return 0
  echo "== installing nginx (apt)" >&2
  apt-get install -y nginx-light >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nginx-light >/dev/null; }
}
