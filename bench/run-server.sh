#!/usr/bin/env bash
# The server benchmark: `ringkv serve` against llama.cpp's llama-server (built from the
# llama-cpp-python 0.3.36 source distribution) in the same run, same GGUF, 2 threads, 8 parallel
# sequences of 8192 tokens each (llama-server divides -c among its slots: -c 65536 -np 8), both on
# 127.0.0.1, started here, waited for with /health and stopped with SIGTERM. The load comes from
# bench/server_load.py (streamed chat completions, temperature 0; see its header).
#   throughput    1, 4 and 16 streaming clients, max_tokens 128: aggregate and per-stream tok/s,
#                 TTFT p50/p99
#   interference  short requests (max_tokens 16, 6 clients back to back) while a ~6K-token prompt
#                 is prefilled, twice: their TTFT and the gaps between their tokens
#   sessions      a question over a ~6K-token document, then a follow-up: TTFT of each and the
#                 prompt tokens really run (ringkv in a session; llama-server with its prompt cache)
#   soak          64 streaming clients for --soak-seconds on ringkv (and llama-server with
#                 --soak-llama): errors, requests, the server's RSS every 5 s
# Before each server's phases the machine's CPU use is sampled, and every phase reports the CPU
# taken by other processes while it ran; numbers taken beside other work are marked "machine busy".
#   bench/run-server.sh [--quick] [--soak-seconds S] [--soak-llama] [--out FILE] [--no-build]
#     --quick       every phase short (a smoke run of a few minutes; numbers not for comparison)
#     --out FILE    also write the tables to FILE (e.g. bench/results/<date>-<host>-server.md)
#     --no-build    use build/ringkv and .cache/llama.cpp/build/bin/llama-server as they are
# A full run takes about 6 minutes on a quiet machine, plus the soak (default 600 s) and its drain
# (every soak client finishes the request it has running: a minute or two).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=0 soak_s="" soak_llama=0 out="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --soak-seconds) soak_s=${2:?--soak-seconds needs a number}; shift ;;
    --soak-llama) soak_llama=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-server: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
ringkv=./build/ringkv
lserver=.cache/llama.cpp/build/bin/llama-server
load="python3 bench/server_load.py"
[ -f "$model" ] || { echo "run-server: no $model (see the README for fetching models)" >&2; exit 2; }
if [ "$build" = 1 ]; then
  ./bench/build-llama-cpp.sh >/dev/null
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"${JOBS:-$(nproc)}" --target ringkv-cli bench-membw >/dev/null
fi
for b in "$ringkv" "$lserver" ./build/bench-membw; do
  [ -x "$b" ] || { echo "run-server: $b is missing (run without --no-build)" >&2; exit 2; }
done

if [ "$quick" = 1 ]; then
  tp=(--concurrency 1,4,16 --window 5 --warmup 1)
  inter=(--long-tokens 1500 --repeats 1 --baseline 1)
  sess=(--doc-tokens 1500)
  soak_s=${soak_s:-20}
else
  tp=(--concurrency 1,4,16 --window 15 --warmup 2)
  inter=(--long-tokens 6000 --repeats 2 --baseline 3)
  sess=(--doc-tokens 6000)
  soak_s=${soak_s:-600}
fi

mkdir -p .cache/bench
stamp=$(date -u +%Y%m%d-%H%M%S)
# A copy of the binary, so every phase runs the same one even if build/ is rebuilt meanwhile.
ringkv_built=$(date -u -r "$ringkv" '+%Y-%m-%d %H:%M UTC')
cp "$ringkv" ".cache/bench/ringkv-$stamp"
ringkv=.cache/bench/ringkv-$stamp
raw=.cache/bench/server-$stamp.jsonl   # every RESULT line (RSS samples included)
: > "$raw"
report=.cache/bench/server-$stamp.md
: > "$report"
say() { echo "$@" | tee -a "$report"; }

srv_pid="" starts=0
stop_server() { # SIGTERM, then up to 60 s for a graceful stop
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 1 600); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv_pid" 2>/dev/null; then
    echo "run-server: pid $srv_pid did not stop on SIGTERM in 60 s; killing it" >&2
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
trap 'stop_server; rm -f "$ringkv"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_server() { # NAME: starts it on a free port, sets srv_pid and url, waits for /health
  local name=$1 port
  port=$(free_port)
  url=http://127.0.0.1:$port
  starts=$((starts + 1))
  log=.cache/bench/server-$stamp-$starts-$name.log
  if [ "$name" = ringkv ]; then
    "$ringkv" serve -m "$model" -t 2 --parallel 8 -c 8192 --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  else
    "$lserver" -m "$model" --threads 2 -np 8 -c 65536 --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  fi
  srv_pid=$!
  if ! $load --url "$url" health --timeout 120; then
    echo "run-server: $name did not come up; the end of $log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
}

phase() { # NAME PHASE ARGS...: runs one phase, keeps its RESULT line, shows its table
  local name=$1; shift
  $load --url "$url" --label "$name" --pid "$srv_pid" "$@" | tee -a "$raw" | grep -v '^RESULT ' >&2
}

ringkv_log_summary() { # LOG LABEL: request statuses in a ringkv log, and the first failures
  local counts
  counts=$(awk '/^ringkv: request /{for (i=1;i<=NF;i++) if ($i ~ /^status=/) n[substr($i,8)]++}
    END{for (s in n) printf "%s%s x %d", (k++ ? ", " : ""), s, n[s]}' "$1")
  say "- ringkv log, $2: statuses ${counts:-none}"
  grep '^ringkv: request ' "$1" | grep -v ' status=200 ' | head -3 | sed 's/^/    /' | tee -a "$report" || true
}

machine_load() { # LABEL: the machine's CPU use over 3 s, into the report
  say "- load before $1 ($(date -u +%H:%M:%S) UTC): $($load machine-load --seconds 3)"
}

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
membw=$(./build/bench-membw 2)
bw1=$(echo "$membw" | awk -F, '$1==1{print $2}')
bw2=$(echo "$membw" | awk -F, '$1==2{print $2}')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ", uncommitted changes" || true)

{
echo "# ringkv serve vs llama-server — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $cpu, $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
     "measured read bandwidth ${bw1} GB/s (1 thread), ${bw2} GB/s (2 threads)."
echo "ringkv $commit$dirty (build/ringkv of $ringkv_built):" \
     "\`ringkv serve -t 2 --parallel 8 -c 8192\`."
echo "llama.cpp: llama-cpp-python 0.3.36 sdist (vendor/llama.cpp), GGML_NATIVE=ON:" \
     "\`llama-server --threads 2 -np 8 -c 65536\` (8192 per slot), defaults otherwise (cache_prompt on)."
echo "Model: $(basename "$model"). Clients: bench/server_load.py on the same machine (streamed chat," \
     "temperature 0, a connection per request)$([ "$quick" = 1 ] && echo '; **--quick run: short phases, not for comparison**')."
echo
echo "Machine load (CPU busy in % of one core over 3 s, load average, busiest processes):"
echo
} | tee -a "$report"

machine_load ringkv
start_server ringkv
phase ringkv throughput "${tp[@]}"
phase ringkv interference "${inter[@]}"
phase ringkv sessions "${sess[@]}" --session
stop_server
ringkv_log_summary "$log" "throughput, interference and sessions"

machine_load llama-server
start_server llama-server
phase llama-server throughput "${tp[@]}"
phase llama-server interference "${inter[@]}"
phase llama-server sessions "${sess[@]}"
if [ "$soak_llama" = 1 ]; then
  phase llama-server soak --seconds "$soak_s"
fi
stop_server

machine_load "the ringkv soak"
start_server ringkv
phase ringkv soak --seconds "$soak_s"
stop_server
ringkv_log_summary "$log" soak

{
echo
$load report "$raw"
echo "Each row's \"other CPU %\" is the CPU time other processes took while that phase ran, in % of one"
echo "core (the server and the load generator excluded); above 10 the row is marked machine busy."
echo "TTFT: from sending the request to the first content token received. Aggregate tok/s: tokens"
echo "received inside the measurement window / the window; per-stream tok/s: (tokens - 1) / (last"
echo "token - first token) of each request, averaged. Server logs and raw results: .cache/bench/server-$stamp*."
} | tee -a "$report"
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  cp "$report" "$out"
  echo "written to $out"
fi
