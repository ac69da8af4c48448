#!/bin/sh
# Emit C tables of the procedures marked NO_SIDE_EFFECTS and of the
# server-streaming procedures in the given .proto files (protoc-c keeps
# neither method options nor streaming flags, so the router reads these).
set -eu
out=$1; shift
# Comments are dropped first, so a commented-out option never enables GET.
procs() {
  awk -v want="$1" '
    { sub(/\/\/.*/, "") }
    /^[ \t]*package[ \t]/ { pkg = $2; sub(/;.*/, "", pkg) }
    /^[ \t]*service[ \t]/ { svc = $2; sub(/\{.*/, "", svc) }
    /^[ \t]*rpc[ \t]/ {
      m = $2; sub(/\(.*/, "", m)
      if (want == "stream" && $0 ~ /returns[ \t]*\([ \t]*stream[ \t]/)
        printf "    \"/%s.%s/%s\",\n", pkg, svc, m
    }
    want == "get" && /idempotency_level[ \t]*=[ \t]*NO_SIDE_EFFECTS/ {
      printf "    \"/%s.%s/%s\",\n", pkg, svc, m
    }
  ' "$2"
}
{
  echo "/* Generated from proto/ at build time. */"
  echo "#include <stddef.h>"
  echo "const char *const berth_no_side_effects[] = {"
  for f in "$@"; do procs get "$f"; done
  echo "    NULL,"
  echo "};"
  echo "const char *const berth_server_streaming[] = {"
  for f in "$@"; do procs stream "$f"; done
  echo "    NULL,"
  echo "};"
} > "$out.tmp"
mv "$out.tmp" "$out"
