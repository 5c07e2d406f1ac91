# Helpers shared by the benchmark scripts: `source "$root/bench/lib.sh"`.

# median of the numbers on stdin ("nan" when there are none)
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# write_section DOC BODY_FILE HEADING: puts the markdown in BODY_FILE (which starts with
# HEADING) into DOC in place of the section under HEADING, or at the end when DOC has none.
# Only that section changes; DOC is created when missing.
write_section() {
    mkdir -p "$(dirname "$1")"
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
doc, body_path, heading = sys.argv[1:4]
body = open(body_path).read().rstrip("\n") + "\n"
if os.path.exists(doc):
    lines = open(doc).read().splitlines(keepends=True)
else:
    lines = ["# Benchmarks\n", "\n",
             "These numbers come from the scripts in `bench/`, run by hand on the machine named\n",
             "in each section; they never come from timed tests.\n"]
start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == heading), None)
if start is None:
    text = "".join(lines).rstrip("\n") + "\n\n" + body
else:
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    text = "".join(lines[:start]) + body + ("\n" + tail if tail else "")
open(doc, "w").write(text)
PY
}

# free_port: a free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_sim SIM_BINARY LOG PORT ARGS...: starts fitter-sim on PORT with ARGS, sets sim_pid,
# returns once it listens.
start_sim() {
    local binary=$1 log=$2 port=$3
    shift 3
    "$binary" --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
    sim_pid=$!
    for _ in $(seq 100); do
        grep -q listening "$log" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "fitter-sim did not start: $(cat "$log")" >&2
    exit 1
}

# stop_sim: stops the simulator start_sim started.
stop_sim() {
    if [[ -n ${sim_pid:-} ]]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    sim_pid=""
}

# need_time: installs GNU time (for peak RSS) when missing.
need_time() {
    if [[ ! -x /usr/bin/time ]]; then
        local sudo=()
        if ((EUID != 0)); then sudo=(sudo); fi
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq time >&2
    fi
}

# revision: the commit measured, said to be dirty when the code has uncommitted changes.
revision() {
    local rev
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git status --porcelain -- src providers sim Cargo.toml Cargo.lock 2>/dev/null) ]]; then
        rev="$rev (with uncommitted changes)"
    fi
    echo "$rev"
}

# setup_sim_bench: GNU time, a release build of fitter and fitter-sim ($fitter, $sim), a
# scratch directory ($tmp) and a trap that stops the simulator and removes it.
setup_sim_bench() {
    need_time
    echo "building: cargo build --release -p fitter -p fitter-sim" >&2
    cargo build --release --quiet -p fitter -p fitter-sim
    fitter="$root/target/release/fitter"
    sim="$root/target/release/fitter-sim"
    tmp=$(mktemp -d)
    sim_pid=""
    trap 'stop_sim; rm -rf "$tmp"' EXIT
}

# new_case: empties the per-run records of a case.
new_case() {
    : >"$tmp/times"
    : >"$tmp/rss"
    : >"$tmp/requests"
    : >"$tmp/limited"
}

# record_run SECONDS REQUESTS LIMITED: one run's time, requests, 429s and peak RSS (from
# $tmp/time.out, written by /usr/bin/time -f %M).
record_run() {
    echo "$1" >>"$tmp/times"
    echo "$2" >>"$tmp/requests"
    echo "$3" >>"$tmp/limited"
    cat "$tmp/time.out" >>"$tmp/rss"
}

# summarise N BOUND: sets t (median time), worst, req (median requests), lim (most 429s),
# rss_mb (largest peak), over (% over the bound), per (requests per machine), ratio.
summarise() {
    local n=$1 bound=$2
    t=$(median <"$tmp/times")
    worst=$(sort -g "$tmp/times" | tail -1)
    req=$(median <"$tmp/requests")
    lim=$(sort -g "$tmp/limited" | tail -1)
    rss_mb=$(sort -n "$tmp/rss" | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')
    over=$(awk -v t="$t" -v b="$bound" 'BEGIN { printf "%.1f", (t / b - 1) * 100 }')
    per=$(awk -v r="$req" -v n="$n" 'BEGIN { printf "%.3f", r / n }')
    ratio=$(awk -v t="$t" -v b="$bound" 'BEGIN { printf "%.3f", t / b }')
}
