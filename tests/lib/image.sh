#!/bin/sh
# Build the test image berth-test/busybox:latest when it is missing: a rootfs
# holding Debian's static busybox and its applet links, imported with
# `docker import` (nothing is pulled from a registry).
#
# Environment: BERTH_TEST_IMAGE (default berth-test/busybox:latest),
# BUSYBOX (default /bin/busybox, from Debian's busybox-static),
# DOCKER_HOST / BERTH_DOCKER_SOCKET to reach the Engine.
# Without the docker CLI it posts the tarball to the Engine API with curl.
set -eu

image=${BERTH_TEST_IMAGE:-berth-test/busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}
if [ -n "${BERTH_DOCKER_SOCKET:-}" ] && [ -z "${DOCKER_HOST:-}" ]; then
    DOCKER_HOST=unix://$BERTH_DOCKER_SOCKET
    export DOCKER_HOST
fi
socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}

have_docker() { command -v docker >/dev/null 2>&1; }

# Bumped whenever the rootfs below changes: an image under the right name
# but built otherwise (by hand, or by an older script) is rebuilt.
recipe=2

image_exists() {
    if have_docker; then
        [ "$(docker image inspect -f '{{index .Config.Labels "berthd-test-image"}}' "$image" 2>/dev/null)" = "$recipe" ]
    else
        code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" \
            "http://localhost/images/$(printf %s "$image" | sed 's,/,%2F,g')/json")
        [ "$code" = 200 ]
    fi
}

if image_exists; then
    echo "image.sh: $image present"
    exit 0
fi

if [ ! -x "$busybox" ]; then
    echo "image.sh: $busybox missing; install Debian's busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would not run in an empty rootfs.
if command -v ldd >/dev/null 2>&1 && ldd "$busybox" >/dev/null 2>&1; then
    echo "image.sh: $busybox is dynamically linked; install busybox-static" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/www"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# --install -s links every applet to the absolute path busybox runs from,
# which is a host path here; point the links at the busybox beside them.
"$root/bin/busybox" --install -s "$root/bin"
for link in "$root"/bin/*; do
    if [ -L "$link" ]; then
        ln -sf busybox "$link"
    fi
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'berth-test\n' >"$root/www/index.html"

tar -C "$root" -cf "$work/rootfs.tar" .
if have_docker; then
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
        --change "LABEL berthd-test-image=$recipe" \
        -m "berthd test image" "$work/rootfs.tar" "$image" >/dev/null
else
    repo=${image%:*}
    tag=${image##*:}
    changes=$(printf %s 'CMD ["/bin/sh"]' | sed 's/ /%20/g; s/\[/%5B/g; s/\]/%5D/g; s/"/%22/g; s,/,%2F,g')
    curl -sf --unix-socket "$socket" -X POST -H 'Content-Type: application/x-tar' \
        --data-binary "@$work/rootfs.tar" \
        "http://localhost/images/create?fromSrc=-&repo=$(printf %s "$repo" | sed 's,/,%2F,g')&tag=$tag&changes=$changes" >/dev/null
fi
image_exists
echo "image.sh: built $image"
