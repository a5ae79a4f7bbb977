#!/usr/bin/env bash
# Check the locked dependency set (requirements-dev.lock, a superset of requirements.lock) for
# known vulnerabilities with pip-audit, against the package registry's advisory data.
# Skips (exit 0, with a message) when the registry cannot be reached: the audit is a network
# check, and an offline machine must still be able to run the tests.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# --disable-pip + --require-hashes: audit exactly the locked, hashed set, no resolver run.
timeout 180 "$BIN/pip-audit" --disable-pip --require-hashes -r requirements-dev.lock \
  --vulnerability-service pypi --progress-spinner off >"$out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
  echo "pip-audit: no known vulnerabilities in the locked set ($(grep -c '^[a-zA-Z]' requirements-dev.lock) packages)"
  exit 0
fi
if [ $rc -eq 124 ] || grep -qiE "connection|resolve|timed out|temporary failure|max retries|network is unreachable|SSLError" "$out"; then
  echo "pip-audit: skipped, the package registry cannot be reached:"
  tail -n 2 "$out"
  exit 0
fi
cat "$out"
echo "pip-audit found known vulnerabilities (or failed): update the pins in requirements*.txt, then 'make lock'"
exit 1
