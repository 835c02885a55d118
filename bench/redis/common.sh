# Shared by bench/redis/run.sh and bench/redis/script.sh: a redis-server of their own on a free loopback port.
# Sourced after `cd` to the repository root. Sets port, dir (a scratch directory) and pid; every PID in pids (the
# server's, and any the caller adds) is ended on exit, and dir removed.

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is missing (apt-get install redis-server redis-tools)"; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port)
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --loglevel warning >/dev/null 2>&1 &
pid=$!
pids=("$pid")
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
