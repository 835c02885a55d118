#!/usr/bin/env bash
# Cost scanning on against off, in one run, on a 1 KB text/event-stream (an LLM API's shape: ten chunks flushed one by
# one, then the usage event and [DONE]), through the gateway on the memory store:
#   (off) an edge rule that counts requests
#   (on)  the same rule with a cost: it reserves 100 at admission, scans the stream for its usage, and settles
# Requests/s from wrk (interleaved rounds in alternating order, medians), the gateway's CPU time per request in each round
# (utime + stime from /proc/<pid>/stat over the requests wrk completed: what a request costs the gateway, which other
# processes sharing the cores do not change the way they change requests/s), then time to first byte from curl's
# time_starttransfer over sequential requests (one in flight: no queueing), medians and p99 per case.
# Loopback only, fixed duration and counts; every process started is ended by PID.
# Usage: bench/gateway/cost.sh [duration=5s] [connections=32] [threads=2] [rounds=3] [warmup=30s] [ttfb_requests=300]
# The warm-up is per gateway: on a loaded machine tiered compilation of the cost path takes well over 5 s, and a
# shorter warm-up measures the compiler (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-5s}
connections=${2:-32}
threads=${3:-2}
rounds=${4:-3}
warmup=${5:-30s}
ttfb_requests=${6:-300}

. bench/gateway/common.sh

UP=5721 OFF=5722 OFF_ADMIN=5732 ON=5723 ON_ADMIN=5733

cost_policy() { # $1 = the rule's cost lines
  cat <<YAML
upstream: http://127.0.0.1:$UP
edge:
  - name: tokens
    key: [client_ip]
    algorithm: fixed_window
    limit: 1000000000000/min
$1
YAML
}

cost_policy "" > "$work/off.yaml"
cost_policy "    cost: { reserve: 100, charge: total_tokens }" > "$work/on.yaml"

$helper sse-upstream $UP & pids+=($!)
$gateway run --policy "$work/off.yaml" --listen http://127.0.0.1:$OFF --admin http://127.0.0.1:$OFF_ADMIN --no-watch --log-level Warning & pids+=($!); off_pid=$!
$gateway run --policy "$work/on.yaml" --listen http://127.0.0.1:$ON --admin http://127.0.0.1:$ON_ADMIN --no-watch --log-level Warning & pids+=($!); on_pid=$!
for port in $UP $OFF $ON; do wait_port $port; done

for port in $OFF $ON; do
  code=$(curl -s -o "$work/body" -w '%{http_code}' "http://127.0.0.1:$port/v1/chat/completions")
  [ "$code" = 200 ] || { echo "cost.sh: port $port answered $code"; exit 1; }
  grep -q '"usage":{"prompt_tokens"' "$work/body" || { echo "cost.sh: port $port lost the usage event"; exit 1; }
done
echo "body: $(wc -c < "$work/body") bytes"

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_wrk() { # $1 = port, $2 = the gateway's pid; prints "rps p50_ms p99_ms non2xx cpu_us_per_request"
  local before after
  before=$(ticks "$2")
  wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$1/v1/chat/completions" > "$work/wrk.out"
  after=$(ticks "$2")
  awk -v cpu="$((after - before))" -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000; if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0; if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000; return v }
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /Non-2xx/ { bad = $NF } / requests in / { n = $1 }
    END { printf "%s %.2f %.2f %d %.1f\n", rps, p50, p99, bad, (n > 0 ? cpu / hz * 1e6 / n : 0) }' "$work/wrk.out"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
p99() { sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; print v[i] }'; }

declare -A port=([off]=$OFF [on]=$ON) pid=([off]=$off_pid [on]=$on_pid)
for name in off on; do
  wrk -t"$threads" -c"$connections" -d"$warmup" "http://127.0.0.1:${port[$name]}/v1/chat/completions" >/dev/null
done
# The order alternates round by round (off then on, on then off): on a shared machine whose load drifts, the case that
# always went first would be favoured.
for round in $(seq 1 "$rounds"); do
  order="off on"
  [ $((round % 2)) -eq 0 ] && order="on off"
  for name in $order; do
    echo "$name $(run_wrk "${port[$name]}" "${pid[$name]}")" | tee -a "$work/results"
  done
done

# Time to first byte, alternating the cases request by request so both see the same machine.
for i in $(seq 1 "$ttfb_requests"); do
  for name in off on; do
    t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://127.0.0.1:${port[$name]}/v1/chat/completions")
    echo "$t" >> "$work/ttfb-$name"
  done
done

echo
echo "wrk -t$threads -c$connections -d$duration x $rounds interleaved rounds (medians); TTFB over $ttfb_requests sequential requests per case; loopback, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %12s %10s %10s %8s %14s %14s %12s\n' case requests/s p50-ms p99-ms non-2xx ttfb-p50-ms ttfb-p99-ms cpu-us/req
base=$(awk '$1 == "off" { print $2 }' "$work/results" | median)
for name in off on; do
  rps=$(awk -v n="$name" '$1 == n { print $2 }' "$work/results" | median)
  p50=$(awk -v n="$name" '$1 == n { print $3 }' "$work/results" | median)
  p99w=$(awk -v n="$name" '$1 == n { print $4 }' "$work/results" | median)
  bad=$(awk -v n="$name" '$1 == n { s += $5 } END { print s + 0 }' "$work/results")
  t50=$(median < "$work/ttfb-$name")
  t99=$(p99 < "$work/ttfb-$name")
  cpu=$(awk -v n="$name" '$1 == n { print $6 }' "$work/results" | median)
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99w" -v x="$bad" -v t="$t50" -v u="$t99" -v c="$cpu" 'BEGIN { printf "%-6s %12.0f %10.2f %10.2f %8d %14.3f %14.3f %12.1f\n", n, r, a, b, x, t * 1000, u * 1000, c }'
done
cpu_off=$(awk '$1 == "off" { print $6 }' "$work/results" | median)
cpu_on=$(awk '$1 == "on" { print $6 }' "$work/results" | median)
awk -v on="$cpu_on" -v off="$cpu_off" 'BEGIN { printf "gateway CPU per request: on %.1f us, off %.1f us; the throughput that leaves when the gateway is the bottleneck: %.1f%%\n", on, off, 100 * off / on }'
on=$(awk '$1 == "on" { print $2 }' "$work/results" | median)
awk -v on="$on" -v off="$base" 'BEGIN { printf "scanning on: %.1f%% of the throughput with scanning off\n", 100 * on / off }'
