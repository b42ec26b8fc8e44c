# Test registries: Debian's docker-registry (the CNCF distribution
# registry 2.8) on loopback, each in a directory of its own.  Source this
# file (bash).
#
#   gdn_registry_start MODE DIR   start a registry in DIR (created), MODE:
#       plain   plain HTTP, no authentication
#       basic   TLS (a CA and a server certificate made here with openssl,
#               subjectAltName=IP:127.0.0.1) and htpasswd Basic auth
#   token   TLS and bearer tokens: the registry's `auth: token` section,
#               with tests/registry/token-issuer.py as the realm (HTTPS,
#               the same CA), which checks Basic credentials and signs
#               JWTs the registry verifies
#       mtls    TLS that requires a client certificate signed by the CA
#               (`http.tls.clientcas`), no other authentication
#   gdn_registry_kill DIR         kill DIR's registry (SIGKILL), as a crash;
#                                 its storage and configuration stay
#   gdn_registry_restart DIR      start DIR's registry again, on the same
#                                 port, with the same storage and secret
#   gdn_registry_stop DIR         stop what DIR's registry started, remove DIR
#   gdn_registry_stop_all         stop every registry this shell started
#
# What a started registry offers, as files of DIR (read them with
# gdn_registry_get DIR NAME):
#   addr      127.0.0.1:PORT, as in docker://127.0.0.1:PORT/REPO:TAG
#   certs/    a directory holding ca.crt (basic, token, mtls): skopeo's
#             --cert-dir, podman's --cert-dir, docker's certs.d/ADDR; with
#             mtls also client.cert and client.key, the client certificate
#             (the same directory layout those tools read)
#   user, password   the credentials it accepts (basic, token)
#   registry.log, issuer.log   the servers' logs
#
# The registry listens on a port that was free when it was chosen; a start
# that finds the port taken in between tries again with another.

GDN_REGISTRY_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GDN_REGISTRY_ISSUER=$GDN_REGISTRY_LIB_DIR/../registry/token-issuer.py
# Debian's python3, whose python3-cryptography the issuer imports.
GDN_REGISTRY_PYTHON=/usr/bin/python3
declare -a GDN_REGISTRY_DIRS=()

gdn_registry_get() { cat "$1/$2"; }

# A TCP port of 127.0.0.1 that is free now.
gdn__free_port() {
    "$GDN_REGISTRY_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# gdn__registry_certs DIR: a CA, and a server certificate it signs for
# IP:127.0.0.1 (and DNS:localhost), in DIR/tls; DIR/certs/ca.crt.
gdn__registry_certs() {
    local dir=$1
    mkdir -p "$dir/tls" "$dir/certs"
    (
        cd "$dir/tls" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=gdn test CA" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
            -keyout ca.key -out ca.crt &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext &&
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile server.ext -out server.crt
    ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; return 1; }
    cp "$dir/tls/ca.crt" "$dir/certs/ca.crt"
}

# gdn__registry_client_cert DIR: a client certificate the CA signs, as
# DIR/certs/client.cert and client.key.
gdn__registry_client_cert() {
    local dir=$1
    (
        cd "$dir/tls" || exit 1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=gdn test client" -keyout client.key -out client.csr &&
            printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext &&
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
                -extfile client.ext -out client.cert
    ) >>"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; return 1; }
    cp "$dir/tls/client.cert" "$dir/tls/client.key" "$dir/certs/"
}

# gdn__registry_issuer DIR SERVICE ISSUER: the token issuer's signing key
# and certificate (the registry's rootcertbundle), started over HTTPS;
# prints its port.
gdn__registry_issuer() {
    local dir=$1 service=$2 issuer=$3 i
    mkdir -p "$dir/issuer"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$issuer" \
        -keyout "$dir/issuer/sign.key" -out "$dir/issuer/sign.crt" >>"$dir/openssl.log" 2>&1 ||
        { cat "$dir/openssl.log" >&2; return 1; }
    printf '%s:%s\n' "$(cat "$dir/user")" "$(cat "$dir/password")" >"$dir/issuer/users"
    "$GDN_REGISTRY_PYTHON" "$GDN_REGISTRY_ISSUER" --key "$dir/issuer/sign.key" --cert "$dir/issuer/sign.crt" \
        --users "$dir/issuer/users" --service "$service" --issuer "$issuer" --port-file "$dir/issuer/port" \
        --tls-cert "$dir/tls/server.crt" --tls-key "$dir/tls/server.key" >"$dir/issuer.log" 2>&1 &
    echo $! >"$dir/issuer.pid"
    for i in $(seq 1 100); do
        [ -s "$dir/issuer/port" ] && { cat "$dir/issuer/port"; return 0; }
        kill -0 "$(cat "$dir/issuer.pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "the token issuer did not start; its log:" >&2
    cat "$dir/issuer.log" >&2
    return 1
}

# gdn__registry_config DIR MODE PORT [ISSUER_PORT]: DIR/config.yml.
gdn__registry_config() {
    local dir=$1 mode=$2 port=$3 issuer_port=${4:-}
    {
        cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: gdn-test-$port
EOF
        if [ "$mode" != plain ]; then
            cat <<EOF
  tls:
    certificate: $dir/tls/server.crt
    key: $dir/tls/server.key
EOF
        fi
        if [ "$mode" = mtls ]; then
            cat <<EOF
    clientcas:
      - $dir/tls/ca.crt
EOF
        fi
        case $mode in
            basic)
                cat <<EOF
auth:
  htpasswd:
    realm: gdn-test-registry
    path: $dir/htpasswd
EOF
                ;;
            token)
                cat <<EOF
auth:
  token:
    realm: https://127.0.0.1:$issuer_port/token
    service: gdn-test-registry
    issuer: gdn-test-issuer
    rootcertbundle: $dir/issuer/sign.crt
EOF
                ;;
        esac
    } >"$dir/config.yml"
}

gdn_registry_start() {
    local mode=$1 dir=$2 port issuer_port= scheme=https curl_ca attempt status
    case $mode in
        plain | basic | token | mtls) ;;
        *) echo "gdn_registry_start: unknown mode '$mode' (plain, basic, token, mtls)" >&2; return 2 ;;
    esac
    mkdir -p "$dir/storage" || return 1
    dir=$(cd "$dir" && pwd)
    GDN_REGISTRY_DIRS+=("$dir")
    echo "$mode" >"$dir/mode"
    if [ "$mode" = plain ]; then
        scheme=http
    elif [ "$mode" = mtls ]; then
        gdn__registry_certs "$dir" && gdn__registry_client_cert "$dir" || return 1
    else
        gdn__registry_certs "$dir" || return 1
        echo gdn-tester >"$dir/user"
        # A password of its own for every registry, so a leak is greppable.
        echo "pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/password"
    fi
    if [ "$mode" = basic ]; then
        htpasswd -B -b -c "$dir/htpasswd" "$(cat "$dir/user")" "$(cat "$dir/password")" 2>/dev/null || return 1
    fi
    if [ "$mode" = token ]; then
        issuer_port=$(gdn__registry_issuer "$dir" gdn-test-registry gdn-test-issuer) || return 1
    fi
    for attempt in 1 2 3 4 5; do
        port=$(gdn__free_port) || return 1
        gdn__registry_config "$dir" "$mode" "$port" "$issuer_port"
        : >"$dir/registry.log"
        if gdn__registry_serve "$dir" "$port"; then
            echo "127.0.0.1:$port" >"$dir/addr"
            return 0
        fi
        if ! grep -q 'address already in use' "$dir/registry.log"; then
            break
        fi
    done
    echo "docker-registry ($mode) did not start in $dir; its log:" >&2
    tail -n 30 "$dir/registry.log" >&2
    return 1
}

# gdn__registry_serve DIR PORT: starts docker-registry with DIR/config.yml
# (its log appended to DIR/registry.log) and waits until it answers on PORT.
gdn__registry_serve() {
    local dir=$1 port=$2 mode scheme=https curl_tls=() status i
    mode=$(cat "$dir/mode")
    [ "$mode" = plain ] && scheme=http
    [ "$mode" = plain ] || curl_tls=(--cacert "$dir/certs/ca.crt")
    [ "$mode" = mtls ] && curl_tls+=(--cert "$dir/certs/client.cert" --key "$dir/certs/client.key")
    docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    for i in $(seq 1 100); do
        # 200 without auth, 401 with: either way it answers.
        status=$(curl -s -o /dev/null -w '%{http_code}' "${curl_tls[@]}" "$scheme://127.0.0.1:$port/v2/" 2>/dev/null)
        case $status in
            200 | 401) return 0 ;;
        esac
        kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
        sleep 0.1
    done
    gdn__stop_pid "$(cat "$dir/registry.pid")"
    return 1
}

gdn_registry_kill() {
    local dir=$1 pid
    pid=$(cat "$dir/registry.pid" 2>/dev/null) || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Gone, whether or not this shell started it.
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

gdn_registry_restart() {
    local dir=$1 port
    port=$(cut -d: -f2 "$dir/addr") || return 1
    gdn__registry_serve "$dir" "$port" || {
        echo "docker-registry did not start again in $dir; its log:" >&2
        tail -n 30 "$dir/registry.log" >&2
        return 1
    }
}

# gdn__stop_pid PID: SIGTERM, then SIGKILL after 10 s.
gdn__stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

gdn_registry_stop() {
    local dir=$1 name kept=()
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    for name in registry issuer; do
        [ -f "$dir/$name.pid" ] && gdn__stop_pid "$(cat "$dir/$name.pid")"
    done
    rm -rf "$dir"
    for name in "${GDN_REGISTRY_DIRS[@]}"; do
        [ "$name" = "$dir" ] || kept+=("$name")
    done
    GDN_REGISTRY_DIRS=("${kept[@]}")
}

gdn_registry_stop_all() {
    local dir
    for dir in "${GDN_REGISTRY_DIRS[@]}"; do
        gdn_registry_stop "$dir"
    done
}
