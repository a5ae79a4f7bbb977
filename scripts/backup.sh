#!/usr/bin/env bash
# Back up the RIS: PostgreSQL (pg_dump custom format) + the storage root (tar), with a
# MANIFEST and SHA256SUMS. Restore with scripts/restore.sh.
#
#   scripts/backup.sh [-d DATABASE_URL] [-s STORAGE_ROOT] [-o OUT_DIR]
#
# Defaults: $DATABASE_URL, $RIS_STORAGE_ROOT (else var/storage), ./var/backups.
# Order matters: the database is dumped first, then the files are archived. A file received
# in between is an orphan in the backup (reported by imaging_storage_check, harmless); the
# other order could leave rows whose file is not in the backup. Stored objects are never
# rewritten in place, so the tar of a live root is consistent for every row in the dump.
set -euo pipefail

db_url="${DATABASE_URL:-}"
storage="${RIS_STORAGE_ROOT:-var/storage}"
out="var/backups"
while getopts "d:s:o:h" opt; do
  case "$opt" in
    d) db_url="$OPTARG" ;;
    s) storage="$OPTARG" ;;
    o) out="$OPTARG" ;;
    h|*) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
[[ "$db_url" =~ ^postgres(ql)?:// ]] || { echo "backup: DATABASE_URL must be a postgres:// URL (got '${db_url%%:*}')" >&2; exit 2; }
[[ -d "$storage" ]] || { echo "backup: storage root $storage does not exist" >&2; exit 2; }
command -v pg_dump >/dev/null || { echo "backup: pg_dump not found (apt-get install postgresql-client)" >&2; exit 2; }

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
dir="$out/ris-backup-$stamp"
mkdir -p "$dir.partial"
trap 'rm -rf "$dir.partial"' ERR

pg_dump --format=custom --no-owner --no-privileges --file="$dir.partial/database.dump" "$db_url"
# tmp/ holds receives in progress (never acknowledged): not part of the archive.
tar --create --file="$dir.partial/storage.tar" --directory="$storage" --exclude=./tmp .

objects=$(tar --list --file="$dir.partial/storage.tar" | grep -vc '/$' || true)
{
  echo "format=ris-backup-1"
  echo "created_utc=$stamp"
  echo "host=$(hostname)"
  echo "database=$(sed -E 's#^[a-z]+://([^@]*@)?##; s#\?.*##' <<<"$db_url")"
  echo "pg_dump=$(pg_dump --version | awk '{print $NF}')"
  echo "storage_root=$(cd "$storage" && pwd)"
  echo "storage_files=$objects"
  echo "git_commit=$(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
} > "$dir.partial/MANIFEST"
(cd "$dir.partial" && sha256sum database.dump storage.tar MANIFEST > SHA256SUMS)
mv "$dir.partial" "$dir"
trap - ERR
echo "$dir"
