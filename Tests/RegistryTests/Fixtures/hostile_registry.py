#!/usr/bin/env python3
"""A hostile OCI registry for azl-shell's tests: loopback only, plain HTTP.

Each repository name is one scenario (GET /v2/SCENARIO/manifests/latest). Started by the
tests with --port-file; writes the port there once listening, and the number of connections
to the Unix socket a redirect names to SOCKET.count. Every request loop is bounded.
"""
import argparse, gzip, hashlib, io, json, os, socket, socketserver, tarfile, threading, time
import http.server

def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()

def tar_of(entries):
    """entries: (name as bytes, kind, data-or-target). GNU format keeps names as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.mtime = 1700000000
            if kind == "file":
                info.size = len(payload); t.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)
            elif kind == "hard":
                info.type = tarfile.LNKTYPE; info.linkname = payload.decode("utf-8", "surrogateescape"); t.addfile(info)
    return buf.getvalue()

def gz(b): return gzip.compress(b, compresslevel=9, mtime=0)

class Image:
    def __init__(self, layers, config_media="application/vnd.oci.image.config.v1+json"):
        """layers: list of (blob bytes, uncompressed tar bytes or its digest)."""
        self.blobs = {}
        descs, diff_ids = [], []
        for blob, tar in layers:
            d = sha(blob); self.blobs[d] = blob
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": len(blob)})
            diff_ids.append(tar if isinstance(tar, str) else sha(tar))
        self.config = json.dumps({"architecture": ARCH, "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]},
                                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        cd = sha(self.config); self.blobs[cd] = self.config
        self.layers = descs
        self.manifest_obj = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "config": {"mediaType": config_media, "digest": cd, "size": len(self.config)},
                             "layers": descs}
        self.manifest = json.dumps(self.manifest_obj).encode()

ARCH = "amd64"
SCEN = {}
STATS = {"unix_connections": 0, "requests": []}
LOCK = threading.Lock()

def build(base_layer):
    hello = tar_of([(b"hello.txt", "file", b"hello\n")])
    good = Image([(gz(hello), hello)])
    SCEN["good"] = good
    slow = tar_of([(b"slow.txt", "file", b"x" * 4096)]); SCEN["trickleblob"] = Image([(gz(slow), slow)])
    SCEN["tricklemanifest"] = good
    SCEN["unixredirect"] = good
    SCEN["escapes"] = good
    SCEN["helm"] = Image([(gz(hello), hello)], config_media="application/vnd.cncf.helm.config.v1+json")
    # Two layers' worth of "layers": the first is what Foundation keeps, the last what Go keeps.
    other = tar_of([(b"other.txt", "file", b"other\n")])
    dup = Image([(gz(hello), hello)])
    o = Image([(gz(other), other)])
    dup.blobs.update(o.blobs)
    body = json.dumps(dup.manifest_obj)
    dup.manifest = (body[:-1] + ', "layers": ' + json.dumps(o.layers) + "}").encode()
    SCEN["dupkeys"] = dup
    amb = Image([(gz(hello), hello)])
    obj = dict(amb.manifest_obj); obj["manifests"] = [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                     "digest": sha(good.manifest), "size": len(good.manifest),
                                                     "platform": {"architecture": ARCH, "os": "linux"}}]
    amb.manifest = json.dumps(obj).encode()
    SCEN["ambiguous"] = amb
    # A compression bomb: 64 MiB of zeros in one file, about 64 KiB gzipped.
    bomb_tar = io.BytesIO()
    with tarfile.open(fileobj=bomb_tar, mode="w", format=tarfile.GNU_FORMAT) as t:
        info = tarfile.TarInfo("zeros"); info.size = 64 << 20
        class Zeros(io.RawIOBase):
            def __init__(self): self.left = 64 << 20
            def readable(self): return True
            def readinto(self, b):
                n = min(len(b), self.left); b[:n] = bytes(n); self.left -= n; return n
        t.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
    raw = bomb_tar.getvalue()
    SCEN["bomb"] = Image([(gz(raw), raw)])
    # Names that are not UTF-8, and one that differs from it only in how the bad byte is spelt.
    names = tar_of([(b"names", "dir", None),
                    (b"names/caf\xe9.txt", "file", b"latin-1\n"),
                    (b"names/caf\xef\xbf\xbd.txt", "file", b"replacement\n"),
                    (b"names/link\xff", "hard", b"names/caf\xe9.txt")])
    layers = [(gz(names), names)]
    if base_layer:
        with open(base_layer, "rb") as f: blob = f.read()
        layers.insert(0, (blob, sha(gzip.decompress(blob))))
    SCEN["names"] = Image(layers)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass

    def send(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)

    def trickle(self, body, ctype, delay):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):  # bounded by the body; ends when the client goes
                self.wfile.write(body[i:i + 1]); self.wfile.flush(); time.sleep(delay)
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self):
        with LOCK: STATS["requests"].append(self.path)
        if self.path == "/_stats":
            with LOCK: return self.send(200, json.dumps(STATS).encode())
        if self.path == "/v2/":
            return self.send(200, b"{}")
        parts = self.path.split("/")
        if len(parts) < 5 or parts[1] != "v2" or parts[2] not in SCEN:
            return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no such scenario"}]}')
        name, kind, ref = parts[2], parts[3], parts[4]
        img = SCEN[name]
        if kind == "manifests":
            if name == "escapes":
                msg = {"errors": [{"code": "MANIFEST_UNKNOWN\x1b]0;pwned\x07", "message": "\x1b[2J\x1b[31mgone\x1b[8m hidden"}]}
                return self.send(404, json.dumps(msg, ensure_ascii=False).encode())
            if name == "tricklemanifest":
                return self.trickle(img.manifest, "application/vnd.oci.image.manifest.v1+json", 0.5)
            return self.send(200, img.manifest, "application/vnd.oci.image.manifest.v1+json",
                             [("Docker-Content-Digest", sha(img.manifest))])
        if kind == "blobs" and ref in img.blobs:
            blob = img.blobs[ref]
            if name == "unixredirect" and ref != img.manifest_obj["config"]["digest"]:
                loc = "http+unix://" + ARGS.unix_socket.replace("/", "%2F") + "/v1.41/containers/json"
                return self.send(307, b"", extra=[("Location", loc)])
            if name == "trickleblob" and ref != img.manifest_obj["config"]["digest"]:
                return self.trickle(blob, "application/octet-stream", 0.5)
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start < len(blob):
                    return self.send(206, blob[start:], "application/octet-stream",
                                     [("Content-Range", "bytes %d-%d/%d" % (start, len(blob) - 1, len(blob)))])
            return self.send(200, blob, "application/octet-stream")
        return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

def unix_listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path); s.listen(4)
    def loop():
        while True:
            c, _ = s.accept()
            with LOCK:
                STATS["unix_connections"] += 1
                with open(path + ".count", "w") as f: f.write(str(STATS["unix_connections"]))
            c.close()
    threading.Thread(target=loop, daemon=True).start()

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--unix-socket", required=True)
    p.add_argument("--arch", default="amd64")
    p.add_argument("--base-layer")
    p.add_argument("--lifetime", type=float, default=1800)
    ARGS = p.parse_args()
    ARCH = ARGS.arch
    build(ARGS.base_layer)
    unix_listener(ARGS.unix_socket)
    srv = Server(("127.0.0.1", 0), Handler)
    with open(ARGS.port_file + ".tmp", "w") as f: f.write(str(srv.server_address[1]))
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    # Stops by itself even if the test that started it dies.
    threading.Timer(ARGS.lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()
