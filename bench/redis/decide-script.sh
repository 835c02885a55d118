#!/usr/bin/env bash
# Prints decide.lua as the store sends it: each '-- @include FILE' line replaced by that script (RedisStore.LoadScript).
# With a revision, the script of that revision (before 2026-12-07 it had no include, and before that lived at the
# project's top); without, this checkout's.
set -euo pipefail
cd "$(dirname "$0")/../.."
read_file() { # path under src/Floodgate.Redis
  if [ $# -gt 1 ]; then git show "$2:src/Floodgate.Redis/$1" 2>/dev/null; else cat "src/Floodgate.Redis/$1"; fi
}
rev=${1:-}
main=$(if [ -n "$rev" ]; then read_file Scripts/decide.lua "$rev" || read_file decide.lua "$rev"; else read_file Scripts/decide.lua; fi)
while IFS= read -r line; do
  if [[ $line == "-- @include "* ]]; then
    if [ -n "$rev" ]; then read_file "Scripts/${line#-- @include }" "$rev"; else read_file "Scripts/${line#-- @include }"; fi
  else
    printf '%s\n' "$line"
  fi
done <<< "$main"
