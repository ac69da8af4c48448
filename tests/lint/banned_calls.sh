#!/bin/sh
# The source check of STYLE: no call that writes or parses without a bound
# (sprintf, strcpy, strcat, atoi, strtok, gets, ...) anywhere in the C
# sources. Prints each offending line; exits 1 when there is one.
#   tests/lint/banned_calls.sh [source root]
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
banned='(^|[^_[:alnum:]])(sprintf|vsprintf|strcpy|strcat|stpcpy|atoi|atol|atoll|strtok|gets)[[:space:]]*\('
hits=$(cd "$root" && grep -rnE "$banned" --include='*.c' --include='*.h' src include tests/unit tests/fuzz tests/bench || true)
if [ -n "$hits" ]; then
    printf '%s\n' "$hits"
    echo "banned_calls: use the bounded alternatives (snprintf, buf_*, strtol with checks)" >&2
    exit 1
fi
echo "banned_calls: none"
