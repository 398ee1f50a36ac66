#!/usr/bin/python3
"""A reverse proxy that makes a real registry misbehave, for pull tests.

    fault_proxy.py --listen PORT_FILE --upstream http://127.0.0.1:5000
                   [--fail-first N] [--status 503] [--retry-after SECONDS]
                   [--log FILE]

Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening) and
forwards every request to the upstream registry, except that the first N
requests for each distinct (method, path) are answered with --status
(e.g. 429 or 503) without reaching the upstream. Each request is logged as
"<method> <path> <status>" so a test can count attempts.
"""
import argparse
import http.client
import http.server
import threading
import urllib.parse


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True, help="file to write the chosen port to")
    p.add_argument("--upstream", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--status", type=int, default=503)
    p.add_argument("--retry-after", default="")
    p.add_argument("--log", default="")
    args = p.parse_args()
    upstream = urllib.parse.urlsplit(args.upstream)
    seen = {}
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1) if args.log else None

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def record(self, status):
            if log:
                log.write(f"{self.command} {self.path} {status}\n")

        def relay(self):
            key = (self.command, self.path)
            with lock:
                seen[key] = seen.get(key, 0) + 1
                inject = seen[key] <= args.fail_first
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if inject:
                self.send_response(args.status)
                if args.retry_after:
                    self.send_header("Retry-After", args.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.record(args.status)
                return
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = upstream.netloc
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection"):
                    self.send_header(k, v)
            data = resp.read() if self.command != "HEAD" else b""
            if resp.getheader("Content-Length") is None:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            conn.close()
            self.record(resp.status)

        do_GET = relay
        do_HEAD = relay
        do_POST = relay

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.listen + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.listen + ".tmp", args.listen)
    server.serve_forever()


if __name__ == "__main__":
    main()
