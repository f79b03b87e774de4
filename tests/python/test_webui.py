#!/usr/bin/env python3
"""End-to-end test of the web page at / (src/server/webui.html) in headless Chromium.

Starts `ringkv serve` on SmolLM2-135M-Instruct with two API keys (port 0, parsed from its
banner) and Chromium
with --headless=new --remote-debugging-port=0, and drives the page through the Chrome DevTools
Protocol over a WebSocket (a minimal RFC 6455 client on the standard library: no pip packages).
Through the page, as a user would:

1. without a key the page shows the 401 in red; once the key is typed, the header shows the
   model name and context length that /v1/models reports, and a reload keeps the key;
2. "New session" creates a session, which becomes the selected one;
3. a message typed into the textarea and sent with Enter streams an answer; its stats line
   shows prompt / cached / generated tokens and tokens/s;
4. the session table shows the session with tokens > 0 and hot KV bytes > 0 (as the API does),
   and not the session of the other key;
5. a follow-up question in the same session reports cached prompt tokens > 0;
6. Stop aborts a long answer: the stats say "stopped" and the session is no longer busy;
7. an invalid setting (temperature 5) shows the server's 400 message in red;
8. Delete shreds the session: the receipt appears, the row goes, GET /v1/sessions/ID is 404.

No console error and no uncaught exception may occur in the page. The server must exit 0 on
SIGTERM. Everything has a deadline (120 s in all, 270 s for Debug / sanitizer builds).

Exit 77 (skipped) when the model is not cached or Chromium is not installed (Debian: apt-get
install chromium). Usage: test_webui.py (RINGKV_BIN and RINGKV_MODELS come from CTest; set
CHROMIUM to use another browser binary).
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from build_kind import slow_build

BIN = os.environ.get("RINGKV_BIN", "build/ringkv")
MODEL = os.path.join(os.environ.get("RINGKV_MODELS", "models"), "SmolLM2-135M-Instruct.Q4_1.gguf")
SLOW = slow_build(BIN)
BUDGET = 270.0 if SLOW else 120.0   # seconds for the whole test (CTest allows 300)
MAX_TOKENS = 12 if SLOW else 40
KEY, OTHER_KEY = "webui-test-key-" + os.urandom(8).hex(), "webui-other-key-" + os.urandom(8).hex()
DEADLINE = time.monotonic() + BUDGET


def left(cap=None):
    """Seconds left before the test's deadline (at most `cap`); raises when none are."""
    t = DEADLINE - time.monotonic()
    if t <= 0:
        raise TimeoutError(f"the test's {BUDGET:.0f} s budget is spent")
    return min(t, cap) if cap else t


def find_chromium():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Proc:
    """A child process whose stderr is collected by a thread (so it never blocks on a full pipe);
    `wait_line(regex)` waits for a stderr line that matches."""

    def __init__(self, argv, **kw):
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  **kw)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.p.stderr:
            with self.cv:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)  # EOF
            self.cv.notify_all()

    def wait_line(self, regex, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            i = 0
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    i += 1
                    if line is None:
                        raise RuntimeError(f"{self.p.args[0]} exited ({self.p.poll()}) before printing /{regex}/")
                    m = re.search(regex, line)
                    if m:
                        return m
                t = end - time.monotonic()
                if t <= 0:
                    raise TimeoutError(f"no line matching /{regex}/ from {self.p.args[0]} in {timeout:.0f} s")
                self.cv.wait(t)

    def tail(self, n=15):
        with self.cv:
            return "\n".join(line for line in self.lines[-n:] if line is not None)


# ---- a minimal WebSocket client (RFC 6455): text frames out (masked), any frames in ----

class WebSocket:
    def __init__(self, url, timeout):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket: the server closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket: handshake refused: {head.decode(errors='replace')[:200]}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket: connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, text):
        self._send_frame(0x1, text.encode("utf-8"))

    def recv(self, timeout):
        """The next whole message (str), or None when none comes within `timeout` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        data, first = b"", True
        while True:
            try:
                b0, b1 = self._read(2)
            except socket.timeout:
                if first:
                    return None
                raise
            self.sock.settimeout(10.0)  # the rest of a frame that began comes promptly
            first = False
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("websocket: the browser closed the connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            data += payload
            if b0 & 0x80:
                return data.decode("utf-8")

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class CDP:
    """Chrome DevTools Protocol over one page target: calls, and the console errors seen."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.errors = []   # console.error / uncaught exceptions in the page

    def _event(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
            self.errors.append(f"console.{params['type']}: {' '.join(map(str, args))}")
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            self.errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")

    def call(self, method, params=None, timeout=15.0):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        end = time.monotonic() + left(timeout)
        while True:
            raw = self.ws.recv(end - time.monotonic())
            if raw is None:
                raise TimeoutError(f"CDP {method}: no reply in {timeout:.0f} s")
            msg = json.loads(raw)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluating {expr!r}: {r['exceptionDetails'].get('exception', {}).get('description')}")
        return r.get("result", {}).get("value")

    def wait_for(self, expr, what, timeout):
        """Polls `expr` in the page until it is truthy; returns its value."""
        end = time.monotonic() + left(timeout)
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.monotonic() > end:
                shown = self.eval("document.getElementById('errtext').textContent")
                raise TimeoutError(f"waited {timeout:.0f} s for {what}; page error box: {shown!r}")
            time.sleep(0.1)

    def click(self, selector):
        if not self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                         f"if (!e || e.disabled) return false; e.click(); return true; }})()"):
            raise RuntimeError(f"no enabled element {selector} to click")

    def type_and_enter(self, text):
        """Types into #input with real key events (insertText, then Enter) as a user would."""
        self.eval("document.getElementById('input').focus()")
        self.call("Input.insertText", {"text": text})
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                 "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13})


# ---- the checks ----

def http_json(base, path, method="GET", key=KEY):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=left(10)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def n_messages(cdp):
    return cdp.eval("document.querySelectorAll('.msg.assistant').length")


def ask(cdp, text, what):
    """Sends `text` from the page; waits for the answer's final stats line; returns (answer, stats)."""
    n = n_messages(cdp)
    cdp.type_and_enter(text)
    last = "document.querySelectorAll('.msg.assistant')[%d]" % n
    stats = cdp.wait_for(f"(() => {{ const m = {last}; const s = m && m.querySelector('.stats').textContent;"
                         f" return s && /generated \\d+/.test(s) ? s : ''; }})()", f"the stats line of {what}",
                         300 if SLOW else 30)
    answer = cdp.eval(f"{last}.querySelector('.text').textContent")
    print(f"ok   {what}: {answer[:60]!r}... | {stats}")
    return answer, stats


def stat(stats, name):
    m = re.search(rf"\b{name} (\d+)", stats)
    return int(m.group(1)) if m else -1


def load(cdp, base):
    cdp.call("Page.navigate", {"url": base + "/"})
    cdp.wait_for(f"location.href === {json.dumps(base + '/')} && document.readyState === 'complete'",
                 "the page to load", 15)


def enter_key(cdp, base):
    """Without a key the page shows the 401; typing the key (then leaving the field) loads the model."""
    load(cdp, base)
    err = cdp.wait_for("document.getElementById('model').textContent === 'unavailable'"
                       " && document.getElementById('errtext').textContent", "the 401 without a key", 15)
    assert "401" in err and "API key" in err, f"error box says {err!r}"
    print(f"ok   without a key: {err!r}")
    cdp.eval("document.getElementById('key').focus()")
    cdp.call("Input.insertText", {"text": KEY})
    cdp.eval("document.getElementById('input').focus()")  # the key field's change event fires on blur


def run_checks(cdp, base, model_id, n_ctx):
    enter_key(cdp, base)
    for attempt in ("typed key", "reload (key from sessionStorage)"):
        if attempt.startswith("reload"):
            load(cdp, base)
        shown = cdp.wait_for("(() => { const m = document.getElementById('model').textContent;"
                         " return m !== '…' && m !== 'unavailable' ? [m, document.getElementById('ctx').textContent] : null; })()",
                             "the model name in the header", 15)
        assert shown == [model_id, f"{n_ctx:,}"], f"header shows {shown}, /v1/models says {model_id}, {n_ctx}"
        assert cdp.eval("getComputedStyle(document.getElementById('error')).display") == "none"
        print(f"ok   header after the {attempt}: {shown[0]}, context {shown[1]}")
    st, other = http_json(base, "/v1/sessions", "POST", key=OTHER_KEY)
    assert st == 200, other

    cdp.eval("document.getElementById('maxtok').value = %d; document.getElementById('temp').value = 0;" % MAX_TOKENS)
    cdp.click("#newsession")
    sid = cdp.wait_for("(() => { const s = document.getElementById('cursession').textContent;"
                       " return s !== 'none' && document.querySelector(`#sessions tr.selected[data-id=\"${s}\"]`)"
                       " ? s : ''; })()", "the new session to be selected", 10)
    print(f"ok   new session {sid} selected")

    answer, stats = ask(cdp, "What is the capital of France? Answer in one sentence.", "first answer")
    assert answer.strip(), "the answer is empty"
    assert stat(stats, "prompt") > 0 and stat(stats, "generated") > 0, stats
    assert re.search(r"[\d.]+ tok/s", stats), f"no tokens/s in {stats!r}"

    row = f"#sessions tr[data-id=\"{sid}\"]"
    cells = cdp.wait_for(f"(() => {{ const r = document.querySelector('{row}'); if (!r) return null;"
                         " const c = {}; for (const td of r.querySelectorAll('td[data-f]')) c[td.dataset.f] = td.textContent;"
                         " return +c.tokens > 0 && c.hot !== '0' && c.idle !== 'busy' ? c : null; })()",
                         "the session row to show tokens and hot KV bytes", 10)
    st, info = http_json(base, f"/v1/sessions/{sid}")
    assert st == 200 and info["tokens"] > 0 and info["kv_bytes"]["hot"] > 0, info
    assert int(cells["tokens"]) == info["tokens"], f"page shows {cells}, API says {info}"
    assert cells["codec"] == f"{info['codec']['k']}/{info['codec']['v']}", cells
    print(f"ok   session row: {cells}")
    assert not cdp.eval(f"!!document.querySelector('#sessions tr[data-id=\"{other['id']}\"]')"), \
        "the page lists another key's session"

    _, stats2 = ask(cdp, "And of Germany?", "follow-up in the session")
    assert stat(stats2, "cached") > 0, f"the follow-up reused no KV from the session: {stats2!r}"

    # Stop: a long answer, stopped once it has begun
    cdp.eval("document.getElementById('maxtok').value = 1500; document.getElementById('temp').value = 1;")
    n = n_messages(cdp)
    cdp.type_and_enter("Write a very long story about a dragon who learns to cook. Use many chapters.")
    last = "document.querySelectorAll('.msg.assistant')[%d]" % n
    cdp.wait_for(f"{last} && {last}.querySelector('.text').textContent.length > 0", "the long answer to begin",
                 300 if SLOW else 30)
    cdp.click("#stop")
    stats3 = cdp.wait_for(f"(() => {{ const s = {last}.querySelector('.stats').textContent;"
                          " return s !== 'waiting…' ? s : ''; })()", "the stopped answer's stats", 10)
    assert "stopped" in stats3, f"Stop did not stop the answer: {stats3!r}"
    assert cdp.eval("!document.getElementById('send').disabled && document.getElementById('stop').disabled")
    st = time.monotonic()
    while http_json(base, f"/v1/sessions/{sid}")[1].get("busy"):
        assert time.monotonic() - st < 10, "the session is still busy 10 s after Stop: the request was not cancelled"
        time.sleep(0.2)
    print(f"ok   Stop: {stats3}; the server cancelled the request")

    # an invalid setting: the server's 400 message is shown in red, the text goes back to the box
    cdp.eval("document.getElementById('maxtok').value = %d; document.getElementById('temp').value = 5;" % MAX_TOKENS)
    cdp.type_and_enter("hello")
    err = cdp.wait_for("(() => { const e = document.getElementById('error');"
                       " return getComputedStyle(e).display !== 'none' ? e.textContent : ''; })()",
                       "the error box", 10)
    color = cdp.eval("getComputedStyle(document.getElementById('error')).color")
    assert "400" in err and "temperature" in err, f"error box says {err!r}"
    assert color == "rgb(179, 38, 30)", f"the error is not red: {color}"
    assert cdp.eval("document.getElementById('input').value") == "hello"
    print(f"ok   error shown: {err.strip()[1:]!r}")

    cdp.click(f"{row} button.del")
    receipt = cdp.wait_for("document.getElementById('notice').textContent.startsWith('deleted')"
                           " ? document.getElementById('notice').textContent : ''", "the shred receipt", 10)
    m = re.search(r"shredded (\d+) tokens, (\d+) pages, .*\((\d+) bytes\)", receipt)
    assert m and sid in receipt and int(m.group(1)) > 0 and int(m.group(3)) > 0, f"receipt {receipt!r}"
    assert cdp.eval(f"!document.querySelector('{row}') &&"
                    " document.getElementById('cursession').textContent === 'none'"), "the row is still there"
    time.sleep(2.5)  # one more poll: the row must not come back
    assert not cdp.eval(f"!!document.querySelector('{row}')"), "the deleted session came back in the table"
    assert http_json(base, f"/v1/sessions/{sid}")[0] == 404
    print(f"ok   delete: {receipt}")


def main():
    if not os.path.exists(MODEL):
        print(f"skip: {MODEL} is not cached")
        return 77
    chromium = find_chromium()
    if not chromium:
        print("skip: Chromium is not installed (Debian: apt-get install chromium; or set CHROMIUM=/path/to/chrome)")
        return 77
    tmp = tempfile.TemporaryDirectory(prefix="ringkv-webui-")
    server = browser = ws = None
    failed = True
    try:
        keys = os.path.join(tmp.name, "keys")
        with open(os.open(keys, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(f"{KEY} webui\n{OTHER_KEY} other\n")
        server = Proc([BIN, "serve", "-m", MODEL, "--port", "0", "-t", "2", "-c", "2048", "--api-key-file", keys])
        m = server.wait_line(r"ringkv: serving .* on (http://\S+?:\d+)/", left(60))
        base = m.group(1)
        st, models = http_json(base, "/v1/models")
        assert st == 200, models
        model_id, n_ctx = models["data"][0]["id"], models["data"][0]["context_length"]

        argv = [chromium, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={tmp.name}/chromium",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,900", "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        browser = Proc(argv, start_new_session=True)
        m = browser.wait_line(r"DevTools listening on (ws://[^/\s]+)/", left(30))
        devtools = "http://" + m.group(1)[len("ws://"):]
        targets = json.loads(urllib.request.urlopen(devtools + "/json/list", timeout=left(10)).read())
        page = next(t for t in targets if t.get("type") == "page")
        ws = WebSocket(page["webSocketDebuggerUrl"], left(10))
        cdp = CDP(ws)
        cdp.call("Runtime.enable")
        cdp.call("Page.enable")
        run_checks(cdp, base, model_id, n_ctx)
        cdp.eval("0")  # collect any last events
        assert not cdp.errors, "errors in the page:\n  " + "\n  ".join(cdp.errors)
        print("ok   no console errors or uncaught exceptions")
        failed = False
    except Exception as e:  # noqa: BLE001 - report any failure with the server's log
        print(f"FAIL {type(e).__name__}: {e}")
        if server:
            print("---- server stderr ----\n" + server.tail())
    finally:
        if ws:
            ws.close()
        if browser and browser.p.poll() is None:
            os.killpg(browser.p.pid, signal.SIGTERM)
            try:
                browser.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(browser.p.pid, signal.SIGKILL)
                browser.p.wait(5)
        if server and server.p.poll() is None:
            server.p.send_signal(signal.SIGTERM)
            try:
                rc = server.p.wait(40)
            except subprocess.TimeoutExpired:
                server.p.kill()
                server.p.wait(5)
                rc = "killed after 40 s"
            if rc != 0:
                print(f"FAIL the server exited {rc} on SIGTERM\n{server.tail()}")
                failed = True
            else:
                print("ok   the server exited 0 on SIGTERM")
        tmp.cleanup()
    print(f"{'FAIL' if failed else 'PASS'} in {BUDGET - (DEADLINE - time.monotonic()):.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
