"""with_moe_models.py — runs a C test on tiny MoE GGUFs written for the occasion.

    python3 with_moe_models.py TEST_BINARY MODEL_NAME...

Writes the named models of make_moe_models.py into a temporary directory, then runs
TEST_BINARY MODEL_NAME.gguf... with RINGKV_MODELS pointing there, and exits with its status.
Skipped (77) without numpy + the gguf package.
"""
import os
import subprocess
import sys
import tempfile

SKIP = 77

try:
    import make_moe_models as mk
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(SKIP)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, names = argv[1], argv[2:]
    with tempfile.TemporaryDirectory(prefix="ringkv-moe-") as tmp:
        mk.make_all(tmp, names)
        env = dict(os.environ, RINGKV_MODELS=tmp)
        return subprocess.run([binary] + [n + ".gguf" for n in names], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
