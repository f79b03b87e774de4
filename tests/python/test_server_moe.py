"""test_server_moe.py — `ringkv serve` on mixture-of-experts models (issue: MoE served like any
model): tiny random-weight qwen3moe and qwen2moe (shared expert) GGUFs with K-quant experts
(tests/python/make_moe_models.py). Greedy completions of 6 different prompts sent at once equal
their answers alone (each sequence routes its own tokens, so batching cannot change a token's
experts), and a session's follow-up runs only its new tokens. Skipped (77) without numpy + gguf.
"""
import concurrent.futures
import json
import sys
import tempfile

from server_util import SKIP, Checks, Server

try:
    import make_moe_models as mk
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(SKIP)

CHECKS = Checks("test_server_moe")
failures = CHECKS.failures
check = CHECKS.check


def complete(srv, prompt, session=None):
    body = {"prompt": prompt, "max_tokens": 24, "temperature": 0}
    if session:
        body["session"] = session
    r = srv.json("POST", "/v1/completions", body)
    return r["choices"][0]["text"], r["usage"]


def run_model(path):
    prompts = [f"story {i}: the {w} went" for i, w in enumerate(("cat", "ship", "tree", "robot", "river", "clock"))]
    with Server(["-m", path, "-t", "2", "-c", "1024", "--parallel", "6"]) as srv:
        alone = [complete(srv, p)[0] for p in prompts]
        # a second server: no slot has a cached prefix of these prompts, as for the first answers
    with Server(["-m", path, "-t", "2", "-c", "1024", "--parallel", "6"]) as srv:
        with concurrent.futures.ThreadPoolExecutor(len(prompts)) as ex:
            together = [t for t, _ in ex.map(lambda p: complete(srv, p), prompts)]
        for p, a, t in zip(prompts, alone, together):
            check(a == t and len(a) > 0, f"{path}: {p!r}: alone {a!r} != together {t!r}")
        sid = srv.json("POST", "/v1/sessions", {})["id"]
        doc = " ".join(prompts)  # the tiny models hold 256 tokens
        _, u1 = complete(srv, doc, sid)
        before = srv.metrics()["ringkv:prompt_tokens_processed_total"]
        _, u2 = complete(srv, doc + " and then", sid)
        ran = srv.metrics()["ringkv:prompt_tokens_processed_total"] - before
        # " and then" is a few tokens; the last token of the document may tokenize differently
        check(ran <= 8 and u2["prompt_tokens_details"]["cached_tokens"] >= u1["prompt_tokens"] - 4,
              f"{path}: the session's follow-up ran {ran} prompt tokens ({json.dumps(u2)})")
        check(srv.stop() == 0, f"{path}: exit code")


def main():
    with tempfile.TemporaryDirectory(prefix="ringkv-moe-serve-") as tmp:
        paths = mk.make_all(tmp, ["small-qwen3moe-k", "small-qwen2moe-k"])
        for name in ("small-qwen3moe-k", "small-qwen2moe-k"):
            run_model(paths[name])
    CHECKS.finish()


if __name__ == "__main__":
    main()
