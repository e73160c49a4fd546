#!/usr/bin/env python3
"""azl-shell test proxy in front of a docker-registry: bearer-token auth, blob redirects to
another origin, a transfer cut halfway, a corrupted byte, tampered manifests, 503s. One JSON line per
request in --log."""
import argparse, base64, http.client, http.server, json, os, re, secrets, socket, socketserver, sys, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--storage-port", type=int, default=0)
ap.add_argument("--upstream", required=True)          # host:port of the registry (plain HTTP)
ap.add_argument("--log", required=True)
ap.add_argument("--bearer", action="store_true")
ap.add_argument("--user", default="")
ap.add_argument("--password", default="")
ap.add_argument("--cut-once", action="store_true")    # first GET of each blob > 64 KiB stops halfway
ap.add_argument("--corrupt", action="store_true")     # flip one byte in the middle of each blob > 64 KiB
ap.add_argument("--fail-first", type=int, default=0)  # first N blob GETs answer 503
ap.add_argument("--redirect-blobs", action="store_true")
ap.add_argument("--redirect-host", default="127.0.0.1")
ap.add_argument("--fail-manifests-first", type=int, default=0)  # first N manifest GETs answer 500
ap.add_argument("--tamper-manifests", action="store_true")  # manifests GET by digest: one byte more, another digest
ap.add_argument("--delay-blobs-ms", type=int, default=0)  # hold each blob GET; log how many are in flight
ap.add_argument("--refresh-token", default="")  # tokens only from POST grant_type=refresh_token with this token
args = ap.parse_args()

BLOB = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")
MANIFEST_BY_DIGEST = re.compile(r"^/v2/(.+)/manifests/(sha256:[0-9a-f]{64})$")
REPO = re.compile(r"^/v2/(.+)/(manifests|blobs|tags)/")
lock = threading.Lock()
tokens = {}          # token -> set of repositories it may pull
cut_done = set()
state = {"failed": 0, "failed_manifests": 0, "in_flight": 0}

def log(entry):
    with lock:
        with open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "azl-test-proxy"

    def log_message(self, *a):
        pass

    def auth_kind(self):
        a = self.headers.get("Authorization", "")
        return a.split(" ", 1)[0].lower() if a else "none"

    def entry(self, status, **kw):
        e = {"port": self.server.server_address[1], "host": self.headers.get("Host"), "method": self.command, "path": self.path,
             "range": self.headers.get("Range"), "auth": self.auth_kind(), "status": status}
        e.update(getattr(self, "extra", {}))
        e.update(kw)
        log(e)

    def send_simple(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self.extra = {}
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        path = urllib.parse.urlsplit(self.path).path
        if path != "/token" or not args.refresh_token:
            self.entry(404)
            return self.send_simple(404)
        f = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        grant = f.get("grant_type", [""])[0]
        self.extra = {"grantType": grant}
        if grant != "refresh_token" or f.get("refresh_token", [""])[0] != args.refresh_token:
            self.entry(401)
            return self.send_simple(401, b'{"error":"invalid_grant"}', [("Content-Type", "application/json")])
        tok = self.issue_token(f)
        self.send_simple(200, json.dumps({"access_token": tok, "expires_in": 300, "scope": " ".join(f.get("scope", []))}).encode(),
                         [("Content-Type", "application/json")])

    def issue_token(self, form):
        """A token for the repositories whose pull the request's scopes ask, logged."""
        repos = set()
        for s in form.get("scope", []):
            for one in s.split(" "):
                parts = one.split(":")
                if len(parts) == 3 and parts[0] == "repository" and "pull" in parts[2].split(","):
                    repos.add(parts[1])
        tok = secrets.token_hex(16)
        with lock:
            tokens[tok] = repos
        self.entry(200, service=form.get("service", [""])[0], scopes=sorted(repos))
        return tok

    def do_GET(self):
        self.extra = {}
        path = urllib.parse.urlsplit(self.path).path
        if self.server.server_address[1] == args.storage_port:
            return self.storage(path)
        if path == "/token":
            return self.token()
        if args.bearer and not self.authorized(path):
            scope = ""
            m = REPO.match(path)
            if m:
                scope = ',scope="repository:%s:pull"' % m.group(1)
            realm = "http://127.0.0.1:%d/token" % args.port
            body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
            self.entry(401)
            return self.send_simple(401, body, [("WWW-Authenticate", 'Bearer realm="%s",service="azl-test"%s' % (realm, scope)),
                                                ("Content-Type", "application/json")])
        if "/manifests/" in path and self.command == "GET":
            with lock:
                fail = state["failed_manifests"] < args.fail_manifests_first
                if fail:
                    state["failed_manifests"] += 1
            if fail:
                self.entry(500)
                return self.send_simple(500, b'{"errors":[{"code":"UNKNOWN","message":"internal error"}]}')
            if args.tamper_manifests and MANIFEST_BY_DIGEST.match(path):
                return self.tampered_manifest(path)
        m = BLOB.match(path)
        if m and self.command == "GET":
            with lock:
                fail = state["failed"] < args.fail_first
                if fail:
                    state["failed"] += 1
            if fail:
                self.entry(503)
                return self.send_simple(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}')
            if args.redirect_blobs:
                loc = "http://%s:%d/storage/%s/%s?sig=%s" % (args.redirect_host, args.storage_port, m.group(1), m.group(2), secrets.token_hex(4))
                self.entry(307, location=loc)
                return self.send_simple(307, b"", [("Location", loc)])
        return self.forward(path, blob=m.group(2) if m else None)

    def authorized(self, path):
        a = self.headers.get("Authorization", "")
        if not a.startswith("Bearer "):
            return False
        with lock:
            allowed = tokens.get(a[7:])
        if allowed is None:
            return False
        m = REPO.match(path)
        return (m is None) or (m.group(1) in allowed)

    def token(self):
        if args.refresh_token:   # only the OAuth2 POST issues tokens
            self.entry(401)
            return self.send_simple(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"use the OAuth2 refresh-token POST"}]}',
                                    [("Content-Type", "application/json")])
        if args.user:
            a = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
            if a != want:
                self.entry(401)
                return self.send_simple(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}',
                                        [("Content-Type", "application/json")])
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        tok = self.issue_token(q)
        self.send_simple(200, json.dumps({"token": tok, "expires_in": 300}).encode(), [("Content-Type", "application/json")])

    def tampered_manifest(self, path):
        up = http.client.HTTPConnection(args.upstream, timeout=60)
        hdrs = {}
        if self.headers.get("Accept"):
            hdrs["Accept"] = self.headers.get("Accept")
        up.request("GET", path, headers=hdrs)
        r = up.getresponse()
        body = r.read()
        tampered = r.status == 200 and body.startswith(b"{")
        if tampered:
            body = b"{ " + body[1:]   # the same JSON, other bytes: another digest
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-type", "docker-content-digest", "etag"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.entry(r.status, sent=len(body), tampered=tampered)
        up.close()

    def storage(self, path):
        m = re.match(r"^/storage/(.+)/(sha256:[0-9a-f]{64})$", path)
        if not m:
            self.entry(404)
            return self.send_simple(404)
        return self.forward("/v2/%s/blobs/%s" % (m.group(1), m.group(2)), blob=m.group(2))

    def forward(self, path, blob=None):
        if blob is None or self.command != "GET" or args.delay_blobs_ms <= 0:
            return self.forward_now(path, blob)
        with lock:
            state["in_flight"] += 1
            self.extra = {"inFlight": state["in_flight"]}
        try:
            time.sleep(args.delay_blobs_ms / 1000.0)
            return self.forward_now(path, blob)
        finally:
            with lock:
                state["in_flight"] -= 1

    def forward_now(self, path, blob=None):
        up = http.client.HTTPConnection(args.upstream, timeout=60)
        hdrs = {}
        for k in ("Accept", "Range"):
            if self.headers.get(k):
                hdrs[k] = self.headers.get(k)
        up.request(self.command, path, headers=hdrs)
        r = up.getresponse()
        length = r.getheader("Content-Length")
        length = int(length) if length is not None else None
        start = 0
        cr = r.getheader("Content-Range")
        if cr:
            mm = re.match(r"bytes (\d+)-", cr)
            if mm:
                start = int(mm.group(1))
        total = length if r.status == 200 else None
        if cr and "/" in cr and cr.split("/")[1].isdigit():
            total = int(cr.split("/")[1])
        big = blob is not None and total is not None and total > 65536 and self.command == "GET" and r.status in (200, 206)
        cut_at = None
        if big and args.cut_once:
            with lock:
                if blob not in cut_done:
                    cut_done.add(blob)
                    cut_at = total // 2
        corrupt_at = total // 2 if (big and args.corrupt) else None
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-length", "content-type", "docker-content-digest", "content-range",
                             "accept-ranges", "location", "www-authenticate", "etag"):
                self.send_header(k, v)
        if length is None:
            self.send_header("Content-Length", "0")
        self.end_headers()
        sent = 0
        pos = start
        if self.command == "HEAD" or length is None:
            self.entry(r.status, sent=0)
            return
        try:
            while sent < length:
                chunk = r.read(min(65536, length - sent))
                if not chunk:
                    break
                if cut_at is not None and pos + len(chunk) > cut_at:
                    chunk = chunk[: cut_at - pos]
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    sent += len(chunk)
                    self.entry(r.status, sent=sent, cut=True)
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if corrupt_at is not None and pos <= corrupt_at < pos + len(chunk):
                    b = bytearray(chunk)
                    b[corrupt_at - pos] ^= 0x01
                    chunk = bytes(b)
                self.wfile.write(chunk)
                sent += len(chunk)
                pos += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self.entry(r.status, sent=sent, corrupted=corrupt_at is not None)
        up.close()

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

servers = [Server(("127.0.0.1", args.port), Handler)]
if args.storage_port:
    servers.append(Server(("127.0.0.1", args.storage_port), Handler))
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
