#!/usr/bin/env bash
# The lock files must hold every top-level pin of requirements*.txt at the same version:
# a pin added or changed without `make lock` fails here with the name, before pip runs.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for pair in "requirements.txt requirements.lock" "requirements-dev.txt requirements-dev.lock"; do
  set -- $pair
  while read -r name version; do
    key=$(echo "$name" | tr 'A-Z_.' 'a-z--')
    if ! grep -qiE "^${key}==${version//./\\.}( |$)" "$2"; then
      echo "$1 pins $name==$version but $2 does not: run 'make lock'" >&2
      status=1
    fi
  done < <(sed -E 's/#.*//; s/\[[^]]*\]//' "$1" | grep -E '^[A-Za-z0-9]' | sed -E 's/==/ /' | awk '{print $1, $2}')
done
exit $status
