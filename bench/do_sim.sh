#!/usr/bin/env bash
# Benchmark: `fitter deploy --skip-bootstrap` of 100 and 1,000 droplets against fitter-sim
# with a 30 s new -> active delay and DigitalOcean's real rate limit (250 requests in any
# 60 s, 5,000 in any hour). A benchmark, not a test: it reports, it never fails on a slow
# result. Targets (issue #3): total time within 10% of the lower bound, at most 1.5 API
# requests per droplet, peak RSS under 100 MB.
#
#   bench/do_sim.sh                      # 3 runs per case
#   RUNS=1 CASES="100:30000" bench/do_sim.sh
#
# A case is DROPLETS:DELAY_MS. The default cases: 100 and 1,000 droplets with a 30 s boot
# (the delay sets the bound), 1,000 with a 5 s boot (fitter's fixed costs show), and 3,000
# with a 30 s boot (300 creates: the 250-a-minute limit, through fitter's own limiter, sets
# the bound).
#
# The lower bound: no client can see its last droplet active before it has sent the creates
# and the delay has passed. With C = ceil(N / 10) create calls (batches of ten) and 2 calls
# that must come first (the SSH key and the VPC), the last create cannot go before the
# rolling window lets request number C + 2 through: 60 s x floor((C + 1) / 250) s. So
#     bound = 60 x floor((ceil(N / 10) + 1) / 250) + delay
# which is the delay alone up to 2,480 droplets. Measured time is the whole command, from
# exec to exit: plan, key, tags, firewalls, VPC, creates, waiting, state writes, the final
# `information` report. Requests are what the simulator counted (429 answers included).
#
# Writes the table into docs/benchmarks.md under its own heading (only that section).
set -euo pipefail

RUNS=${RUNS:-3}
CASES=${CASES:-"100:30000 1000:30000 1000:5000 3000:30000"}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## DigitalOcean: deploy against fitter-sim"

setup_sim_bench



rows=()
verdicts=()
for case in $CASES; do
    n=${case%%:*}
    delay_ms=${case##*:}
    plan="$tmp/bench-$n.yaml"
    python3 bench/gen_plan.py "$n" >"$plan"
    creates=$(((n + 9) / 10))
    bound=$(awk -v c="$creates" -v d="$delay_ms" 'BEGIN { printf "%.1f", 60 * int((c + 1) / 250) + d / 1000 }')
    limited_by=$(awk -v c="$creates" 'BEGIN { print (int((c + 1) / 250) > 0) ? "rate limit" : "boot delay" }')
    new_case
    for ((run = 1; run <= RUNS; run++)); do
        port=$(free_port)
        start_sim "$sim" "$tmp/sim.out" "$port" --active-delay-ms "$delay_ms" \
            --rate-limit-per-minute 250 --rate-limit-per-hour 5000
        state="$tmp/bench-$n.state.json"
        rm -f "$state"*
        t0=$EPOCHREALTIME
        if ! DIGITALOCEAN_TOKEN=bench DIGITALOCEAN_API_URL="http://127.0.0.1:$port" HOME="$tmp" \
            /usr/bin/time -f '%M' -o "$tmp/time.out" \
            "$fitter" deploy --yes --skip-bootstrap --state "$state" "$plan" >"$tmp/deploy.out" 2>&1; then
            echo "deploy of $n droplets failed:" >&2
            tail -20 "$tmp/deploy.out" >&2
            exit 1
        fi
        t1=$EPOCHREALTIME
        seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        read -r total limited active < <(curl -sf "http://127.0.0.1:$port/_sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
active = sum(1 for d in s["droplets"] if d["status"] == "active")
print(s["counts"]["total"], s["counts"]["rate_limited"], active)')
        if [[ $active != "$n" ]]; then
            echo "expected $n active droplets, the simulator has $active" >&2
            exit 1
        fi
        stop_sim
        echo "N=$n delay ${delay_ms} ms run $run: ${seconds} s, $total requests ($limited answered 429), $(cat "$tmp/time.out") KB peak" >&2
        record_run "$seconds" "$total" "$limited"
    done
    summarise "$n" "$bound"
    rows+=("$(printf '| %s | %s | %s | %.1f | %.2f | %.2f | %s | %s | %s | %s | %s |' \
        "$n" "$((delay_ms / 1000))" "$limited_by" "$bound" "$t" "$worst" "$ratio" "$req" "$per" "$lim" "$rss_mb")")
    met=$(awk -v t="$t" -v b="$bound" -v p="$per" -v m="$rss_mb" \
        'BEGIN { print (t <= b * 1.1 && p <= 1.5 && m < 100) ? "met" : "NOT met" }')
    verdicts+=("- $n droplets, ${delay_ms} ms boot: **$met** (median ${t} s against a bound of ${bound} s, +${over}%; $per requests per droplet; ${rss_mb} MB).")
done

rev=$(revision)
body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS CASES=\"$CASES\" bench/do_sim.sh\` (a case is droplets:boot delay in ms): \`fitter deploy --yes --skip-bootstrap\` of"
    echo "\`python3 bench/gen_plan.py N\` (3 masters and N - 3 agents, one VPC, a firewall per blueprint) against"
    echo "\`fitter-sim --active-delay-ms DELAY --rate-limit-per-minute 250 --rate-limit-per-hour 5000\`, a fresh simulator per run,"
    echo "release build, default \`--parallelism 10\`."
    echo
    echo "Machine: $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); $(rustc --version 2>/dev/null || echo rustc); commit $rev."
    echo
    echo "Lower bound = 60 s x floor((ceil(N / 10) + 1) / 250) + delay: the last of the ceil(N / 10) batch creates"
    echo "(plus the key and the VPC before them) cannot go before the rolling 250-per-minute window lets it, and its"
    echo "droplets are not active until the delay has passed. Up to 2,480 droplets that is the delay alone."
    echo "Time is the whole command, exec to exit, median of $RUNS runs (worst shown too); requests are those the"
    echo "simulator counted, 429s included (median); peak RSS is \`/usr/bin/time %M\`, the largest of the runs."
    echo
    echo "| droplets | boot (s) | bound set by | lower bound (s) | median (s) | worst (s) | median / bound | requests | per droplet | 429s | peak RSS (MB) |"
    echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Where the time over the bound goes (traced once with FITTER_LOG=debug, 1,000 droplets): the creates are"
    echo "all sent within about 0.3 s of the first request; the droplets then take the delay; the poll that sees the"
    echo "last ones active comes up to a second later (quiet polls back off to 1 s per listing page, 0.5 s while"
    echo "droplets keep turning active); then the state is written and \`information\` printed."
    echo
    echo "Targets (within 10% of the bound, at most 1.5 requests per droplet, under 100 MB):"
    printf '%s\n' "${verdicts[@]}"
} >"$body"

cat "$body"

write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
