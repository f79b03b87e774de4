#!/usr/bin/env python3
"""server_load.py — load generator for OpenAI-compatible chat servers (ringkv serve, llama-server).

Python standard library only. Every request is a streamed chat completion (stream=true,
temperature 0, stream_options.include_usage); the server-sent events are parsed line by line as
they arrive, so each content chunk gets its own timestamp. Token counts come from the usage
chunk at the end (a chunk may carry more than one token: ringkv sends whatever text is ready
when its writer wakes up); for counts inside a time window the request's tokens are spread
evenly over its content chunks.

Phases (one server each; bench/run-server.sh runs them against ringkv and llama-server):
  throughput     N streaming clients for a fixed window, for each N in --concurrency:
                 aggregate tok/s (tokens whose chunk arrived inside the window / window),
                 mean per-stream decode tok/s, TTFT p50/p99 of the requests sent in the window.
  interference   --short-clients clients send short requests (max_tokens 16) back to back while
                 one more client sends a long (--long-tokens) prompt, --repeats times one after
                 the other. TTFT of the short requests whose wait for a first token overlapped a
                 long prefill (few samples: a stalled server answers few short requests; p99 is
                 then close to the maximum), the gaps between their tokens during the prefill
                 (many samples: the decode stall), and TTFT before the first long prompt.
  sessions       a question over a --doc-tokens document, then a follow-up (the conversation
                 so far + the new question); with --session (ringkv) both run in a session made
                 by POST /v1/sessions. TTFT of each, and the prompt tokens the server really ran
                 for each (ringkv: ringkv:prompt_tokens_processed_total from /metrics;
                 llama-server: timings.prompt_n of the last chunk).
  soak           --clients streaming clients for --seconds; errors, requests, the server's RSS
                 (/proc/PID/status VmRSS, needs --pid) every 5 s.
  report FILE    the comparison tables from the RESULT lines of both servers in FILE.
  health         waits for GET /health to answer 200 (exit 1 after --timeout seconds).
  machine-load   CPU use of the machine over --seconds and its busiest processes.

Each phase prints a Markdown table, then one line `RESULT {json}` with every number. With --pid
each phase also reports `other_cpu_pct`: CPU time taken during the phase by everything except
the server and this load generator, in % of one core (a number above ~10 means the machine was
not quiet and the timings are not clean).

  server_load.py --url http://127.0.0.1:8080 --label ringkv --pid 1234 throughput --window 15
"""
import argparse
import glob
import http.client
import json
import math
import os
import sys
import threading
import time
import urllib.parse

# ---- prompts ------------------------------------------------------------------------------

TOPICS = [
    "the history of the Roman Empire", "how volcanoes form", "the life cycle of stars",
    "the invention of the printing press", "how the human heart works", "the causes of the First World War",
    "photosynthesis in plants", "the history of jazz music", "how airplanes fly", "the water cycle",
    "the French Revolution", "how computers store data", "the migration of birds", "ancient Egypt",
    "the theory of evolution", "the history of the Olympic Games", "how vaccines work",
    "the Industrial Revolution", "coral reefs", "the exploration of Mars", "the Great Wall of China",
    "how bees make honey", "the history of chess", "climate and weather", "the Renaissance",
    "how rivers shape the land", "the invention of the telephone", "the solar system",
    "the history of medicine", "life in the deep ocean", "the Silk Road", "how trains work",
    "the history of mathematics", "rainforests", "the Moon landing", "the human brain",
    "the history of writing", "earthquakes", "the Vikings", "how electricity is made",
]
FORMS = [
    "Write a long, detailed essay about {}.",
    "Explain {} in detail, step by step, to a curious student.",
    "Tell me everything you know about {}. Be thorough.",
    "Write a detailed report on {}, with an introduction, several sections and a conclusion.",
]
SHORT_QUESTIONS = [
    "What is the capital of {}?", "Name a famous food from {}.", "What language is spoken in {}?",
    "Is {} in Europe, Asia, Africa or the Americas?",
]
COUNTRIES = [
    "France", "Japan", "Brazil", "Kenya", "Canada", "Italy", "India", "Egypt", "Mexico", "Norway",
    "Spain", "China", "Peru", "Greece", "Turkey", "Chile", "Poland", "Vietnam", "Morocco", "Sweden",
]


def long_answer_prompt(i):
    """The i-th of 160 distinct short prompts that ask for a long answer."""
    return FORMS[(i // len(TOPICS)) % len(FORMS)].format(TOPICS[i % len(TOPICS)])


def short_prompt(i):
    return SHORT_QUESTIONS[(i // len(COUNTRIES)) % len(SHORT_QUESTIONS)].format(COUNTRIES[i % len(COUNTRIES)])


# ---- HTTP and server-sent events ------------------------------------------------------------

class Server:
    def __init__(self, url, label, pid):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.label, self.pid = u.hostname, u.port or 80, label, pid

    def connect(self, timeout=600.0):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path, timeout=10.0):
        c = self.connect(timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_json(self, path, obj, timeout=60.0):
        c = self.connect(timeout)
        try:
            c.request("POST", path, body=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        finally:
            c.close()


def chat_body(messages, max_tokens, session=None):
    b = {"model": "bench", "messages": messages, "stream": True, "temperature": 0,
         "max_tokens": max_tokens, "stream_options": {"include_usage": True}}
    if session:
        b["session"] = session
    return b


def stream_chat(server, body, timeout=600.0):
    """Sends a streamed chat request on a fresh connection and reads it as it arrives. Returns a
    dict: t_send, ttft (s, to the first non-empty content), chunks (arrival times of the content
    chunks), n_tokens (usage.completion_tokens, else the chunk count), ok, error, finish, usage,
    timings (llama-server's), text, t_end. A connection per request treats both servers alike
    (llama-server closes the connection after a streamed answer, ringkv keeps it open) and costs
    ~0.1 ms on the loopback."""
    r = {"t_send": time.perf_counter(), "ttft": None, "chunks": [], "n_tokens": 0, "ok": False,
         "error": None, "finish": None, "usage": None, "timings": None, "text": ""}
    payload = json.dumps(body).encode()
    text = []
    conn = server.connect(timeout)
    try:
        r["t_send"] = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=payload,
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            r["error"] = "HTTP %d: %s" % (resp.status, resp.read()[:300].decode("utf-8", "replace"))
        done = False
        while r["error"] is None:
            line = resp.readline()
            t = time.perf_counter()
            if not line:
                break
            if not line.startswith(b"data:"):
                continue  # blank separators, ": ping" comments
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            obj = json.loads(data)
            if "error" in obj:
                r["error"] = "stream error event: " + json.dumps(obj["error"])[:300]
                break
            for ch in obj.get("choices") or []:
                content = (ch.get("delta") or {}).get("content")
                if content:
                    if r["ttft"] is None:
                        r["ttft"] = t - r["t_send"]
                    r["chunks"].append(t)
                    text.append(content)
                if ch.get("finish_reason"):
                    r["finish"] = ch["finish_reason"]
            if obj.get("usage"):
                r["usage"] = obj["usage"]
            if obj.get("timings"):
                r["timings"] = obj["timings"]
        if done:
            r["ok"] = True
        elif r["error"] is None:
            r["error"] = "stream ended without [DONE]"
    except Exception as e:  # connection refused/reset, timeouts, bad JSON
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    r["text"] = "".join(text)
    u = r["usage"] or {}
    r["n_tokens"] = u.get("completion_tokens", len(r["chunks"]))
    r["t_end"] = time.perf_counter()
    return r


# ---- statistics -----------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile; None for no values."""
    v = sorted(values)
    if not v:
        return None
    return v[max(0, min(len(v) - 1, math.ceil(p / 100.0 * len(v)) - 1))]


def mean(values):
    return sum(values) / len(values) if values else None


def tokens_between(reqs, t0, t1):
    """Tokens whose chunk arrived in [t0, t1], each request's tokens spread over its chunks."""
    n = 0.0
    for r in reqs:
        if r["chunks"]:
            w = r["n_tokens"] / len(r["chunks"])
            n += w * sum(1 for t in r["chunks"] if t0 <= t <= t1)
    return n


def stream_rate(r):
    """Decode tok/s of one stream: tokens after the first over the time from first to last."""
    if r["n_tokens"] < 2 or len(r["chunks"]) < 2:
        return None
    dt = r["chunks"][-1] - r["chunks"][0]
    return (r["n_tokens"] - 1) / dt if dt > 0 else None


def ms(x):
    return "-" if x is None else "%.0f" % (1000.0 * x)


def f1(x):
    return "-" if x is None else "%.1f" % x


def errors_of(reqs, keep=5):
    errs = [r["error"] for r in reqs if not r["ok"]]
    return len(errs), errs[:keep]


class CpuWatch:
    """CPU ticks of the whole machine, the server and this process, to tell how much CPU
    everything else took between start() and stop()."""

    def __init__(self, pid):
        self.pid = pid
        self.hz = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _machine_busy():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)  # minus idle and iowait

    @staticmethod
    def _proc(pid):
        try:
            with open("/proc/%s/stat" % pid) as f:
                s = f.read()
            v = s[s.rindex(")") + 2:].split()
            return int(v[11]) + int(v[12])  # utime + stime, all threads
        except (OSError, ValueError, IndexError):
            return 0

    def _sample(self):
        return (time.perf_counter(), self._machine_busy(), self._proc("self"),
                self._proc(self.pid) if self.pid else 0)

    def start(self):
        self.a = self._sample()

    def stop(self):
        """Returns (other_cpu_pct, server_cpu_pct), in % of one core."""
        b = self._sample()
        dt = max(b[0] - self.a[0], 1e-9)
        other = (b[1] - self.a[1]) - (b[2] - self.a[2]) - (b[3] - self.a[3])
        return (round(100.0 * max(other, 0) / self.hz / dt, 1),
                round(100.0 * (b[3] - self.a[3]) / self.hz / dt, 1))


def emit(table_lines, result):
    print("\n".join(table_lines))
    print("RESULT " + json.dumps(result, separators=(",", ":")))
    sys.stdout.flush()


# ---- haystack documents -------------------------------------------------------------------

def read_haystack(path):
    files = sorted(glob.glob(os.path.join(path, "*.txt")))
    if not files:
        sys.exit("server_load: no *.txt under %s" % path)
    return "".join(open(f, encoding="utf-8", errors="replace").read() for f in files)


def count_tokens(server, text):
    st, obj = server.post_json("/tokenize", {"content": text})
    if st != 200 or not obj or "tokens" not in obj:
        sys.exit("server_load: %s /tokenize answered %s %s" % (server.label, st, obj))
    return len(obj["tokens"])


def document(server, hay, n_tokens, index):
    """About n_tokens of the essays (cut at a space), starting at a different place for each
    index so no two documents share a prefix. Sized with the server's /tokenize."""
    start = (index * 53_000) % max(1, len(hay) - 8 * n_tokens)
    chars = 4 * n_tokens
    for _ in range(4):
        text = hay[start:start + chars]
        text = text[:text.rfind(" ")] if " " in text else text
        n = count_tokens(server, text)
        if abs(n - n_tokens) <= n_tokens // 100:
            break
        chars = int(chars * n_tokens / max(n, 1))
    return text, n


# ---- phases ---------------------------------------------------------------------------------

def phase_throughput(server, a):
    rows, out = [], []
    next_prompt = [0]
    lock = threading.Lock()
    for c in [int(x) for x in a.concurrency.split(",")]:
        reqs = []
        t0 = time.perf_counter()
        t_w = t0 + a.warmup
        t_stop = t_w + a.window

        def client():
            while time.perf_counter() < t_stop:
                with lock:
                    i = next_prompt[0]
                    next_prompt[0] += 1
                r = stream_chat(server, chat_body([{"role": "user", "content": long_answer_prompt(i)}], a.max_tokens))
                r.pop("text")
                with lock:
                    reqs.append(r)
                if not r["ok"]:
                    time.sleep(0.1)

        cpu = CpuWatch(server.pid)
        cpu.start()
        threads = [threading.Thread(target=client) for _ in range(c)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, t_stop - time.perf_counter()))
        other, srv_cpu = cpu.stop()
        for t in threads:
            t.join()
        ok = [r for r in reqs if r["ok"]]
        in_w = [r for r in ok if t_w <= r["t_send"] <= t_stop and r["ttft"] is not None]
        rates = [x for x in (stream_rate(r) for r in ok if r["chunks"] and t_w <= r["chunks"][0] <= t_stop)
                 if x is not None]
        n_err, errs = errors_of(reqs)
        res = {"clients": c, "window_s": a.window, "agg_tok_s": round(tokens_between(ok, t_w, t_stop) / a.window, 2),
               "stream_tok_s": round(mean(rates), 2) if rates else None,
               "ttft_p50_s": pct([r["ttft"] for r in in_w], 50), "ttft_p99_s": pct([r["ttft"] for r in in_w], 99),
               "requests": len(reqs), "requests_in_window": len(in_w), "errors": n_err, "error_samples": errs,
               "tokens_per_request": round(mean([r["n_tokens"] for r in ok]), 1) if ok else None,
               "hit_max_tokens_pct": round(100.0 * sum(1 for r in ok if r["finish"] == "length") / len(ok), 1) if ok else None,
               "other_cpu_pct": other, "server_cpu_pct": srv_cpu}
        out.append(res)
        rows.append("| %s | %d | %.1f | %s | %s | %s | %d | %s | %d | %s |" % (
            server.label, c, res["agg_tok_s"], f1(res["stream_tok_s"]), ms(res["ttft_p50_s"]), ms(res["ttft_p99_s"]),
            len(in_w), f1(res["tokens_per_request"]), n_err, f1(other)))
    table = ["| server | clients | aggregate tok/s | per-stream tok/s | TTFT p50 ms | TTFT p99 ms | requests in window "
             "| tokens/request | errors | other CPU % |", "|---|---|---|---|---|---|---|---|---|---|"] + rows
    emit(table, {"phase": "throughput", "label": server.label, "max_tokens": a.max_tokens, "runs": out})


def phase_interference(server, a):
    hay = read_haystack(a.haystack)
    docs = [document(server, hay, a.long_tokens, a.doc_index + 1 + k) for k in range(a.repeats)]
    short, longs = [], []
    stop = threading.Event()
    lock = threading.Lock()
    counter = [0]

    def short_client():
        while not stop.is_set():
            with lock:
                i = counter[0]
                counter[0] += 1
            r = stream_chat(server, chat_body([{"role": "user", "content": short_prompt(i)}], a.short_max_tokens))
            with lock:
                short.append(r)
            if not r["ok"]:
                time.sleep(0.1)

    cpu = CpuWatch(server.pid)
    cpu.start()
    threads = [threading.Thread(target=short_client) for _ in range(a.short_clients)]
    for t in threads:
        t.start()
    time.sleep(a.baseline)
    for text, n in docs:
        q = text + "\n\nIn two sentences, what is the text above about?"
        r = stream_chat(server, chat_body([{"role": "user", "content": q}], 16))
        r["doc_tokens"] = n
        longs.append(r)
        time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    other, srv_cpu = cpu.stop()
    # The long prompts' prefill intervals: from sending to their first token.
    spans = [(l["t_send"], l["t_send"] + (l["ttft"] if l["ttft"] is not None else l["t_end"] - l["t_send"]))
             for l in longs]

    def overlaps(t0, t1):
        return any(t0 <= s1 and t1 >= s0 for s0, s1 in spans)

    ok = [r for r in short if r["ok"] and r["ttft"] is not None]
    # A short request waited through a prefill when its wait for the first token overlapped one.
    during = [r for r in ok if overlaps(r["t_send"], r["t_send"] + r["ttft"])]
    before = [r for r in ok if r["t_end"] < spans[0][0]]
    d_ttft = [r["ttft"] for r in during]
    b_ttft = [r["ttft"] for r in before]
    # Gaps between the content chunks of the short streams while a prefill ran: the decode stall.
    gaps = [t1 - t0 for r in ok for t0, t1 in zip(r["chunks"], r["chunks"][1:]) if overlaps(t0, t1)]
    n_err, errs = errors_of(short + longs)
    res = {"phase": "interference", "label": server.label, "short_clients": a.short_clients,
           "short_max_tokens": a.short_max_tokens, "long_prompt_tokens": [l["doc_tokens"] for l in longs],
           "long_usage_prompt_tokens": [(l["usage"] or {}).get("prompt_tokens") for l in longs],
           "long_ttft_s": [l["ttft"] for l in longs], "long_ok": [l["ok"] for l in longs],
           "short_during": len(during), "short_during_ttft_p50_s": pct(d_ttft, 50),
           "short_during_ttft_p99_s": pct(d_ttft, 99), "short_during_ttft_max_s": pct(d_ttft, 100),
           "short_during_gap_n": len(gaps), "short_during_gap_p50_s": pct(gaps, 50),
           "short_during_gap_p99_s": pct(gaps, 99),
           "short_before": len(before), "short_before_ttft_p50_s": pct(b_ttft, 50),
           "short_before_ttft_p99_s": pct(b_ttft, 99), "errors": n_err, "error_samples": errs,
           "other_cpu_pct": other, "server_cpu_pct": srv_cpu}
    emit(interference_table([res]), res)


def interference_table(results):
    rows = ["| server | long prompt tokens | long TTFT s | short TTFT during prefill: n, p50 / p99 / max ms "
            "| short token gaps during prefill: n, p50 / p99 ms | short TTFT before: p50 / p99 ms | errors "
            "| other CPU % |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append("| %s | %s | %s | %d: %s / %s / %s | %d: %s / %s | %s / %s | %d | %s |" % (
            r["label"], ", ".join(str(x) for x in r["long_usage_prompt_tokens"]),
            ", ".join(f1(x) for x in r["long_ttft_s"]), r["short_during"], ms(r["short_during_ttft_p50_s"]),
            ms(r["short_during_ttft_p99_s"]), ms(r["short_during_ttft_max_s"]), r["short_during_gap_n"],
            ms(r["short_during_gap_p50_s"]), ms(r["short_during_gap_p99_s"]), ms(r["short_before_ttft_p50_s"]),
            ms(r["short_before_ttft_p99_s"]), r["errors"], f1(r["other_cpu_pct"])))
    return rows


def processed_counter(server):
    """ringkv:prompt_tokens_processed_total, or None when the server has no such metric."""
    try:
        st, body = server.get("/metrics")
    except OSError:
        return None
    if st != 200:
        return None
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("ringkv:prompt_tokens_processed_total"):
            return float(line.split()[-1])
    return None


def phase_sessions(server, a):
    hay = read_haystack(a.haystack)
    doc, n_doc = document(server, hay, a.doc_tokens, a.doc_index + 5)
    session = None
    if a.session:
        st, obj = server.post_json("/v1/sessions", {})
        if st != 200 or not obj or "id" not in obj:
            sys.exit("server_load: POST /v1/sessions answered %s %s" % (st, obj))
        session = obj["id"]
    msgs = [{"role": "user", "content": doc + "\n\nQuestion: what is the main argument of the text above? "
                                              "Answer in a few sentences."}]
    qs = []
    cpu = CpuWatch(server.pid)
    cpu.start()
    for turn in range(2):
        before = processed_counter(server)
        r = stream_chat(server, chat_body(msgs, a.max_tokens, session))
        after = processed_counter(server)
        if not r["ok"]:
            sys.exit("server_load: %s sessions question %d failed: %s" % (server.label, turn + 1, r["error"]))
        tm = r["timings"] or {}
        r["processed"] = (after - before) if before is not None and after is not None else tm.get("prompt_n")
        r["cached"] = (r["usage"] or {}).get("prompt_tokens_details", {}).get("cached_tokens", tm.get("cache_n"))
        qs.append(r)
        msgs = msgs + [{"role": "assistant", "content": r["text"]},
                       {"role": "user", "content": "Name one person, place or thing the text mentions, and say "
                                                   "in one sentence why it matters there."}]
    other, srv_cpu = cpu.stop()
    kv_pages = None
    if session:
        st, body = server.get("/v1/sessions/" + session)
        kv_pages = json.loads(body).get("kv_pages") if st == 200 else None
        c = server.connect(30)
        c.request("DELETE", "/v1/sessions/" + session)
        c.getresponse().read()
        c.close()
    q1, q2 = qs
    res = {"phase": "sessions", "label": server.label, "session": bool(session), "doc_tokens": n_doc,
           "q1_prompt_tokens": (q1["usage"] or {}).get("prompt_tokens"), "q2_prompt_tokens": (q2["usage"] or {}).get("prompt_tokens"),
           "q1_ttft_s": q1["ttft"], "q2_ttft_s": q2["ttft"],
           "ttft_ratio": (q2["ttft"] / q1["ttft"]) if q1["ttft"] and q2["ttft"] is not None else None,
           "q1_processed": q1["processed"], "q2_processed": q2["processed"],
           "q1_tokens": q1["n_tokens"], "q2_tokens": q2["n_tokens"], "q1_decode_tok_s": stream_rate(q1),
           "q2_decode_tok_s": stream_rate(q2), "kv_pages": kv_pages, "other_cpu_pct": other, "server_cpu_pct": srv_cpu}
    table = ["| server | session | Q1 prompt tokens | Q1 TTFT s | Q2 prompt tokens | Q2 TTFT s | Q2/Q1 | Q1 / Q2 tokens run "
             "| other CPU % |", "|---|---|---|---|---|---|---|---|---|",
             "| %s | %s | %s | %.2f | %s | %.3f | %.1f%% | %s / %s | %s |" % (
                 server.label, "yes" if session else "no (prompt cache)", res["q1_prompt_tokens"], q1["ttft"],
                 res["q2_prompt_tokens"], q2["ttft"], 100.0 * res["ttft_ratio"], fmt_int(q1["processed"]),
                 fmt_int(q2["processed"]), f1(other))]
    emit(table, res)


def fmt_int(x):
    return "-" if x is None else "%d" % x


def read_rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def phase_soak(server, a):
    reqs, rss = [], []
    lock = threading.Lock()
    counter = [0]
    t0 = time.perf_counter()
    t_stop = t0 + a.seconds
    done = threading.Event()

    def client():
        while time.perf_counter() < t_stop:
            with lock:
                i = counter[0]
                counter[0] += 1
            r = stream_chat(server, chat_body([{"role": "user", "content": long_answer_prompt(i)}], a.max_tokens))
            r.pop("text")
            with lock:
                reqs.append(r)
            if not r["ok"]:
                time.sleep(0.1)

    def sampler():
        while not done.is_set():
            if server.pid:
                kb = read_rss_kb(server.pid)
                if kb is not None:
                    rss.append((round(time.perf_counter() - t0, 1), kb))
            done.wait(a.rss_every)

    cpu = CpuWatch(server.pid)
    cpu.start()
    samp = threading.Thread(target=sampler)
    samp.start()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, t_stop - time.perf_counter()))
    other, srv_cpu = cpu.stop()
    for t in threads:
        t.join()  # every client finishes the request it has running
    t_drained = time.perf_counter() - t0
    done.set()
    samp.join()
    ok = [r for r in reqs if r["ok"]]
    n_err, errs = errors_of(reqs, 10)
    warm_at = min(60.0, a.seconds / 5.0)
    in_run = [kb for t, kb in rss if t <= a.seconds]
    warm = next((kb for t, kb in rss if t >= warm_at), None)
    end = in_run[-1] if in_run else None
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    res = {"phase": "soak", "label": server.label, "clients": a.clients, "seconds": a.seconds,
           "drained_at_s": round(t_drained, 1), "requests": len(reqs), "ok": len(ok), "errors": n_err,
           "error_samples": errs, "tokens": sum(r["n_tokens"] for r in ok),
           "agg_tok_s": round(tokens_between(ok, t0, t_stop) / a.seconds, 2),
           "ttft_p50_s": pct(ttfts, 50), "ttft_p99_s": pct(ttfts, 99),
           "rss_warm_at_s": warm_at, "rss_warm_kb": warm, "rss_end_kb": end,
           "rss_max_kb": max(in_run) if in_run else None, "rss_after_drain_kb": rss[-1][1] if rss else None,
           "rss_change_pct": round(100.0 * (end - warm) / warm, 2) if warm and end else None,
           "rss_samples": rss, "other_cpu_pct": other, "server_cpu_pct": srv_cpu}
    mb = lambda kb: "-" if kb is None else "%.1f" % (kb / 1024.0)
    table = ["| server | clients | seconds | requests | errors | tok/s | TTFT p50 / p99 ms | RSS at %.0f s MB | RSS end MB "
             "| RSS max MB | change | other CPU %% |" % warm_at, "|---|---|---|---|---|---|---|---|---|---|---|---|",
             "| %s | %d | %.0f | %d | %d | %.1f | %s / %s | %s | %s | %s | %s | %s |" % (
                 server.label, a.clients, a.seconds, len(reqs), n_err, res["agg_tok_s"], ms(res["ttft_p50_s"]),
                 ms(res["ttft_p99_s"]), mb(warm), mb(end), mb(res["rss_max_kb"]),
                 "-" if res["rss_change_pct"] is None else "%+.1f%%" % res["rss_change_pct"], f1(other))]
    emit(table, res)


def phase_health(server, a):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        try:
            st, _ = server.get("/health", timeout=2.0)
            if st == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    sys.exit("server_load: %s:%d /health did not answer 200 in %.0f s" % (server.host, server.port, a.timeout))


def phase_machine_load(a):
    """Prints one line: machine CPU busy %, load average, and the busiest processes."""
    def per_proc():
        d = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/stat" % p) as f:
                        s = f.read()
                    v = s[s.rindex(")") + 2:].split()
                    d[p] = (s[s.index("(") + 1:s.rindex(")")], int(v[11]) + int(v[12]))
                except (OSError, ValueError, IndexError):
                    pass
        return d
    hz = os.sysconf("SC_CLK_TCK")
    m0, p0, t0 = CpuWatch._machine_busy(), per_proc(), time.perf_counter()
    time.sleep(a.seconds)
    m1, p1, t1 = CpuWatch._machine_busy(), per_proc(), time.perf_counter()
    dt = t1 - t0
    busy = 100.0 * (m1 - m0) / hz / dt
    # a process that started meanwhile counts with all its ticks; one that ended is not seen
    top = sorted(((100.0 * (v[1] - (p0[k][1] if k in p0 else 0)) / hz / dt, v[0]) for k, v in p1.items()),
                 reverse=True)
    top = ["%s %.0f%%" % (n, c) for c, n in top[:4] if c >= 5.0]
    la = open("/proc/loadavg").read().split()[:3]
    print("CPU busy %.0f%% of one core (%d cores), load average %s; busiest: %s" % (
        busy, os.cpu_count(), " ".join(la), ", ".join(top) if top else "none"))


# ---- report: both servers side by side ---------------------------------------------------

BUSY_PCT = 10  # other processes' CPU (% of one core) above which a phase's timings are not clean


def ratio(a, b):
    return "-" if not a or not b else "%.2f" % (a / b)


def phase_report(a):
    res = {}
    for line in open(a.file):
        if line.startswith("RESULT "):
            line = line[7:]
        if line.strip().startswith("{"):
            r = json.loads(line)
            res[(r["phase"], r["label"])] = r
    rk, lc = a.ringkv, a.llama
    out = []

    def busy(*rs):
        return any((r.get("other_cpu_pct") or 0) > BUSY_PCT for r in rs)

    def mark(goal_text, *rs):
        return goal_text + (" (machine busy: not valid)" if busy(*rs) else "")

    flagged = sorted("%s/%s" % k for k, r in res.items() if busy(r, *r.get("runs", [])))
    if flagged:
        out += ["**Machine busy**: other processes took more than %d%% of a core during %s; those numbers "
                "are not clean (rerun on a quiet machine)." % (BUSY_PCT, ", ".join(flagged)), ""]
    if ("throughput", rk) in res and ("throughput", lc) in res:
        R = {x["clients"]: x for x in res[("throughput", rk)]["runs"]}
        L = {x["clients"]: x for x in res[("throughput", lc)]["runs"]}
        goals = {1: 1.0, 16: 1.2}
        out += ["### Streaming throughput (max_tokens %d, temperature 0)" % res[("throughput", rk)]["max_tokens"], "",
                "| clients | ringkv tok/s | llama-server tok/s | ratio | goal | per-stream tok/s rk / lc | TTFT p50 ms rk / lc "
                "| TTFT p99 ms rk / lc | tokens/request rk / lc | errors rk / lc | other CPU % rk / lc |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in sorted(R):
            if c not in L:
                continue
            r, l = R[c], L[c]
            g = goals.get(c)
            met = "-" if g is None else mark("≥ %.1f: %s" % (g, "met" if r["agg_tok_s"] >= g * l["agg_tok_s"] else "missed"), r, l)
            out.append("| %d | %.1f | %.1f | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %d / %d | %s / %s |" % (
                c, r["agg_tok_s"], l["agg_tok_s"], ratio(r["agg_tok_s"], l["agg_tok_s"]), met,
                f1(r["stream_tok_s"]), f1(l["stream_tok_s"]), ms(r["ttft_p50_s"]), ms(l["ttft_p50_s"]),
                ms(r["ttft_p99_s"]), ms(l["ttft_p99_s"]), f1(r["tokens_per_request"]), f1(l["tokens_per_request"]),
                r["errors"], l["errors"], f1(r["other_cpu_pct"]), f1(l["other_cpu_pct"])))
        out.append("")
    if ("interference", rk) in res and ("interference", lc) in res:
        ri, li = res[("interference", rk)], res[("interference", lc)]
        out += ["### Short requests beside a long prompt (%d clients, max_tokens %d, back to back)"
                % (ri["short_clients"], ri["short_max_tokens"]), ""]
        out += interference_table([ri, li])
        out.append("")
        p_r, p_l = res[("interference", rk)]["short_during_ttft_p99_s"], res[("interference", lc)]["short_during_ttft_p99_s"]
        met = "met" if p_r is not None and p_l and p_r <= 0.5 * p_l else "missed"
        out += ["p99 short TTFT during the long prompt, ringkv / llama-server: %s (%s)"
                % (ratio(p_r, p_l), mark("goal ≤ 0.5: " + met, ri, li)), ""]
    ses = [res[k] for k in (("sessions", rk), ("sessions", lc)) if k in res]
    if ses:
        out += ["### A follow-up question over a long document", "",
                "| server | mode | Q1 prompt tokens | Q1 TTFT s | Q2 prompt tokens | Q2 TTFT s | Q2 / Q1 | goal "
                "| prompt tokens run Q1 / Q2 | other CPU % |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ses:
            g = mark("≤ 10%%: %s" % ("met" if r["ttft_ratio"] is not None and r["ttft_ratio"] <= 0.10 else "missed"), r) \
                if r["session"] else "-"
            out.append("| %s | %s | %s | %.2f | %s | %.3f | %.1f%% | %s | %s / %s | %s |" % (
                r["label"], "session" if r["session"] else "prompt cache (cache_prompt)", r["q1_prompt_tokens"],
                r["q1_ttft_s"], r["q2_prompt_tokens"], r["q2_ttft_s"], 100.0 * (r["ttft_ratio"] or 0), g,
                fmt_int(r["q1_processed"]), fmt_int(r["q2_processed"]), f1(r["other_cpu_pct"])))
        out.append("")
    soaks = [res[k] for k in (("soak", rk), ("soak", lc)) if k in res]
    if soaks:
        mb = lambda kb: "-" if kb is None else "%.1f" % (kb / 1024.0)
        out += ["### Soak", "",
                "| server | clients | seconds | requests | errors | tok/s | TTFT p50 / p99 ms | RSS after warm-up MB "
                "| RSS at end MB | RSS max MB | change | goal | other CPU % |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in soaks:
            ch = r["rss_change_pct"]
            g = "flat ±5%%, 0 errors: %s" % ("met" if ch is not None and abs(ch) <= 5.0 and r["errors"] == 0 else "missed")
            out.append("| %s | %d | %.0f | %d | %d | %.1f | %s / %s | %s (at %.0f s) | %s | %s | %s | %s | %s |" % (
                r["label"], r["clients"], r["seconds"], r["requests"], r["errors"], r["agg_tok_s"], ms(r["ttft_p50_s"]),
                ms(r["ttft_p99_s"]), mb(r["rss_warm_kb"]), r["rss_warm_at_s"], mb(r["rss_end_kb"]), mb(r["rss_max_kb"]),
                "-" if ch is None else "%+.1f%%" % ch, g, f1(r["other_cpu_pct"])))
        for r in soaks:
            pts = [p for i, p in enumerate(r["rss_samples"])
                   if i == 0 or i == len(r["rss_samples"]) - 1 or p[0] // 60 != r["rss_samples"][i - 1][0] // 60]
            out += ["", "%s RSS, seconds since the soak began: MB (the last after the drain): %s"
                    % (r["label"], ", ".join("%.0f: %.1f" % (t, kb / 1024.0) for t, kb in pts))]
        for r in soaks:
            if r["error_samples"]:
                out += ["", "%s soak errors (first %d): %s"
                        % (r["label"], len(r["error_samples"]), "; ".join(r["error_samples"]))]
        out.append("")
    print("\n".join(out))


# ---- command line ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--label", default="server")
    ap.add_argument("--pid", type=int, default=0, help="the server's process id (RSS, CPU accounting)")
    ap.add_argument("--haystack", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "shared", "testdata", "haystack", "pg-essays"))
    ap.add_argument("--doc-index", type=int, default=0,
                    help="shifts where the documents start in the essays (to rerun on a server that cached them)")
    sub = ap.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--window", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p = sub.add_parser("interference")
    p.add_argument("--short-clients", type=int, default=6, help="clients sending short requests back to back")
    p.add_argument("--short-max-tokens", type=int, default=16)
    p.add_argument("--long-tokens", type=int, default=6000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--baseline", type=float, default=3.0, help="seconds of short requests before the first long one")
    p = sub.add_parser("sessions")
    p.add_argument("--doc-tokens", type=int, default=6000)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--session", action="store_true", help="POST /v1/sessions and ask both questions in it")
    p = sub.add_parser("soak")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--rss-every", type=float, default=5.0)
    p = sub.add_parser("health")
    p.add_argument("--timeout", type=float, default=120.0)
    p = sub.add_parser("machine-load")
    p.add_argument("--seconds", type=float, default=2.0)
    p = sub.add_parser("report")
    p.add_argument("file")
    p.add_argument("--ringkv", default="ringkv")
    p.add_argument("--llama", default="llama-server")
    a = ap.parse_args()
    if a.phase == "report":
        return phase_report(a)
    if a.phase == "machine-load":
        return phase_machine_load(a)
    server = Server(a.url, a.label, a.pid)
    {"throughput": phase_throughput, "interference": phase_interference, "sessions": phase_sessions,
     "soak": phase_soak, "health": phase_health}[a.phase](server, a)


if __name__ == "__main__":
    main()
