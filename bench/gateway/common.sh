# Shared by bench/gateway/run.sh and bench/gateway/cpu.sh: tools, builds, process cleanup, port waits and the policy.
# Sourced after `cd` to the repository root; the caller sets UP (the upstream's port) before calling policy.

need() { # $1 = command, $2 = Debian package that provides it
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "bench: installing $2 (Debian package)"
    local sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}
need wrk wrk
need redis-server redis-server

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Floodgate.Gateway -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet build bench/Floodgate.Gateway.Benchmarks -c Release -nologo -clp:ErrorsOnly >/dev/null
gateway="dotnet src/Floodgate.Gateway/bin/Release/net10.0/Floodgate.Gateway.dll"
helper="dotnet bench/Floodgate.Gateway.Benchmarks/bin/Release/net10.0/Floodgate.Gateway.Benchmarks.dll"

# Every process started is recorded in pids and ended, by PID, on exit.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() { # bounded wait for a port to accept connections
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

policy() { # $1 = store line, $2 = extra rule field, $3 = extra edge rule field
  cat <<YAML
upstream: http://127.0.0.1:$UP
store: $1
identity:
  jwt:
    keys: [$work/jwks.json]
    issuer: floodgate-bench
    audiences: [floodgate-bench]
  anonymous: reject
edge:
  - name: ip-flood
    key: [client_ip]
    limit: 10M/min
    ${2:-}
    ${3:-}
user:
  - name: per-user
    key: [subject]
    limit: 10M/min
    ${2:-}
YAML
}
