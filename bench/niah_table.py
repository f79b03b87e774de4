#!/usr/bin/env python3
"""niah_table.py OUT NAME CODEC... — the Markdown tables of bench/run-niah-grids.sh.

Reads OUT/NAME-{niah,passkey}-CODEC.csv (length,depth,correct,...) and .json (the final line
of `ringkv eval niah`), and prints per grid one row per codec: its cells by length (1 = right,
0 = wrong, depths in ascending order), its score, the cells f16 gets right that it misses
(f16 is the first codec given), and its KV bytes per token. Python standard library only.
"""
import csv
import json
import os
import sys


def load(out, name, grid, codec):
    path = os.path.join(out, "%s-%s-%s" % (name, grid, codec))
    if not os.path.exists(path + ".csv"):
        return None
    cells = {}
    with open(path + ".csv") as f:
        for row in csv.DictReader(f):
            cells[(int(row["length"]), int(row["depth"]))] = int(row["correct"])
    meta = {}
    if os.path.exists(path + ".json"):
        with open(path + ".json") as f:
            text = f.read().strip()
            meta = json.loads(text) if text else {}
    return cells, meta


def main():
    out, name, codecs = sys.argv[1], sys.argv[2], sys.argv[3:]
    print("# NIAH and passkey grids by KV codec (%s)" % name)
    print()
    prompts = sorted({g[1].get("prompt", "chat") for g in (load(out, name, grid, c) for grid in ("niah", "passkey")
                                                          for c in codecs) if g})
    print("Command: `bench/run-niah-grids.sh` (greedy, 32 tokens per cell; prompt: %s, see `ringkv eval niah"
          " --prompt`)." % ", ".join(prompts or ["chat"]))
    print("Cells: 1 = the answer appears in the reply; one group per length, depths ascending.")
    for grid in ("niah", "passkey"):
        grids = [(c, load(out, name, grid, c)) for c in codecs]
        grids = [(c, g) for c, g in grids if g]
        if not grids:
            continue
        ref = grids[0][1][0]
        lengths = sorted({l for l, _ in ref})
        depths = sorted({d for _, d in ref})
        print()
        print("## %s (depths %s %%)" % ("needle in a haystack" if grid == "niah" else "passkey",
                                        "/".join(str(d) for d in depths)))
        print()
        print("| codec | " + " | ".join("%d" % l for l in lengths) + " | score | misses where %s is right | KV bytes/token |"
              % grids[0][0])
        print("|---|" + "---|" * len(lengths) + "---|---|---|")
        for codec, (cells, meta) in grids:
            row = []
            for l in lengths:
                row.append(" ".join(str(cells.get((l, d), "-")) for d in depths))
            right = sum(cells.values())
            misses = sum(1 for k, v in ref.items() if v and not cells.get(k, 0))
            print("| %s | %s | %d/%d | %d | %s |" % (codec, " | ".join(row), right, len(cells), misses,
                                                     meta.get("kv_bytes_per_token", "-")))


if __name__ == "__main__":
    main()
