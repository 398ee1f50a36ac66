#!/usr/bin/python3
"""A Docker registry token server for imaged's end-to-end tests.

It implements the two ways a registry client obtains a bearer token for a
registry whose `auth.token.realm` points here (docker/distribution's
docs/spec/auth/token.md and oauth.md):

  GET  /token?service=S&scope=repository:NAME:pull,push[&offline_token=true]
       with or without HTTP Basic credentials;
  POST /token, form grant_type=password (username, password) or
       grant_type=refresh_token (refresh_token), plus service and scope.

Valid credentials (or a refresh token this server issued or was started
with) get every action they ask for; a request without credentials gets a
token with no access at all, as Docker Hub answers anonymous requests for a
private repository, so the registry then says 401 insufficient_scope. Wrong
credentials, an unknown refresh token: 401. A missing or foreign `service`:
400, so a client that drops the challenge's service is caught.

Tokens are RS256 JWTs whose header carries the signing certificate as `x5c`;
docker-registry 2.8.2 accepts a chain that verifies against its
`auth.token.rootcertbundle`, which is that same self-signed certificate. The
signature comes from `openssl dgst -sha256 -sign`, so only the standard
library and the openssl CLI are needed.

Every request is one line of --log (secrets redacted), so a test can check
which flow a client used and what it asked for:

  2024-01-01T00:00:00Z GET /token status=200 flow=basic user=alice \
      scope="repository:foo:pull" granted="repository:foo:pull" ua="..."

The server binds --port (0: any free one) on --addr and writes the port it
got to --port-file once it accepts connections. SIGTERM stops it.
"""

import argparse
import base64
import datetime
import http.server
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pem_to_der_b64(pem_text):
    """The base64 DER of the first certificate of a PEM file (x5c wants it)."""
    lines = pem_text.strip().splitlines()
    start = lines.index("-----BEGIN CERTIFICATE-----")
    end = lines.index("-----END CERTIFICATE-----")
    return "".join(lines[start + 1:end])


def parse_scopes(values):
    """[(type, name, [actions])] of scope strings "type:name:a,b" (several
    may share one value, separated by spaces, as the registry's challenge
    and OAuth2 put them). The name may contain ':' (a registry port)."""
    scopes = []
    for value in values:
        for scope in value.split():
            first = scope.find(":")
            last = scope.rfind(":")
            if first < 0 or first == last:
                raise ValueError("malformed scope %r" % scope)
            actions = [a for a in scope[last + 1:].split(",") if a]
            scopes.append((scope[:first], scope[first + 1:last], actions))
    return scopes


def format_scopes(scopes):
    return " ".join("%s:%s:%s" % (t, n, ",".join(a)) for t, n, a in scopes)


class TokenIssuer:
    def __init__(self, args):
        self.issuer = args.issuer
        self.service = args.service
        self.key = args.key
        self.expires_in = args.expires_in
        with open(args.cert) as f:
            self.x5c = [pem_to_der_b64(f.read())]
        self.users = {args.user: args.password} if args.user else {}
        self.lock = threading.Lock()
        # refresh token -> the user it stands for
        self.refresh_tokens = {}
        if args.refresh_token:
            if not args.user:
                sys.exit("token_server: --refresh-token needs --user")
            self.refresh_tokens[args.refresh_token] = args.user

    def check_password(self, user, password):
        expected = self.users.get(user)
        return expected is not None and secrets.compare_digest(expected, password)

    def user_of_refresh_token(self, token):
        with self.lock:
            return self.refresh_tokens.get(token)

    def new_refresh_token(self, user):
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.refresh_tokens[token] = user
        return token

    def sign(self, user, granted):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [{"type": t, "name": n, "actions": a} for t, n, a in granted],
        }
        signing_input = "%s.%s" % (
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", self.key],
            input=signing_input.encode(), capture_output=True, check=True,
        ).stdout
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        return signing_input + "." + b64url(signature), issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as registry clients (libcurl) reuse connections.
    protocol_version = "HTTP/1.1"
    server_version = "imaged-test-token-server"

    def log_message(self, fmt, *args):
        pass  # one line per request goes to --log instead (log_request below)

    def log_request(self, code="-", size="-"):
        pass

    def record(self, status, flow, user, scopes, granted, extra=""):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = urllib.parse.urlsplit(self.path).path
        line = '%s %s %s status=%d flow=%s user=%s scope="%s" granted="%s"%s ua="%s"\n' % (
            now, self.command, path, status, flow, user or "-",
            format_scopes(scopes), format_scopes(granted), extra,
            self.headers.get("User-Agent", ""),
        )
        with self.server.log_lock, open(self.server.log_path, "a") as f:
            f.write(line)

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status, flow, user, scopes, message, code):
        self.record(status, flow, user, scopes, [], ' error="%s"' % message)
        headers = [("WWW-Authenticate", 'Basic realm="token"')] if status == 401 else []
        self.reply(status, {"error": code, "errors": [{"code": code.upper(), "message": message}]},
                   headers)

    def check_service(self, service, flow, user, scopes):
        if service != self.server.issuer.service:
            self.fail(400, flow, user, scopes,
                      "service %r is not %r" % (service, self.server.issuer.service),
                      "invalid_request")
            return False
        return True

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != self.server.token_path:
            self.record(404, "-", None, [], [])
            self.reply(404, {"error": "not_found"})
            return
        query = urllib.parse.parse_qs(url.query)
        issuer = self.server.issuer
        try:
            scopes = parse_scopes(query.get("scope", []))
        except ValueError as e:
            self.fail(400, "-", None, [], str(e), "invalid_scope")
            return
        auth = self.headers.get("Authorization")
        user, flow = "", "anonymous"
        if auth:
            kind, _, value = auth.partition(" ")
            if kind.lower() != "basic":
                self.fail(401, "basic", None, scopes, "unsupported Authorization " + kind, "unauthorized")
                return
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except Exception:
                self.fail(401, "basic", None, scopes, "malformed Basic credentials", "unauthorized")
                return
            flow = "basic"
            if not issuer.check_password(user, password):
                self.fail(401, flow, user, scopes, "wrong username or password", "unauthorized")
                return
        if not self.check_service(query.get("service", [""])[0], flow, user, scopes):
            return
        granted = scopes if flow == "basic" else []
        token, issued_at = issuer.sign(user, granted)
        body = {"token": token, "access_token": token,
                "expires_in": issuer.expires_in, "issued_at": issued_at}
        extra = ""
        if flow == "basic" and query.get("offline_token", [""])[0] == "true":
            body["refresh_token"] = issuer.new_refresh_token(user)
            extra = " refresh_token=issued"
        self.record(200, flow, user, scopes, granted, extra)
        self.reply(200, body)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != self.server.token_path:
            self.record(404, "-", None, [], [])
            self.reply(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        field = lambda name: form.get(name, [""])[0]
        issuer = self.server.issuer
        grant_type = field("grant_type")
        try:
            scopes = parse_scopes(form.get("scope", []))
        except ValueError as e:
            self.fail(400, grant_type or "-", None, [], str(e), "invalid_scope")
            return
        extra = ' client_id="%s"' % field("client_id")
        if grant_type == "password":
            user = field("username")
            if not issuer.check_password(user, field("password")):
                self.fail(401, grant_type, user, scopes, "wrong username or password", "invalid_grant")
                return
        elif grant_type == "refresh_token":
            user = issuer.user_of_refresh_token(field("refresh_token"))
            if user is None:
                self.fail(401, grant_type, None, scopes, "unknown refresh token", "invalid_grant")
                return
        else:
            self.fail(400, grant_type or "-", None, scopes,
                      "unsupported grant_type %r" % grant_type, "unsupported_grant_type")
            return
        if not self.check_service(field("service"), grant_type, user, scopes):
            return
        token, issued_at = issuer.sign(user, scopes)
        body = {"access_token": token, "expires_in": issuer.expires_in,
                "issued_at": issued_at, "scope": format_scopes(scopes)}
        if grant_type == "password" and field("access_type") == "offline":
            body["refresh_token"] = issuer.new_refresh_token(user)
            extra += " refresh_token=issued"
        self.record(200, grant_type, user, scopes, scopes, extra)
        self.reply(200, body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    ssl_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the request's own thread, so a
        # client that connects and stalls cannot block accept().
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True, help="gets the bound port once serving")
    p.add_argument("--path", default="/token", help="URL path of the realm")
    p.add_argument("--key", required=True, help="RSA private key (PEM) that signs tokens")
    p.add_argument("--cert", required=True, help="its certificate (PEM), sent as x5c")
    p.add_argument("--issuer", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--refresh-token", default="", help="a refresh token valid for --user from the start")
    p.add_argument("--expires-in", type=int, default=300)
    p.add_argument("--log", required=True, help="one line per request is appended here")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key")
    args = p.parse_args()

    server = Server((args.addr, args.port), Handler)
    server.issuer = TokenIssuer(args)
    server.token_path = args.path
    server.log_path = args.log
    server.log_lock = threading.Lock()
    if args.tls_cert:
        server.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
