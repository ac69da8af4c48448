#!/bin/sh
# The tree is formatted with its .clang-format: lists the C files that are
# not, and exits 1 when there is one. Fix with
#   clang-format -i <file>     (tables may be fenced with clang-format off/on)
#   tests/lint/format.sh [source root]
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
if ! command -v clang-format >/dev/null; then
    echo "format: clang-format is not installed (scripts/setup.sh installs it)" >&2
    exit 1
fi
bad=0
for f in $(find src include tests/unit tests/fuzz tests/bench -name '*.[ch]' | sort); do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f"
        bad=1
    fi
done
[ $bad -eq 0 ] && echo "format: every C file is formatted"
exit $bad
