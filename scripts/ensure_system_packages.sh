#!/usr/bin/env bash
# Install the Debian packages the RIS needs when they are missing (root on this machine kind).
#   run:  fonts for PDFs with Chinese text; DCMTK (handy DICOM client tools)
#   test: plus Chromium for the browser tests
set -euo pipefail
mode=${1:-test}
need=()
have() { dpkg -s "$1" >/dev/null 2>&1; }
for pkg in dcmtk fonts-noto-cjk gettext; do have "$pkg" || need+=("$pkg"); done
if [ "$mode" = test ]; then
  # postgresql-client: pg_dump/pg_restore for the backup and restore test
  for pkg in chromium iproute2 poppler-utils postgresql-client; do have "$pkg" || need+=("$pkg"); done
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "Installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
