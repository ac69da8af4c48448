#!/bin/sh
# Emit a C table of the procedures marked NO_SIDE_EFFECTS in the given .proto
# files (protoc-c keeps no method options, so the router reads this table).
set -eu
out=$1; shift
{
  echo "/* Generated from proto/ at build time. */"
  echo "#include <stddef.h>"
  echo "const char *const berth_no_side_effects[] = {"
  # Comments are dropped first, so a commented-out option never enables GET.
  awk '
    { sub(/\/\/.*/, "") }
    /^[ \t]*package[ \t]/ { pkg = $2; sub(/;.*/, "", pkg) }
    /^[ \t]*service[ \t]/ { svc = $2; sub(/\{.*/, "", svc) }
    /^[ \t]*rpc[ \t]/ { m = $2; sub(/\(.*/, "", m) }
    /idempotency_level[ \t]*=[ \t]*NO_SIDE_EFFECTS/ { printf "    \"/%s.%s/%s\",\n", pkg, svc, m }
  ' "$@"
  echo "    NULL,"
  echo "};"
} > "$out.tmp"
mv "$out.tmp" "$out"
