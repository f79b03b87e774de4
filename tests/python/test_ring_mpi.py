"""test_ring_mpi.py — `mpirun -np N ringkv run ... --ring` on this machine (issue: ring attention
over MPI): the sequence's KV pages spread over N processes give the same text as one process.

    python3 test_ring_mpi.py MPIEXEC [MPIEXEC_FLAGS...]

Checks, on SmolLM2 with a greedy run over a 1100-token prompt (five KV pages) and 40 generated
tokens:
  - N = 2, 3 and 4 over shared memory, 3 with a micro-batch of one page (prefill in rounds), and
    N = 2 forced through TCP on loopback: rank 0 prints exactly the text of one process, the
    other ranks print nothing on stdout;
  - a context beyond --kv-hot + --kv-warm: one process refuses it without a disk tier and runs it
    with one; 4 ranks run it in the same budgets without a disk and print the same text;
  - `eval ppl --ring` on 3 ranks prints one process's perplexity; `eval logits --ring` is refused;
  - --verbose gives one line per rank, and the tokens the ranks hold add up to the sequence;
  - ranks that loaded different model files (MPMD launch) all stop with an error naming the
    rank, in bounded time (no hang);
  - a rank killed (SIGKILL) during a prefill ends the job, non-zero, within 60 s, and the
    output says a process died of signal 9;
  - a prompt share beyond the micro-batch (-ub) fails with a clear message (every rank fails; the
    first to exit makes mpirun stop the others).
Skipped (77) when the default model is not cached.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from build_kind import slow_build

SKIP = 77
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def run(cmd, timeout=240):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def ranks_of(mpirun_pid, binary):
    """PIDs of the ringkv processes below mpirun (its children, or their children)."""
    found, frontier = [], [mpirun_pid]
    while frontier:
        parent = frontier.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                is_rank = os.path.samefile(f"/proc/{k}/exe", binary)
            except OSError:
                continue
            if is_rank:
                found.append(k)
            else:
                frontier.append(k)
    return found


def kill_rank_mid_prefill(mpirun, flags, binary, common):
    """A rank killed during a prefill (rounds of one page keep the ranks exchanging): the job
    ends, non-zero, in bounded time, and says which process died."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p = subprocess.Popen([mpirun, "-np", "2"] + flags + [binary] + common + ["--ring", "-ub", "256"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    victims = []
    while time.time() < deadline and p.poll() is None and len(victims) < 2:
        time.sleep(0.2)
        victims = ranks_of(p.pid, binary)
    time.sleep(1.0)  # into the prefill: the model is loaded and the ranks exchange blocks
    check(len(victims) == 2 and p.poll() is None, f"rank kill: found ranks {victims}, mpirun {p.poll()}")
    if len(victims) == 2:
        os.kill(max(victims), signal.SIGKILL)
    try:
        _, err = p.communicate(timeout=60)
        err = err.decode(errors="replace")
        check(p.returncode != 0 and ("signal 9" in err or "Killed" in err or "exited on signal" in err),
              f"rank kill: exit {p.returncode}: {err[-600:]}")
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        check(False, "rank kill: the job did not end within 60 s of a rank's death")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    mpirun, flags = argv[1], argv[2:]
    binary = os.environ.get("RINGKV_BIN", os.path.join(ROOT, "build", "ringkv"))
    models = os.environ.get("RINGKV_MODELS", os.path.join(ROOT, "models"))
    model = os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf")
    other = os.path.join(models, "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(model):
        print(f"skip: {model} is not cached")
        return SKIP
    essay = os.path.join(os.environ.get("RINGKV_TESTDATA", os.path.join(ROOT, "..", "shared", "testdata")),
                         "haystack", "pg-essays", "avg.txt")
    slow = slow_build(binary)  # sanitizers: a 300-token prompt (two pages), fewer cases
    with tempfile.TemporaryDirectory(prefix="ringkv-ring-") as tmp:
        prompt = os.path.join(tmp, "prompt.txt")
        with open(essay, encoding="utf-8") as f, open(prompt, "w", encoding="utf-8") as out:
            out.write(f.read()[:1200 if slow else 4600])  # about 300 or 1100 tokens
        common = ["run", "-m", model, "-f", prompt, "-n", "8" if slow else "40", "--temp", "0", "-t", "1", "-c", "2048"]
        rc, alone, err = run([binary] + common)
        check(rc == 0 and len(alone) > 20, f"one process: exit {rc}: {err[-400:]}")
        cases = [("2 ranks", ["2"], []), ("3 ranks", ["3"], []), ("4 ranks", ["4"], []),
                 ("3 ranks in rounds of one page", ["3"], ["-ub", "256"]),
                 ("2 ranks over TCP", ["2", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"], [])]
        if slow:
            cases = [cases[0], cases[3], cases[4]]
        for name, extra, opts in cases:
            rc, out, err = run([mpirun, "-np"] + extra[:1] + flags + extra[1:] + [binary] + common + opts +
                               ["--ring", "--verbose"])
            check(rc == 0, f"{name}: exit {rc}: {err[-600:]}")
            # (mpirun gives rank 0 a terminal, so `run` ends the text with a newline there)
            check(out.rstrip("\n") == alone.rstrip("\n"), f"{name}: the text differs from one process:\n{out!r}\n{alone!r}")
            held = [int(m) for m in re.findall(r"ring rank \d+/\d+: KV [\d.]+ MiB, (\d+) tokens held", err)]
            n = int(extra[0])
            total = re.search(r"prompt: (\d+) tokens", err)
            check(len(held) == n, f"{name}: {len(held)} rank lines in --verbose, {n} expected:\n{err[-600:]}")
            if total and held:
                # the last sampled token is not evaluated: prompt + n - 1 tokens are in the cache
                n_gen = int(common[common.index("-n") + 1])
                check(sum(held) == int(total.group(1)) + n_gen - 1, f"{name}: ranks hold {held}, prompt "
                                                                     f"{total.group(1)}")
        # a context beyond one process's KV budgets: refused without a disk tier, runs with one; four
        # ranks hold it in the same budgets without a disk, and print the same text
        budgets = ["--kv-hot", "30M", "--kv-warm", "10M"]
        rc, _, err = run([binary] + common + budgets)
        check(rc != 0 and "add a disk tier" in err, f"budgets without a disk: exit {rc}: {err[-300:]}")
        rc, with_disk, err = run([binary] + common + budgets + ["--kv-disk", tmp])
        check(rc == 0 and with_disk.rstrip("\n") == alone.rstrip("\n"), f"one process with a disk tier: exit {rc}: "
                                                                         f"{err[-300:]}")
        rc, out, err = run([mpirun, "-np", "4"] + flags + [binary] + common + budgets + ["--ring"])
        check(rc == 0 and out.rstrip("\n") == with_disk.rstrip("\n"),
              f"4 ranks in one process's budgets: exit {rc}: {out!r}: {err[-400:]}")
        if not slow:  # perplexity over 2048 tokens takes minutes under sanitizers
            # perplexity: each rank scores the positions it evaluated; the sums add up to one process's
            ppl = ["eval", "ppl", "-m", model, "-f", essay, "-c", "1024", "--chunks", "2", "-t", "1"]
            rc, alone, err = run([binary] + ppl)
            check(rc == 0 and alone.startswith("ppl = "), f"eval ppl alone: exit {rc}: {err[-400:]}")
            rc, out, err = run([mpirun, "-np", "3"] + flags + [binary] + ppl + ["--ring"])
            check(rc == 0 and out.strip() == alone.strip(), f"eval ppl, 3 ranks: exit {rc}: {out!r} vs {alone!r}: "
                                                            f"{err[-400:]}")
        rc, out, err = run([binary, "eval", "logits", "-m", model, "--tokens", "1,2", "--out", os.devnull, "--ring"])
        check(rc == 2 and "--ring is not supported" in err, f"eval logits --ring: exit {rc}: {err[-300:]}")
        if os.path.exists(other):  # every rank must load the same model
            cmd = [mpirun, "-np", "1"] + flags + [binary] + common + ["--ring", ":", "-np", "1"] + flags + \
                  [binary] + common[:2] + [other] + common[3:] + ["--ring"]
            rc, out, err = run(cmd, timeout=120)
            check(rc != 0 and "rank 1 loaded another model" in err, f"mixed models: exit {rc}: {err[-600:]}")
        kill_rank_mid_prefill(mpirun, flags, binary, common)
        rc, out, err = run([mpirun, "-np", "2"] + flags + [binary] + common + ["--ring", "-ub", "64"])
        # every rank fails alike; mpirun may stop the others before they print, so one message is enough
        check(rc != 0 and "raise -ub" in err, f"-ub too small: exit {rc}: {err[-600:]}")
    if failures:
        print(f"test_ring_mpi: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("test_ring_mpi: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
