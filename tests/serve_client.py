"""Helpers of the hb serve tests (tests/test_serve*.py): tiny model folders, a server process on a free loopback
port, HTTP requests with Python's standard library (http.client), multipart bodies, Server-Sent Events."""
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HB = os.environ.get("HB_BIN") or os.path.join(os.path.dirname(__file__), "..", "build", "hb")
_failures = 0
_checks = 0


def check(cond, what):
    global _failures, _checks
    _checks += 1
    if not cond:
        _failures += 1
        print("CHECK failed:", what, file=sys.stderr, flush=True)
    return cond


def failed():
    return _failures


def done():
    print(f"{_checks - _failures} passed, {_failures} failed")
    sys.exit(1 if _failures else 0)


def tmpdir():
    return tempfile.mkdtemp(prefix="hb-serve-test-")


def mkmodel(dest, arch):
    subprocess.run([HB, "mkmodel", "--arch", arch, "--tiny", dest], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return dest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """hb serve on a free loopback port; waits until /health answers."""

    def __init__(self, model, data, *args, threads=2):
        self.port = free_port()
        self.model, self.data, self.args = model, data, list(args)
        self.log = open(os.path.join(data + ".log"), "ab")
        cmd = [HB, "serve", "-m", model, "--data", data, "--port", str(self.port), "-t", str(threads)] + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        t0 = time.time()
        while time.time() - t0 < 30:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hb serve exited with {self.proc.returncode}; log {data}.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status in (200, 401):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hb serve did not start")

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def json(self, method, path, body=None, headers=None):
        st, h, data = self.request(method, path, body, headers)
        try:
            return st, h, json.loads(data) if data else None
        except ValueError:
            return st, h, {"_raw": data[:200]}

    def create(self, fields, headers=None):
        return self.json("POST", "/v1/videos", fields, headers)

    def wait(self, vid, statuses=("completed", "failed"), timeout=120, headers=None):
        t0 = time.time()
        while time.time() - t0 < timeout:
            st, _, v = self.json("GET", f"/v1/videos/{vid}", headers=headers)
            if st != 200 or v["status"] in statuses:
                return st, v
            time.sleep(0.05)
        return 0, None

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=15, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def multipart(fields, files=None, boundary="hbTestBoundary7MA4YWxkTrZu0gW"):
    """fields: {name: text}; files: {name: (filename, bytes, content type)} -> (body, content type)"""
    out = []
    for k, v in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + str(v).encode() + b"\r\n")
    for k, (fn, data, ct) in (files or {}).items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{fn}"\r\n'
                   f"Content-Type: {ct}\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def png(w, h, seed=1):
    """An RGB PNG of pseudo-random pixels."""
    rows, x = [], seed * 2654435761 % 2**32
    for _ in range(h):
        row = bytearray([0])
        for _ in range(w * 3):
            x = (1103515245 * x + 12345) % 2**31
            row.append(x >> 23)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw)
            + chunk(b"IEND", b""))


def sse(server, vid, timeout=120, headers=None):
    """Every event of GET /v1/videos/{id}/events until the stream ends: [(event, data, arrival time)]."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    c.request("GET", f"/v1/videos/{vid}/events", headers=headers or {})
    r = c.getresponse()
    if r.status != 200:
        return r.status, []
    events, ev, data = [], None, []
    for raw in r:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            ev = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and ev:
            events.append((ev, json.loads("\n".join(data)), time.time()))
            ev, data = None, []
    c.close()
    return 200, events


# ---------------------------------------------------------------- a cluster: Redis + hb serve --store redis://

def free_redis_or_skip():
    """redis-server's path, or exit 77 (ctest: skipped) with a message when it is not installed."""
    import shutil
    path = shutil.which("redis-server")
    if not path:
        print("SKIP: redis-server is not installed (apt-get install redis-server; scripts/setup-debian.sh)")
        sys.exit(77)
    return path


class Redis:
    """redis-server on a free loopback port in its own folder, AOF on (appendfsync always: an acknowledged write
    survives a kill -9 of Redis), no RDB snapshots."""

    def __init__(self, folder, port=None):
        self.folder, self.port = folder, port or free_port()
        os.makedirs(folder, exist_ok=True)
        self.start()

    def start(self):
        self.log = open(os.path.join(self.folder, "redis.log"), "ab")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder,
                                      "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"],
                                     stdout=self.log, stderr=self.log)
        t0 = time.time()
        while time.time() - t0 < 20:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except (OSError, RuntimeError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self, sig=9):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.log.close()

    def cmd(self, *args):
        """One command over RESP2 (a tiny client: the test needs no Python package)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode()) for a in args)
            s.sendall(out)
            f = s.makefile("rb")
            return _resp(f)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


def _resp(f):
    line = f.readline()
    if not line:
        raise RuntimeError("redis: connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError("redis: " + rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    raise RuntimeError(f"redis: unexpected reply {line!r}")


class Node(Server):
    """One hb serve process of a cluster: --store URL --role ROLE (-m MODEL for workers) --results DIR."""

    def __init__(self, store, role, results, log, model=None, args=(), threads=1):
        self.port = free_port()
        self.model, self.data, self.args = model, log, list(args)
        self.log = open(log, "ab")
        cmd = [HB, "serve", "--store", store, "--role", role, "--results", results, "--port", str(self.port),
               "-t", str(threads)] + (["-m", model] if model else []) + self.args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        t0 = time.time()
        while time.time() - t0 < 30:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hb serve exited with {self.proc.returncode}; log {log}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("hb serve did not start")

    def health(self):
        try:
            return self.json("GET", "/health")[2]
        except OSError:
            return {}


def mp4_whole(path):
    """The MP4's top-level boxes tile the file exactly, with ftyp first and a moov and an mdat: a file cut short
    or still being written fails."""
    try:
        data = open(path, "rb").read()
    except OSError:
        return False
    pos, kinds = 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1 and pos + 16 <= len(data):
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        if size < 8:
            return False
        kinds.append(kind)
        pos += size
    return pos == len(data) and kinds[:1] == [b"ftyp"] and b"moov" in kinds and b"mdat" in kinds


def video_ok(path, w, h, frames, probe=True):
    """A whole MP4 (mp4_whole); with probe, ffprobe (when installed) decodes it: w x h and `frames` frames."""
    import shutil
    if not mp4_whole(path):
        return False
    if not probe or not shutil.which("ffprobe"):
        return True
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames,width,height", "-of", "csv=p=0", path], capture_output=True, text=True)
    return out.stdout.strip() == f"{w},{h},{frames}"
