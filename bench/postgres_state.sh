#!/usr/bin/env bash
# Benchmark: the state in PostgreSQL against the state file, in the same run: `fitter deploy
# --skip-bootstrap` of 1,000 droplets against fitter-sim (30 s boot, DigitalOcean's rate
# limit), once with `--backend file` and once with the PostgreSQL of scripts/local-postgres.sh
# (a fresh database per run), alternating, RUNS times each. A benchmark, not a test: it
# reports, it never fails on a slow result. Target (issue 15): with PostgreSQL still within
# 10% of the bound; and the number of state writes per droplet, for both.
#
#   bench/postgres_state.sh              # 3 runs per backend
#   RUNS=1 N=100 bench/postgres_state.sh
#
# The bound is bench/do_sim.sh's: 60 s x floor((ceil(N / 10) + 1) / 250) + delay (the
# delay alone up to 2,480 droplets). State writes are the final serial: it grows by one per
# write and starts at 0 for a new deployment.
#
# Writes the table into docs/benchmarks.md under its own heading (only that section).
set -euo pipefail

RUNS=${RUNS:-3}
N=${N:-1000}
DELAY_MS=${DELAY_MS:-30000}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## Team state: PostgreSQL against the file"

url=$(scripts/local-postgres.sh | tail -1)
export PGPASSWORD
PGPASSWORD=$(cat /etc/fitter/postgres-password)
setup_sim_bench

plan="$tmp/bench-$N.yaml"
python3 bench/gen_plan.py "$N" >"$plan"
creates=$(((N + 9) / 10))
bound=$(awk -v c="$creates" -v d="$DELAY_MS" 'BEGIN { printf "%.1f", 60 * int((c + 1) / 250) + d / 1000 }')

for backend in file postgres; do
    : >"$tmp/$backend.times"
    : >"$tmp/$backend.writes"
    : >"$tmp/$backend.rss"
done

for ((run = 1; run <= RUNS; run++)); do
    for backend in file postgres; do
        port=$(free_port)
        start_sim "$sim" "$tmp/sim.out" "$port" --active-delay-ms "$DELAY_MS" \
            --rate-limit-per-minute 250 --rate-limit-per-hour 5000
        state="$tmp/bench-$N.state.json"
        rm -f "$state"*
        if [[ $backend == file ]]; then
            args=(--backend file --state "$state")
        else
            db="fitter_bench_$(date +%s)_$run"
            psql -X -q "$url" -c "CREATE DATABASE $db" >/dev/null
            args=(--backend "${url%/*}/$db")
        fi
        t0=$EPOCHREALTIME
        if ! DIGITALOCEAN_TOKEN=bench DIGITALOCEAN_API_URL="http://127.0.0.1:$port" HOME="$tmp" \
            FITTER_STATE_KEY="benchmark state key, sealed like a team's" \
            /usr/bin/time -f '%M' -o "$tmp/time.out" \
            "$fitter" deploy --yes --skip-bootstrap "${args[@]}" "$plan" >"$tmp/deploy.out" 2>&1; then
            echo "deploy of $N droplets ($backend) failed:" >&2
            grep -E "error|failed" "$tmp/deploy.out" | head -5 >&2
            if [[ $backend == postgres ]]; then
                psql -X -q "$url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
            fi
            exit 1
        fi
        t1=$EPOCHREALTIME
        stop_sim
        seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        if [[ $backend == file ]]; then
            writes=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["serial"])' "$state")
        else
            writes=$(psql -X -At "${url%/*}/$db" -c "SELECT serial FROM fitter_state")
            psql -X -q "$url" -c "DROP DATABASE $db" >/dev/null
        fi
        echo "$backend run $run: ${seconds} s, $writes state writes, $(cat "$tmp/time.out") KB peak" >&2
        echo "$seconds" >>"$tmp/$backend.times"
        echo "$writes" >>"$tmp/$backend.writes"
        cat "$tmp/time.out" >>"$tmp/$backend.rss"
    done
done

rows=()
declare -A median_of
for backend in file postgres; do
    t=$(median <"$tmp/$backend.times")
    median_of[$backend]=$t
    worst=$(sort -g "$tmp/$backend.times" | tail -1)
    writes=$(median <"$tmp/$backend.writes")
    rss_mb=$(sort -n "$tmp/$backend.rss" | tail -1 | awk '{ printf "%.1f", $1 / 1024 }')
    rows+=("$(awk -v b="$backend" -v t="$t" -v w="$worst" -v bound="$bound" -v wr="$writes" -v n="$N" -v m="$rss_mb" \
        'BEGIN { printf "| %s | %.1f | %.2f | %.2f | %.3f | %d | %.3f | %s |", b, bound, t, w, t / bound, wr, wr / n, m }')")
done
pg=${median_of[postgres]}
verdict=$(awk -v t="$pg" -v b="$bound" 'BEGIN { print (t <= b * 1.1) ? "met" : "NOT met" }')
versus=$(awk -v p="$pg" -v f="${median_of[file]}" 'BEGIN { printf "%.3f", p / f }')

rev=$(revision)
body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS N=$N bench/postgres_state.sh\`: \`fitter deploy --yes --skip-bootstrap\` of"
    echo "\`python3 bench/gen_plan.py $N\` against \`fitter-sim --active-delay-ms $DELAY_MS --rate-limit-per-minute 250"
    echo "--rate-limit-per-hour 5000\` (a fresh simulator per run), the state in a file (\`--backend file\`) or in the"
    echo "local PostgreSQL of scripts/local-postgres.sh (a fresh database per run, over TCP on loopback), the two"
    echo "alternating, release build; \`FITTER_STATE_KEY\` set for both (each droplet's private host key is sealed"
    echo "while it is created)."
    echo
    echo "Machine: $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); $(rustc --version 2>/dev/null || echo rustc); $(psql --version); commit $rev."
    echo
    echo "Bound as for bench/do_sim.sh (the boot delay for $N droplets). Time is the whole command, median of $RUNS"
    echo "runs; state writes are the final serial (one per write: the apply stage's group commit batches the"
    echo "changes that arrive while a write is under way, for both stores alike)."
    echo
    echo "| backend | bound (s) | median (s) | worst (s) | median / bound | state writes | per droplet | peak RSS (MB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "Target (PostgreSQL within 10% of the bound): **$verdict**; PostgreSQL / file, same run: $versus."
} >"$body"

cat "$body"
write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
