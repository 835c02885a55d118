#!/usr/bin/env bash
# Server cost of the store's decision script, this checkout's against another revision's, on a redis-server of its own:
# the gateway's call shape (two groups of one gcra check each, 1,000,000/s so that every call writes) sent alone, and
# as a coalesced run of 8 such calls on the same two keys. Each variant is measured with redis-benchmark after CONFIG
# RESETSTAT, reading usec_per_call from INFO commandstats, in alternating rounds (the machine's pace drifts). With
# CALLGRIND=1 (valgrind installed), it also counts the server's instructions per call, which do not drift: a server of
# its own under callgrind per variant, 2,000 calls alone or 500 runs, less a server that only loaded the script.
# Bounded: fixed request counts; every server is stopped by its PID on exit.
# Usage: [CALLGRIND=1] bench/redis/script.sh [base revision, default HEAD] [rounds, default 4]
set -euo pipefail
cd "$(dirname "$0")/../.."
base="${1:-HEAD}"
rounds="${2:-4}"

. bench/redis/common.sh

# The script as each revision's store sends it (its includes in place; decide-script.sh finds where it lived).
bench/redis/decide-script.sh "$base" > "$dir/base.lua"
bench/redis/decide-script.sh > "$dir/work.lua"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f3)"
echo "base: $base ($(git rev-parse --short "$base")), work: this checkout's decide.lua"

# One group: stage, 1 check, gcra (0), cost 1, enforce, interval 1 us, tolerance 999999 us, burst 1000000, p4..p7 0.
group() { echo "$1 1 0 1 0 1 999999 1000000 0 0 0 0"; }
call="2 $(group 0) $(group 1)"
alone_args="2 e:{t}:k u:{t}:k '' $call"
run_keys="" run_calls=""
for _ in $(seq 1 8); do run_keys="$run_keys e:{t}:k u:{t}:k"; run_calls="$run_calls $call"; done
run_args="16 $run_keys '' -8 $run_calls"

usec() { # sha, args, count: µs per EVALSHA
  local sha="$1" args="$2" n="$3" reply
  reply=$(eval redis-cli -p "$port" EVALSHA "$sha" "$args" 2>&1 | head -n 1)
  case "$reply" in ERR*|NOSCRIPT*|*rror*) echo "script.sh: the script refused the arguments: $reply" >&2; exit 1 ;; esac
  redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
  eval redis-benchmark -h 127.0.0.1 -p "$port" -c 4 -n "$n" -q EVALSHA "$sha" "$args" >/dev/null
  redis-cli -p "$port" INFO commandstats | tr -d '\r' | sed -nE 's/^cmdstat_evalsha:.*usec_per_call=([0-9.]+).*/\1/p'
}

declare -A sha
for v in base work; do sha[$v]=$(redis-cli -p "$port" SCRIPT LOAD "$(cat "$dir/$v.lua")"); done
printf '%-6s %-5s %12s %12s\n' round build 'alone µs' 'run of 8 µs'
for round in $(seq 1 "$rounds"); do
  order="base work"; [ $((round % 2)) -eq 0 ] && order="work base"
  for v in $order; do
    printf '%-6s %-5s %12s %12s\n' "$round" "$v" "$(usec "${sha[$v]}" "$alone_args" 40000)" "$(usec "${sha[$v]}" "$run_args" 10000)"
  done
done

[ "${CALLGRIND:-0}" = "1" ] || exit 0
command -v valgrind >/dev/null || { echo "script.sh: valgrind is missing (apt-get install valgrind)"; exit 1; }
cg_port=$(free_port)
# Sets ir: the server's total instructions after loading the script (file) and making count calls with args. Called
# in this shell, not in $(...), so that its server's PID joins pids for the cleanup on exit.
instructions() { # file, args, count
  local out="$dir/cg.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" redis-server --port "$cg_port" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$dir" --loglevel warning >/dev/null 2>&1 &
  local cg_pid=$!
  pids+=("$cg_pid")
  for _ in $(seq 1 600); do redis-cli -p "$cg_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  local s
  s=$(redis-cli -p "$cg_port" SCRIPT LOAD "$(cat "$1")")
  [ "$3" -gt 0 ] && eval redis-benchmark -h 127.0.0.1 -p "$cg_port" -c 1 -n "$3" -q EVALSHA "$s" "$2" >/dev/null
  redis-cli -p "$cg_port" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  wait "$cg_pid" 2>/dev/null || true
  pids=("$pid") # that PID is gone, and may be another process's by the time the script exits
  ir=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$out" | head -n 1)
}
instructions "$dir/base.lua" "$alone_args" 0
idle=$ir
printf '%-5s %22s %22s\n' build 'alone, instructions' 'run of 8, instructions'
for v in base work; do
  instructions "$dir/$v.lua" "$alone_args" 2000
  alone=$ir
  instructions "$dir/$v.lua" "$run_args" 500
  runs=$ir
  printf '%-5s %22s %22s\n' "$v" "$(( (alone - idle) / 2000 ))" "$(( (runs - idle) / 500 ))"
done
