"""test_readme_curl.py — runs the README's `ringkv serve` curl example (the ```sh block after the
`readme-curl` marker) exactly as written, except for the binary's path and the port, in a
temporary directory; checks that every command worked and printed what the README says.
Skipped (77) without curl or the default model.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

from server_util import SKIP, model_path


def main():
    if not shutil.which("curl"):
        print("skip: curl is not installed")
        sys.exit(SKIP)
    model_path()  # the example uses the default model
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- readme-curl:.*?-->\s*```sh\n(.*?)```", readme, re.S)
    if not m:
        print("FAIL: no readme-curl block in README.md")
        sys.exit(1)
    with socket.socket() as s:  # a free port instead of 8080
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = m.group(1).replace("./build/ringkv", os.environ.get("RINGKV_BIN", "build/ringkv"))
    script = script.replace("8080", str(port))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp, capture_output=True,
                                 text=True, timeout=300)
        except subprocess.TimeoutExpired as e:
            print("FAIL: the README example did not finish in 300 s\n", e.stdout, e.stderr)
            sys.exit(1)
        failures = []
        if out.returncode != 0:
            failures.append(f"exit code {out.returncode}")
        for want in ('"status":"ok"', "data: [DONE]", '"object":"chat.completion"', '"object":"session"',
                     '"object":"session.deleted"', '"key_shredded":true', "ringkv:prompt_tokens_total",
                     "ringkv:generation_tokens_total"):
            if want not in out.stdout:
                failures.append(f"the output lacks {want}")
        if "ringkv: stopped" not in out.stderr:
            failures.append("the server did not stop cleanly")
        if failures:
            print("FAIL:", "; ".join(failures))
            print("stdout:\n" + out.stdout[-3000:] + "\nstderr:\n" + out.stderr[-3000:])
            sys.exit(1)
    print("test_readme_curl: ok")


if __name__ == "__main__":
    main()
