# Private container engines for the tests: a dockerd of its own and a podman
# whose storage lives in a directory of its own.  Source this file (bash).
#
#   gdn_dockerd_start DIR [DOCKERD OPTION...]
#                           start dockerd with its data, state and socket in
#                           DIR (created; keep the path short: the socket's
#                           path must fit in 108 bytes), and the options
#                           given (--insecure-registry HOST:PORT, ...);
#                           exports DOCKER_HOST
#   gdn_dockerd_stop        stop it, unmount what it left, remove DIR
#   gdn_consumer_docker PREFIX [DOCKERD OPTION...]
#                           the consumer scripts' daemon: the dockerd at
#                           $DOCKER_HOST when it answers, else one of their
#                           own in a new /tmp/PREFIX.XXXXXX
#   gdn_consumer_cleanup PATTERN
#                           the consumer scripts' exit: unmount MOUNTS, stop
#                           their own dockerd or remove from the shared one
#                           the images whose REPOSITORY:TAG matches PATTERN,
#                           clean podman up, remove $WORK
#   gdn_podman_setup DIR    configure podman to keep everything in DIR;
#                           then call podman through `gdn_podman ARGS...`
#   gdn_podman_cleanup      remove podman's images and DIR
#
# Debian 12's docker.io (20.10) works as root with the vfs storage driver
# and without iptables or a bridge; containers then run with --network none.

# Debian's own client, not another one that happens to be earlier in PATH.
if [ -x /usr/bin/docker ]; then
    GDN_DOCKER_CLI=/usr/bin/docker
else
    GDN_DOCKER_CLI=docker
fi

gdn_docker() { "$GDN_DOCKER_CLI" "$@"; }

# gdn__wait_for_daemon NAME PID LOG COMMAND...: waits up to 60 s for
# COMMAND to succeed; fails, showing LOG, if the daemon PID exits first or
# never answers.
gdn__wait_for_daemon() {
    local name=$1 pid=$2 log=$3 i
    shift 3
    for i in $(seq 1 120); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited while starting; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "$name did not answer within 60 s; its log:" >&2
    tail -n 50 "$log" >&2
    return 1
}

# gdn__stop_daemon NAME PID: SIGTERM, up to 30 s to stop, then SIGKILL.
gdn__stop_daemon() {
    local name=$1 pid=$2 i
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name did not stop within 30 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
}

# Unmounts every mount point under $1, deepest first.
gdn__unmount_under() {
    local dir
    dir=$(realpath -m "$1")
    awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts |
        sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

gdn_dockerd_start() {
    local base=$1
    shift
    GDN_DOCKERD_DIR=$base
    mkdir -p "$base/data" "$base/exec"
    dockerd --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
        --data-root "$base/data" --exec-root "$base/exec" --pidfile "$base/dockerd.pid" \
        --host "unix://$base/docker.sock" "$@" >"$base/dockerd.log" 2>&1 &
    GDN_DOCKERD_PID=$!
    export DOCKER_HOST=unix://$base/docker.sock
    gdn__wait_for_daemon dockerd "$GDN_DOCKERD_PID" "$base/dockerd.log" gdn_docker version
}

gdn_dockerd_stop() {
    [ -n "${GDN_DOCKERD_DIR:-}" ] || return 0
    gdn__stop_daemon dockerd "${GDN_DOCKERD_PID:-}"
    gdn__unmount_under "$GDN_DOCKERD_DIR"
    rm -rf "$GDN_DOCKERD_DIR"
    unset DOCKER_HOST GDN_DOCKERD_DIR GDN_DOCKERD_PID
}

gdn_consumer_docker() {
    local prefix=$1
    shift
    if gdn_docker version >/dev/null 2>&1; then
        echo "# using the dockerd at ${DOCKER_HOST:-the default socket}"
        GDN_OWN_DOCKERD=no
    else
        gdn_dockerd_start "$(mktemp -d "/tmp/$prefix.XXXXXX")" "$@" || return 1
        GDN_OWN_DOCKERD=yes
    fi
}

# gdn_docker_remove_images PATTERN: removes the images whose
# REPOSITORY:TAG matches the grep pattern PATTERN.
gdn_docker_remove_images() {
    local images
    images=$(gdn_docker images --format '{{.Repository}}:{{.Tag}}' | grep -- "$1")
    # shellcheck disable=SC2086 # one image a word
    [ -z "$images" ] || gdn_docker rmi --force $images >/dev/null 2>&1 || true
}

gdn_consumer_cleanup() {
    local pattern=$1 m
    for m in ${MOUNTS[@]+"${MOUNTS[@]}"}; do
        umount "$m" 2>/dev/null || true
    done
    if [ "${GDN_OWN_DOCKERD:-no}" = yes ]; then
        gdn_dockerd_stop
    elif [ -n "${WORK:-}" ]; then
        gdn_docker_remove_images "$pattern"
    fi
    gdn_podman_cleanup
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
}

gdn_podman_setup() {
    local base=$1
    GDN_PODMAN_DIR=$base
    mkdir -p "$base/root" "$base/runroot" "$base/tmp"
    # default_ulimits: podman 4.3 otherwise asks for RLIMIT_NOFILE values
    # this machine's runc refuses.  Events go to a file: there is no journal.
    cat >"$base/containers.conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
events_logger = "file"
CONF
    export CONTAINERS_CONF=$base/containers.conf
    GDN_PODMAN=(podman --root "$base/root" --runroot "$base/runroot" --tmpdir "$base/tmp"
        --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
}

gdn_podman() { "${GDN_PODMAN[@]}" "$@"; }

gdn_podman_cleanup() {
    [ -n "${GDN_PODMAN_DIR:-}" ] || return 0
    gdn_podman rm --all --force >/dev/null 2>&1 || true
    gdn_podman rmi --all --force >/dev/null 2>&1 || true
    gdn__unmount_under "$GDN_PODMAN_DIR"
    rm -rf "$GDN_PODMAN_DIR"
    unset CONTAINERS_CONF GDN_PODMAN_DIR
}
