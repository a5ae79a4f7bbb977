#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into a NEW database and an EMPTY storage root,
# then check that they agree (manage.py imaging_storage_check --verify).
#
#   scripts/restore.sh -b BACKUP_DIR -d TARGET_DATABASE_URL -s TARGET_STORAGE_ROOT [-c] [-n]
#
#   -c  create the target database (createdb) — it must not exist yet
#   -n  skip the storage check (e.g. no Python environment on this host)
# The target database must be empty and the storage root empty or absent: a restore never
# overwrites a running system. Checksums are verified before anything is written.
set -euo pipefail

backup="" db_url="" storage="" create=0 check=1
while getopts "b:d:s:cnh" opt; do
  case "$opt" in
    b) backup="$OPTARG" ;;
    d) db_url="$OPTARG" ;;
    s) storage="$OPTARG" ;;
    c) create=1 ;;
    n) check=0 ;;
    h|*) sed -n '2,11p' "$0"; exit 2 ;;
  esac
done
[[ -n "$backup" && -n "$db_url" && -n "$storage" ]] || { sed -n '2,11p' "$0"; exit 2; }
[[ "$db_url" =~ ^postgres(ql)?:// ]] || { echo "restore: the target must be a postgres:// URL" >&2; exit 2; }
[[ -f "$backup/SHA256SUMS" ]] || { echo "restore: $backup has no SHA256SUMS: not a RIS backup" >&2; exit 2; }
grep -qx "format=ris-backup-1" "$backup/MANIFEST" || { echo "restore: unknown backup format" >&2; exit 2; }

echo "restore: verifying checksums"
(cd "$backup" && sha256sum --check --quiet --strict SHA256SUMS) || { echo "restore: checksum mismatch: backup damaged, nothing restored" >&2; exit 1; }

if [[ -e "$storage" ]] && [[ -n "$(ls -A "$storage")" ]]; then
  echo "restore: $storage is not empty; restore into an empty directory" >&2; exit 1
fi

if (( create )); then
  dbname="${db_url##*/}"; dbname="${dbname%%\?*}"
  server="${db_url%/*}/postgres"
  psql "$server" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$dbname\"" >/dev/null
fi
tables=$(psql "$db_url" -Atc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
[[ "$tables" == "0" ]] || { echo "restore: the target database is not empty ($tables tables)" >&2; exit 1; }

echo "restore: database"
pg_restore --no-owner --no-privileges --exit-on-error --dbname="$db_url" "$backup/database.dump"
echo "restore: storage"
mkdir -p "$storage"
tar --extract --file="$backup/storage.tar" --directory="$storage"

if (( check )); then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  py="${PYTHON:-$here/.venv/bin/python}"
  [[ -x "$py" ]] || py=python3
  echo "restore: checking storage against the database"
  DATABASE_URL="$db_url" RIS_STORAGE_ROOT="$storage" "$py" "$here/manage.py" imaging_storage_check --verify
fi
echo "restore: done"
