"""server_util.py — starting and stopping `ringkv serve` for tests, and small raw-HTTP helpers.

The server is started with --port 0 and reports its port on stderr ("ringkv: serving NAME on
http://HOST:PORT/ ..."); a thread keeps draining stderr into a list so the server never blocks
on a full pipe and a test can show the log when it fails.
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

SKIP = 77
# waits stretch for Debug/sanitizer builds, which run the model ~20x slower
try:
    from build_kind import slow_build
    SLOW_FACTOR = 8 if slow_build(os.environ.get("RINGKV_BIN", "build/ringkv")) else 1
except ImportError:
    SLOW_FACTOR = 1


def model_path(name="SmolLM2-135M-Instruct.Q4_1.gguf"):
    path = os.path.join(os.environ.get("RINGKV_MODELS", "models"), name)
    if not os.path.exists(path):
        print(f"skip: {path} is not cached (scripts/fetch-models.sh)")
        sys.exit(SKIP)
    return path


class Server:
    """A running `ringkv serve`; use as a context manager (stops it with SIGTERM)."""

    def __init__(self, args, timeout=60 * SLOW_FACTOR):
        binary = os.environ.get("RINGKV_BIN", "build/ringkv")
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"serving .* on http://\[?[^\]]*\]?:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        if not ready.wait(timeout) or self.port is None:
            self.proc.kill()
            raise RuntimeError("the server did not start:\n" + "\n".join(self.log))
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self, timeout=60 * SLOW_FACTOR):
        """SIGTERM, then the exit code (the server must exit by itself)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed after timeout"
        self.reader.join(5)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.stop()
        if exc[0] is not None:
            print("server log:\n" + "\n".join(self.log[-40:]))

    def request(self, method, path, body=None, headers=None, key=None, timeout=120 * SLOW_FACTOR):
        """Raw HTTP: returns (status, headers dict, body bytes). body: dict (sent as JSON) or bytes."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if key:
            h["Authorization"] = f"Bearer {key}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def json(self, method, path, body=None, key=None, expect=200):
        status, _, data = self.request(method, path, body, key=key)
        if status != expect:
            raise AssertionError(f"{method} {path}: status {status}, expected {expect}: {data[:300]!r}")
        return json.loads(data)

    def metrics(self):
        """The /metrics samples without labels or histograms: {name: value}."""
        _, _, data = self.request("GET", "/metrics")
        out = {}
        for line in data.decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        return out


class Checks:
    """Failures collected by check(); finish() prints them and exits 1 when there are any."""

    def __init__(self, name):
        self.name = name
        self.failures = []

    def check(self, cond, msg):
        if not cond:
            self.failures.append(msg)
            print("FAIL:", msg)

    def finish(self):
        if self.failures:
            print(f"{self.name}: {len(self.failures)} failure(s)")
            sys.exit(1)
        print(f"{self.name}: ok")


def wait_until(predicate, timeout, period=0.05):
    end = time.time() + timeout * SLOW_FACTOR
    while time.time() < end:
        if predicate():
            return True
        time.sleep(period)
    return predicate()
