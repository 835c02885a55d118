#!/usr/bin/env bash
# Builds every project in Release and runs every test project under tests/.
# Installs what the tests need (redis-server from Debian) when it is missing; Garnet, the other server the Redis
# store's tests run on, is a NuGet package that the build restores (tests/Floodgate.GarnetHost).
# The last line is the total over every test project: "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (Debian package) for the integration tests"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
    || { echo "test.sh: could not install redis-server"; echo "0 passed, 1 failed"; exit 1; }
fi

# The deployment tests run promtool and prometheus (the shipped alert rules, the Grafana dashboard's queries) and
# kubectl kustomize (the Kubernetes overlays); any kubectl that has kustomize will do.
install_for_deploy_tests() { # $1 = Debian package
  echo "test.sh: installing $1 (Debian package) for the deployment tests"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null \
    || echo "test.sh: could not install $1; the deployment tests will say so"
}
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || install_for_deploy_tests prometheus
command -v kubectl >/dev/null 2>&1 || install_for_deploy_tests kubernetes-client
# The dashboard page's test drives a real headless browser.
command -v chromium >/dev/null 2>&1 || install_for_deploy_tests chromium
# The rate-limit id's JavaScript verifier (docs/edge.md) is run by Node.js.
command -v node >/dev/null 2>&1 || install_for_deploy_tests nodejs

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! dotnet build Floodgate.slnx -c Release -nologo -clp:ErrorsOnly; then
  echo "test.sh: the build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

results="$PWD/.test-results"
rm -rf "$results"
mkdir -p "$results"
passed=0 failed=0 skipped=0 status=0

for project in tests/*/*.Tests.csproj; do
  name=$(basename "$project" .csproj)
  echo "== $name"
  dotnet test "$project" -c Release --no-build --nologo \
    --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=minimal" \
    --results-directory "$results" || status=1
  trx="$results/$name.trx"
  if [ ! -f "$trx" ]; then
    echo "test.sh: $name produced no results (the test host crashed or did not start)"
    failed=$((failed + 1))
    status=1
    continue
  fi
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { echo "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  p=$(get passed); f=$(get failed); e=$(get error); t=$(get timeout); a=$(get aborted); s=$(get notExecuted)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0} + ${t:-0} + ${a:-0}))
  skipped=$((skipped + ${s:-0}))
done

[ "$failed" -gt 0 ] && status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
