#!/bin/bash
# Runs inside `unshare -n` (a network namespace with only loopback): wlmscpfs binds every
# interface and has no bind-address option, so it must never run in the host namespace.
# Starts wlmscpfs on $DB (one folder per AE title, here OFFIS), runs findscu with every query
# file of $QDIR, extracts the responses under $OUT/<query>/rsp*.dcm, stops wlmscpfs.
set -u
DB=$1; QDIR=$2; OUT=$3; PORT=${4:-11113}
ip link set lo up
wlmscpfs -dfp "$DB" "$PORT" >/dev/null 2>&1 & PID=$!
for i in $(seq 1 50); do (echo > /dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
for q in "$QDIR"/*.dcm; do
  name=$(basename "$q" .dcm); mkdir -p "$OUT/$name"
  timeout 20 findscu -W -X -od "$OUT/$name" -aet FINDSCU -aec OFFIS 127.0.0.1 "$PORT" "$q" >/dev/null 2>&1
done
kill $PID; wait $PID 2>/dev/null
exit 0
