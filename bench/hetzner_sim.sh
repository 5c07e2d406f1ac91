#!/usr/bin/env bash
# Benchmark: `fitter deploy --skip-bootstrap --provider hetzner` of 100 and 1,000 servers
# against `fitter-sim --api hetzner` with a 30 s boot (initializing -> starting -> running)
# and Hetzner's real budget (a bucket of 3,600 requests refilled at one a second). A
# benchmark, not a test: it reports, it never fails on a slow result. Targets (issue 14):
# total time within 10% of the lower bound, under 2 API requests per server on average,
# peak RSS under 100 MB.
#
#   bench/hetzner_sim.sh                 # 3 runs per case
#   RUNS=1 CASES="100:30000" bench/hetzner_sim.sh
#
# A case is SERVERS:DELAY_MS. The lower bound: the API has no batch create, so N servers are
# N creates, after K = 7 calls that must come first (the key looked up and uploaded, the
# placement group, the network and two firewalls). Request number N + K cannot go before the
# bucket lets it: max(0, N + K - 3,600) s after the start. The last server then takes the
# delay. So
#     bound = max(0, N + K - 3600) + delay
# which is the delay alone up to 3,593 servers. Time is the whole command, exec to exit.
#
# Writes the table into docs/benchmarks.md under its own heading (only that section).
set -euo pipefail

RUNS=${RUNS:-3}
CASES=${CASES:-"100:30000 1000:30000"}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## Hetzner: deploy against fitter-sim"

setup_sim_bench

rows=()
verdicts=()
for case in $CASES; do
    n=${case%%:*}
    delay_ms=${case##*:}
    plan="$tmp/bench-$n.yaml"
    python3 bench/gen_plan.py "$n" >"$plan"
    bound=$(awk -v n="$n" -v d="$delay_ms" 'BEGIN { w = n + 7 - 3600; if (w < 0) w = 0; printf "%.1f", w + d / 1000 }')
    new_case
    for ((run = 1; run <= RUNS; run++)); do
        port=$(free_port)
        start_sim "$sim" "$tmp/sim.out" "$port" --api hetzner --active-delay-ms "$delay_ms"
        state="$tmp/bench-$n.state.json"
        rm -f "$state"*
        t0=$EPOCHREALTIME
        if ! HCLOUD_TOKEN=bench HCLOUD_ENDPOINT="http://127.0.0.1:$port/v1" HOME="$tmp" \
            /usr/bin/time -f '%M' -o "$tmp/time.out" \
            "$fitter" deploy --yes --skip-bootstrap --provider hetzner --state "$state" "$plan" \
            >"$tmp/deploy.out" 2>&1; then
            echo "deploy of $n servers failed:" >&2
            tail -20 "$tmp/deploy.out" >&2
            exit 1
        fi
        t1=$EPOCHREALTIME
        seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        read -r total limited running < <(curl -sf "http://127.0.0.1:$port/_sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
running = sum(1 for d in s["hetzner"]["servers"] if d["status"] == "running")
print(s["counts"]["total"], s["counts"]["rate_limited"], running)')
        if [[ $running != "$n" ]]; then
            echo "expected $n running servers, the simulator has $running" >&2
            exit 1
        fi
        stop_sim
        echo "N=$n delay ${delay_ms} ms run $run: ${seconds} s, $total requests ($limited answered 429), $(cat "$tmp/time.out") KB peak" >&2
        record_run "$seconds" "$total" "$limited"
    done
    summarise "$n" "$bound"
    rows+=("$(printf '| %s | %s | %.1f | %.2f | %.2f | %s | %s | %s | %s | %s |' \
        "$n" "$((delay_ms / 1000))" "$bound" "$t" "$worst" "$ratio" "$req" "$per" "$lim" "$rss_mb")")
    met=$(awk -v t="$t" -v b="$bound" -v p="$per" -v m="$rss_mb" \
        'BEGIN { print (t <= b * 1.1 && p < 2 && m < 100) ? "met" : "NOT met" }')
    verdicts+=("- $n servers, ${delay_ms} ms boot: **$met** (median ${t} s against a bound of ${bound} s, +${over}%; $per requests per server; ${rss_mb} MB).")
done

body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS CASES=\"$CASES\" bench/hetzner_sim.sh\` (a case is servers:boot delay in ms):"
    echo "\`fitter deploy --yes --skip-bootstrap --provider hetzner\` of \`python3 bench/gen_plan.py N\` (3 masters"
    echo "in a spread placement group and N - 3 agents, one network, a firewall per blueprint) against"
    echo "\`fitter-sim --api hetzner --active-delay-ms DELAY\` (Hetzner's budget: 3,600 requests, one more a second),"
    echo "a fresh simulator per run, release build, default \`--parallelism 10\`."
    echo
    echo "Machine: $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); $(rustc --version 2>/dev/null || echo rustc); commit $(revision)."
    echo
    echo "Lower bound = max(0, N + 7 - 3,600) s + delay: one create per server (the API has no batch form) after the"
    echo "key, placement group, network and firewalls, none before the bucket lets it, and the last server running"
    echo "only after the delay. Up to 3,593 servers that is the delay alone. Time is the whole command, exec to exit,"
    echo "median of $RUNS runs (worst shown too); requests are those the simulator counted, 429s included (median);"
    echo "peak RSS is \`/usr/bin/time %M\`, the largest of the runs."
    echo
    echo "| servers | boot (s) | lower bound (s) | median (s) | worst (s) | median / bound | requests | per server | 429s | peak RSS (MB) |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Targets (within 10% of the bound, under 2 requests per server, under 100 MB):"
    printf '%s\n' "${verdicts[@]}"
} >"$body"

cat "$body"
write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
