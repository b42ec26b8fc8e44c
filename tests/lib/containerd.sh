# A private containerd for the tests: its own root, state and socket.
# Source this file (bash), after tests/lib/dockerd.sh (its helpers).
#
#   gdn_containerd_start DIR   start containerd with everything in DIR
#                              (created; keep the path short: sockets);
#                              then call ctr through `gdn_ctr ARGS...`
#                              (or "${GDN_CTR[@]}" ARGS..., e.g. under timeout)
#   gdn_containerd_stop        stop it, unmount what it left, remove DIR
#
# The CRI plugin is off (no Kubernetes here); images are unpacked with the
# native snapshotter, which needs no overlayfs.

gdn_containerd_start() {
    local base=$1
    GDN_CONTAINERD_DIR=$base
    mkdir -p "$base/root" "$base/state"
    cat >"$base/config.toml" <<CONF
version = 2
root = "$base/root"
state = "$base/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$base/c.sock"
[ttrpc]
  address = "$base/c.sock.ttrpc"
[debug]
  address = "$base/d.sock"
CONF
    GDN_CTR=(ctr --address "$base/c.sock" --namespace gdn-tests)
    containerd --config "$base/config.toml" >"$base/containerd.log" 2>&1 &
    GDN_CONTAINERD_PID=$!
    gdn__wait_for_daemon containerd "$GDN_CONTAINERD_PID" "$base/containerd.log" gdn_ctr version
}

gdn_ctr() { "${GDN_CTR[@]}" "$@"; }

gdn_containerd_stop() {
    [ -n "${GDN_CONTAINERD_DIR:-}" ] || return 0
    gdn__stop_daemon containerd "${GDN_CONTAINERD_PID:-}"
    gdn__unmount_under "$GDN_CONTAINERD_DIR"
    rm -rf "$GDN_CONTAINERD_DIR"
    unset GDN_CONTAINERD_DIR GDN_CONTAINERD_PID
}
