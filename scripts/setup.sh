# Shared by scripts/run and scripts/test (sourced): install what is missing,
# build, make sure a Docker Engine answers. Never restarts a running Engine.

BERTH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$BERTH_ROOT/build}
DOCKER_SOCKET=${BERTH_DOCKER_SOCKET:-/var/run/docker.sock}
DOCKERD_LOG=${BERTH_DOCKERD_LOG:-/var/log/berth-dockerd.log}

DEB_PACKAGES="build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev
libcjson-dev uuid-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev libsystemd-dev zlib1g-dev
docker.io busybox-static curl nodejs npm systemd clang-format openssl libgnutls28-dev docker-registry apache2-utils"

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

install_packages() {
    missing=""
    for p in $DEB_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing="$missing $p"
    done
    # node and npm may come from elsewhere than Debian's packages.
    case "$missing" in *nodejs*|*npm*)
        if command -v node >/dev/null && command -v npm >/dev/null; then
            missing=$(printf '%s\n' $missing | grep -vx 'nodejs' | grep -vx 'npm' | tr '\n' ' ')
        fi ;;
    esac
    [ -z "$(echo $missing)" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        say "missing packages:$missing (run as root to install them)"
        return 1
    fi
    say "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

# Prometheus' promtool, for the /metrics format test: taken out of Debian's
# prometheus package without installing the server. Sets BERTH_PROMTOOL.
PROMTOOL_DIR=${BERTH_PROMTOOL_DIR:-$BERTH_ROOT/build-tools/prometheus}
install_promtool() {
    if command -v promtool >/dev/null; then
        BERTH_PROMTOOL=$(command -v promtool)
    elif [ -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then
        BERTH_PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool
    else
        tmp=$(mktemp -d)
        if (cd "$tmp" && apt-get download -qq prometheus >/dev/null 2>&1) &&
            mkdir -p "$PROMTOOL_DIR" && dpkg -x "$tmp"/prometheus_*.deb "$PROMTOOL_DIR"; then
            BERTH_PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool
        else
            say "could not fetch promtool; the /metrics format test will say so"
            BERTH_PROMTOOL=""
        fi
        rm -rf "$tmp"
    fi
    export BERTH_PROMTOOL
}

engine_answers() {
    curl -sf --max-time 2 --unix-socket "$DOCKER_SOCKET" http://localhost/_ping >/dev/null 2>&1
}

ensure_engine() {
    if engine_answers; then
        return 0
    fi
    if ! command -v dockerd >/dev/null; then
        say "no Docker Engine answers on $DOCKER_SOCKET and dockerd is not installed"
        return 1
    fi
    # A dockerd that runs but is slow to answer gets time, never a twin.
    if pidof dockerd >/dev/null 2>&1; then
        say "dockerd runs but does not answer on $DOCKER_SOCKET yet; waiting"
    else
        say "starting dockerd on $DOCKER_SOCKET in the background (log: $DOCKERD_LOG)"
        # The default pools hold about thirty networks for the whole host;
        # tenants and parallel suites need more (a /24 each).
        nohup dockerd -H "unix://$DOCKER_SOCKET" \
            --default-address-pool "base=${BERTH_DOCKERD_POOL:-10.128.0.0/12},size=24" \
            >"$DOCKERD_LOG" 2>&1 &
    fi
    i=0
    while ! engine_answers; do
        i=$((i + 1))
        if [ $i -gt 120 ]; then
            say "dockerd did not answer within 60 s; see $DOCKERD_LOG"
            return 1
        fi
        sleep 0.5
    done
}

build() {
    cmake -S "$BERTH_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null &&
        cmake --build "$BUILD_DIR" -j "$(nproc)"
}
