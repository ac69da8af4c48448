#!/bin/sh
# The frontend benchmark: berthd's GetVmInfo and ListVms against a bare
# libmicrohttpd server (bare_server.c: epoll, two threads, a small cJSON
# body) at 64 and 1,000 keep-alive connections, in one run; then the RSS of
# berthd (and of the bare server) holding 10,000 idle keep-alive connections.
#
#   tests/bench/frontend/run.sh [--duration S] [--warmup S] [--rounds N]
#       [--connections "64 1000"] [--idle M] [--settle S] [--log-level L]
#       [--min-ratio X] [--max-p99-ratio X] [--connection-memory BYTES] [--smoke]
#
# BERTHD names the daemon (default: build/berthd of the source tree). Both
# servers run on the same machine and the same CPUs, as does the load
# generator; only one server is under load at a time, and the two take turns
# run by run (who goes first swaps every round). The medians of the rounds
# are printed, with the range of the per-round ratios.
#
# --min-ratio / --max-p99-ratio: exit 1 when GetVmInfo at 64 connections is
# below that req/s ratio or above that p99 ratio (berthd / bare).
# --connection-memory: each server's connection buffer (the bare server's
# MHD_OPTION_CONNECTION_MEMORY_LIMIT, berthd's --connection-memory; both
# 32 KiB otherwise).
# --smoke: a few seconds in all (tools build, both servers answer, numbers
# come out), for the test suite; the figures mean nothing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
BERTHD=${BERTHD:-$root/build/berthd}
SVC=/metal.vmprovisioner.v1.VmService
VM=bench-vm

duration=5
warmup=1
rounds=3
connections="64 1000"
idle=10000
settle=2
log_level=info
min_ratio=
max_p99_ratio=
smoke=0
bare_args=
berthd_mem=

while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --log-level) log_level=$2; shift 2 ;;
    --min-ratio) min_ratio=$2; shift 2 ;;
    --max-p99-ratio) max_p99_ratio=$2; shift 2 ;;
    --connection-memory) bare_args="--connection-memory $2"; berthd_mem="--connection-memory $2"; shift 2 ;;
    --smoke)
        smoke=1 duration=0.5 warmup=0.2 rounds=1 connections=8 idle=200 settle=0.2
        shift ;;
    *) echo "frontend: unknown option '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$BERTHD" ] || { echo "frontend: no berthd at '$BERTHD' (set BERTHD)" >&2; exit 2; }
for tool in cc pkg-config curl; do
    command -v $tool >/dev/null || { echo "frontend: $tool is not installed" >&2; exit 2; }
done

tmp=$(mktemp -d)
berthd_log=/dev/null
[ "$smoke" -eq 0 ] || berthd_log=$tmp/berthd.err
bare_pid=
berthd_pid=
# Stops what this script started, by pid; the daemon with SIGTERM and a
# deadline, as an operator would.
stop_pid() {
    pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 150 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$bare_pid"
    stop_pid "$berthd_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools -------------------------------------------------------------
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
cc -O2 -Wall -Wextra -o "$tmp/bare_server" "$here/bare_server.c" \
    $(pkg-config --cflags --libs libmicrohttpd libcjson) -lpthread
cc -O2 -Wall -Wextra -o "$tmp/loadgen" "$here/loadgen.c"
LOADGEN=$tmp/loadgen

# ---- servers -----------------------------------------------------------
# wait_for NAME PID CMD...: waits (20 s at most) for CMD to succeed while PID lives.
wait_for() {
    name=$1
    pid=$2
    shift 2
    n=0
    until "$@" >/dev/null 2>&1; do
        kill -0 "$pid" 2>/dev/null || { echo "frontend: $name exited before it answered" >&2; return 1; }
        [ $n -lt 200 ] || { echo "frontend: timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
        n=$((n + 1))
    done
}

start_bare() {
    # shellcheck disable=SC2086 # bare_args is empty or two words
    "$tmp/bare_server" $bare_args >"$tmp/bare.out" 2>&1 &
    bare_pid=$!
    wait_for bare_server "$bare_pid" grep -q '^listening ' "$tmp/bare.out"
    bare_port=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/bare.out")
}

rpc() {
    curl -sf --max-time 10 -X POST -H 'Content-Type: application/json' \
        "http://127.0.0.1:$berthd_port$SVC/$1" -d "$2"
}

# berthd with the memory backend, room for every connection the benchmark
# opens, and no per-address limit (every connection comes from 127.0.0.1).
# Its log goes to /dev/null: at info it has a line per request, hundreds of
# MB a run, and writing them to a file would be a cost of the disk, not of
# the front end. A smoke run keeps it, to show why berthd failed.
start_berthd() {
    berthd_port=$("$LOADGEN" --free-port)
    "$BERTHD" --listen "127.0.0.1:$berthd_port" --backend memory --log-level "$log_level" \
        --max-connections 20000 --max-connections-per-ip 0 $berthd_mem >/dev/null 2>>"$berthd_log" &
    berthd_pid=$!
    if ! wait_for berthd "$berthd_pid" curl -sf --max-time 2 "http://127.0.0.1:$berthd_port/healthz"; then
        show_berthd_log
        return 1
    fi
    rpc CreateVm "{\"vmId\":\"$VM\",\"config\":{\"cpu\":{\"vcpuCount\":1},\"memory\":{\"sizeBytes\":\"134217728\"},\"container\":{\"image\":\"busybox:latest\",\"command\":[\"sleep\",\"3600\"]}}}" >/dev/null
    rpc BootVm "{\"vmId\":\"$VM\"}" >/dev/null
    rpc GetVmInfo "{\"vmId\":\"$VM\"}" | grep -q '"state":"VM_STATE_RUNNING"' ||
        { echo "frontend: the VM is not running in berthd" >&2; return 1; }
}

stop_berthd() {
    pid=$berthd_pid
    berthd_pid=
    kill -TERM "$pid"
    if wait "$pid"; then :; else
        echo "frontend: berthd exited with status $? on SIGTERM" >&2
        show_berthd_log
        return 1
    fi
}

show_berthd_log() {
    if [ "$berthd_log" = /dev/null ]; then
        echo "frontend: berthd's log was discarded; --smoke keeps it" >&2
    else
        tail -n 50 "$berthd_log" >&2
    fi
}

stop_bare() {
    stop_pid "$bare_pid"
    bare_pid=
}

# ---- load --------------------------------------------------------------
# body_of RPC: the request body of that RPC.
body_of() {
    case $1 in
    GetVmInfo) echo "{\"vmId\":\"$VM\"}" ;;
    ListVms) echo '{}' ;;
    esac
}

# One run: load SERVER RPC CONNS ROUND, appending "SERVER RPC CONNS ROUND <loadgen line>".
load() {
    case $1 in
    bare) port=$bare_port pid=$bare_pid ;;
    berthd) port=$berthd_port pid=$berthd_pid ;;
    esac
    line=$("$LOADGEN" --port "$port" --path "$SVC/$2" --body "$(body_of "$2")" \
        --connections "$3" --duration "$duration" --warmup "$warmup" --server-pid "$pid")
    echo "$1 $2 $3 $4 $line" >>"$tmp/results"
}

cpus=$(nproc)
echo "frontend: $cpus CPUs; $rounds round(s) of ${duration} s after ${warmup} s of warm-up per server," \
    "RPC and connection count; berthd log level $log_level"
# Other work on the machine skews the ratio: the load average says whether there was any.
echo "frontend: load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
start_bare
start_berthd
: >"$tmp/results"
for rpc_name in GetVmInfo ListVms; do
    for c in $connections; do
        r=1
        while [ "$r" -le "$rounds" ]; do
            if [ $((r % 2)) -eq 1 ]; then
                load bare "$rpc_name" "$c" "$r"
                load berthd "$rpc_name" "$c" "$r"
            else
                load berthd "$rpc_name" "$c" "$r"
                load bare "$rpc_name" "$c" "$r"
            fi
            r=$((r + 1))
        done
    done
done
stop_berthd
stop_bare

# ---- idle connections ---------------------------------------------------
# Each server fresh, so what the load left in its heap is not counted.
start_berthd
idle_berthd=$("$LOADGEN" --port "$berthd_port" --path "$SVC/GetVmInfo" --body "$(body_of GetVmInfo)" \
    --idle "$idle" --settle "$settle" --server-pid "$berthd_pid")
stop_berthd
start_bare
idle_bare=$("$LOADGEN" --port "$bare_port" --path "$SVC/GetVmInfo" --body "$(body_of GetVmInfo)" \
    --idle "$idle" --settle "$settle" --server-pid "$bare_pid")
stop_bare

# ---- report ------------------------------------------------------------
status=0
report=$(awk -v rounds="$rounds" -v strict="$smoke" -v cpus="$cpus" -v duration="$duration" -v min_ratio="$min_ratio" -v max_p99_ratio="$max_p99_ratio" '
function kv(line, key,    i, n, parts, f) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; i++) {
        split(parts[i], f, "=")
        if (f[1] == key) return f[2]
    }
    return ""
}
function median(list,    n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++)
        for (j = i + 1; j <= n; j++)
            if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function range(list,    n, a, i, lo, hi) {
    n = split(list, a, " ")
    lo = hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return n > 1 ? sprintf("%.2f-%.2f", lo, hi) : sprintf("%.2f", lo)
}
{
    srv = $1; k = $2 " " $3; rnd = $4
    line = $0
    if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
    rps[srv, k] = rps[srv, k] " " kv(line, "rps")
    p50[srv, k] = p50[srv, k] " " kv(line, "p50_ms")
    p99[srv, k] = p99[srv, k] " " kv(line, "p99_ms")
    v_rps[srv, k, rnd] = kv(line, "rps"); v_p99[srv, k, rnd] = kv(line, "p99_ms")
    n = kv(line, "requests") + 0
    if (n > 0 && kv(line, "server_cpu_s") + 0 >= 0)
        cpu[srv, k] = cpu[srv, k] " " kv(line, "server_cpu_s") * 1e6 / n
    gen[srv, k] = gen[srv, k] " " 100 * kv(line, "gen_cpu_s") / duration
    o = kv(line, "busy_cpu_s") - kv(line, "server_cpu_s") - kv(line, "gen_cpu_s")
    other[srv, k] = other[srv, k] " " (o > 0 ? 100 * o / duration : 0)
    if (o > 0 && 100 * o / duration > worst_other) worst_other = 100 * o / duration
    if (kv(line, "requests") + 0 == 0) none = none "\n" srv " " k ": no answer in the measured window"
    errs[srv] += kv(line, "errors") + kv(line, "closed_by_server")
    if (kv(line, "open") + 0 < $3 + 0) short[srv] = short[srv] " " k "(" kv(line, "open") " open)"
}
END {
    printf "%-10s %6s %11s %12s %6s %-13s %9s %11s %9s %11s %9s %-13s\n", "rpc", "conns", "bare req/s",
        "berthd req/s", "ratio", "(rounds)", "bare p50", "berthd p50", "bare p99", "berthd p99",
        "p99 ratio", "(rounds)"
    fail = 0
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, kk, " ")
        br = median(rps["bare", k]); dr = median(rps["berthd", k])
        b99 = median(p99["bare", k]); d99 = median(p99["berthd", k])
        rr = ""; pr = ""
        for (r = 1; r <= rounds; r++) {
            if (v_rps["bare", k, r] > 0) rr = rr " " v_rps["berthd", k, r] / v_rps["bare", k, r]
            if (v_p99["bare", k, r] > 0) pr = pr " " v_p99["berthd", k, r] / v_p99["bare", k, r]
        }
        ratio = br > 0 ? dr / br : 0; p99r = b99 > 0 ? d99 / b99 : 0
        printf "%-10s %6d %11.0f %12.0f %6.2f %-13s %9.2f %11.2f %9.2f %11.2f %9.2f %-13s\n", kk[1], kk[2],
            br, dr, ratio, "(" range(rr) ")", median(p50["bare", k]), median(p50["berthd", k]), b99, d99,
            p99r, "(" range(pr) ")"
        if (kk[1] == "GetVmInfo" && kk[2] == 64) {
            if (min_ratio != "" && ratio < min_ratio + 0) { fail = 1; note = note "\nGetVmInfo at 64: req/s ratio " sprintf("%.2f", ratio) " is below " min_ratio }
            if (max_p99_ratio != "" && p99r > max_p99_ratio + 0) { fail = 1; note = note "\nGetVmInfo at 64: p99 ratio " sprintf("%.2f", p99r) " is above " max_p99_ratio }
        }
    }
    print "(latencies in ms; ratio = berthd / bare, of the medians; (rounds) = range of the per-round ratios)"
    print ""
    printf "%-10s %6s %13s %15s %6s %12s %12s %14s %14s\n", "rpc", "conns", "bare CPU/req", "berthd CPU/req",
        "ratio", "loadgen bare", "loadgen berthd", "rest bare", "rest berthd"
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, kk, " ")
        bc = median(cpu["bare", k]); dc = median(cpu["berthd", k])
        printf "%-10s %6d %10.1f us %12.1f us %6.2f %11.0f%% %13.0f%% %13.0f%% %13.0f%%\n", kk[1], kk[2], bc, dc,
            (bc > 0 ? dc / bc : 0), median(gen["bare", k]), median(gen["berthd", k]),
            median(other["bare", k]), median(other["berthd", k])
    }
    printf "(server CPU time per answer; loadgen = the generator'"'"'s CPU, rest = everything else on the machine\n"
    printf " (softirq of loopback TCP included), in %% of one core, of %d)\n", cpus
    if (worst_other > 25)
        printf "note: other work took up to %.0f%% of a core during a run: req/s and latencies are skewed, CPU/req less so\n", worst_other
    for (s in errs) if (errs[s] > 0) print "note: " s ": " errs[s] " failed requests or connections closed by the server"
    for (s in short) print "note: " s ": fewer connections than asked:" short[s]
    if (none != "") fail = 1
    if (strict) {
        for (s in errs) if (errs[s] > 0) fail = 1
        for (s in short) fail = 1
    }
    note = note none
    if (note != "") print substr(note, 2)
    exit fail
}' "$tmp/results") || status=$?
printf '%s\n' "$report"

show_idle() {
    echo "$2" | awk -v who="$1" '
    function kv(line, key,    i, n, parts, f) {
        n = split(line, parts, " ")
        for (i = 1; i <= n; i++) { split(parts[i], f, "="); if (f[1] == key) return f[2] }
        return ""
    }
    {
        held = kv($0, "open"); b = kv($0, "rss_before_kib"); a = kv($0, "rss_after_kib")
        printf "%-7s asked %s, held %s (closed by the server %s), RSS %.1f MiB -> %.1f MiB", who,
            kv($0, "asked"), held, kv($0, "closed_by_server"), b / 1024, a / 1024
        if (held > 0) printf " (%+.1f KiB per held connection)", (a - b) / held
        printf ", threads %s -> %s, fds %s -> %s; once closed: RSS %.1f MiB, threads %s\n",
            kv($0, "threads_before"), kv($0, "threads_after"), kv($0, "fds_before"), kv($0, "fds_after"),
            kv($0, "rss_closed_kib") / 1024, kv($0, "threads_closed")
    }'
}
echo "frontend: load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "idle keep-alive connections (each made one GetVmInfo first), ${settle} s after the last answer:"
show_idle berthd "$idle_berthd"
show_idle bare "$idle_bare"
if [ "$smoke" -eq 1 ]; then
    # Every idle connection held, by both servers (a few hundred fit today).
    for line in "$idle_berthd" "$idle_bare"; do
        case " $line " in
        *" asked=$idle open=$idle "*) ;;
        *) echo "frontend: not every idle connection was held: $line" >&2; status=1 ;;
        esac
    done
    echo "frontend: smoke run, the figures mean nothing"
fi
exit $status
