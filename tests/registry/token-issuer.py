#!/usr/bin/python3
"""The token issuer of the tests' bearer-token registry.

What the registry's `auth: token` section points clients at (its `realm`):
a client sends `GET REALM?service=S&scope=repository:NAME:pull,push`, with
HTTP Basic credentials or none, and gets `{"token": JWT, ...}`, which the
registry (distribution 2.8) verifies: the JWT is signed with the issuer's
RSA key (RS256) and its header carries `x5c`, the issuer's certificate,
which is the registry's `rootcertbundle`.

Users with the right password get every action they ask for; a request
without credentials gets a token that grants nothing (as Docker Hub gives
anonymous clients a token without push); a wrong password is refused with
401.  Python 3's standard library and Debian's python3-cryptography only.

    token-issuer.py --key KEY.pem --cert CERT.pem --users FILE \
        --service S --issuer I --port-file FILE [--tls-cert C --tls-key K]

`--users` holds `USER:PASSWORD` lines.  The port (chosen by the system) is
written to `--port-file` once the issuer listens.  Each request is logged
to standard error without its credentials.
"""

import argparse
import base64
import hmac
import http.server
import json
import os
import ssl
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

TOKEN_LIFETIME = 300


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope):
    """`repository:NAME:pull,push` -> (type, name, [actions]).  NAME may
    hold colons (a port), so the type is the first field and the actions
    the last."""
    kind, rest = scope.split(":", 1)
    name, actions = rest.rsplit(":", 1)
    return kind, name, [a for a in actions.split(",") if a]


class Issuer:
    def __init__(self, args):
        with open(args.key, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(args.cert, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]
        self.users = {}
        with open(args.users) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    user, password = line.split(":", 1)
                    self.users[user] = password
        self.service = args.service
        self.issuer = args.issuer
        self.serial = 0

    def sign(self, subject, access):
        now = int(time.time())
        self.serial += 1
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 10,
            "exp": now + TOKEN_LIFETIME,
            "jti": "%d-%d" % (os.getpid(), self.serial),
            "access": access,
        }
        signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
        signature = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode("ascii") + "." + b64url(signature)

    def user_of(self, authorization):
        """The user the Basic credentials name, "" for none, None when wrong."""
        if not authorization:
            return ""
        kind, _, value = authorization.partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user


def handler_for(issuer):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            # The path holds the scope only; the credentials are in a header.
            sys.stderr.write("token-issuer: %s %s\n" % (self.address_string(), fmt % args))

        def reply(self, status, body, extra=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            query = urllib.parse.parse_qs(url.query)
            if query.get("service", [None])[0] != issuer.service:
                return self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]})
            user = issuer.user_of(self.headers.get("Authorization"))
            if user is None:
                return self.reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]},
                    [("WWW-Authenticate", 'Basic realm="gdn-token-issuer"')],
                )
            access = []
            for scope_list in query.get("scope", []):
                for scope in scope_list.split(" "):
                    if not scope:
                        continue
                    try:
                        kind, name, actions = parse_scope(scope)
                    except ValueError:
                        return self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "bad scope"}]})
                    # Anonymous clients are granted nothing: the registry then
                    # answers 401 to what they try.
                    if user and kind == "repository":
                        access.append({"type": kind, "name": name, "actions": actions})
            token = issuer.sign(user, access)
            self.reply(
                200,
                {
                    "token": token,
                    "access_token": token,
                    "expires_in": TOKEN_LIFETIME,
                    "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--key", "--cert", "--users", "--service", "--issuer", "--port-file"):
        parser.add_argument(name, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    issuer = Issuer(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(issuer))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    # Written whole and renamed, so a reader never sees half a number.
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
