#!/usr/bin/env bash
# Benchmark of the health checks (issue 12) on the 12 LXD nodes of
# bench/bootstrap/mesos-12.yaml (3 masters, 9 agents), before and after them, in one run:
#
#   - time from `fitter deploy` start to a serving ZooKeeper ensemble (one leader, two
#     followers by `srvr`, asked through `lxc exec` every 0.2 s while the deploy runs and
#     after it returns), and when deploy itself returns;
#   - the time of a no-change re-run (`fitter deploy --yes` on the deployed nodes), whose
#     health checks are the cost added to every run: for the after build, the same re-run
#     with `--health-timeout 0` (no check at all) too, in alternating order, on the same
#     nodes. Target: the checks add under 20% to the re-run. (The before build runs no
#     Docker engine, so its re-run is not the baseline for the checks' cost.)
#
#   bench/health.sh                   # BEFORE=098a3a3, 2 runs each
#   RUNS=3 BEFORE=<commit> bench/health.sh
#
# BEFORE is built from `git archive` into target/bench-rev/ (its own target dir); the
# working tree is the after. A benchmark, not a test: it fails only when a deploy fails or a
# ZooKeeper never serves. Needs root and the local cloud (scripts/local-cloud.sh). Refuses
# to start while anything of deployment `bench12` exists; disposes of what it made.
#
# Writes its section into docs/benchmarks.md ("## Health checks: serving ensemble and re-run
# cost (12 LXD nodes)").
set -euo pipefail

RUNS=${RUNS:-2}
BEFORE=${BEFORE:-098a3a3}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## Health checks: serving ensemble and re-run cost (12 LXD nodes)"

if lxc list --format csv -c n | grep -q '^bench12-'; then
    echo "deployment bench12 exists already; dispose of it first" >&2
    exit 1
fi
scripts/local-cloud.sh >/dev/null
echo "building the working tree and $BEFORE (release)" >&2
cargo build --release --quiet -p fitter
after_bin="$root/target/release/fitter"
commit=$(git rev-parse --verify "$BEFORE^{commit}")
tree="$root/target/bench-rev/src-${commit:0:12}"
if [[ ! -d $tree ]]; then
    mkdir -p "$tree"
    git archive "$commit" | tar -x -C "$tree"
fi
(cd "$tree" && CARGO_TARGET_DIR="$root/target/bench-rev/target" cargo build --release --quiet -p fitter)
before_bin="$root/target/bench-rev/target/release/fitter"

tmp=$(mktemp -d)
cleanup() {
    if lxc list --format csv -c n | grep -q '^bench12-'; then
        (cd "$tmp" && HOME="$tmp" "$after_bin" dispose --yes --no-progress plan.yaml >/dev/null 2>&1) || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cp bench/bootstrap/mesos-12.yaml "$tmp/plan.yaml"

now() { date +%s.%N; }
mode() { lxc exec "bench12-$1" -- sh -c 'echo srvr | nc -N -w 2 127.0.0.1 2181 2>/dev/null' | sed -n 's/^Mode: //p'; }
serving() {
    local modes
    modes=$(for m in master1 master2 master3; do mode "$m"; done | sort | tr '\n' ' ')
    [[ $modes == "follower follower leader " ]]
}

for which in before after; do
    : >"$tmp/$which.serving"
    : >"$tmp/$which.returned"
    : >"$tmp/$which.rerun"
done
: >"$tmp/after.unchecked"

# A no-change re-run, timed into $2; $1 the binary, the rest its extra arguments. A re-run
# that changed something is not a no-change re-run: it is said, not timed, and run again
# (twice at most). The before build re-uploaded every file of one agent now and then: its
# probe read nothing from a shell that did not start, and took that for "every file
# differs" (the after build tries such a probe again, then fails the node).
discarded=0
rerun() {
    local bin=$1 into=$2 r0 r1 try
    shift 2
    for try in 1 2 3; do
        r0=$(now)
        (cd "$tmp" && HOME="$tmp" "$bin" deploy --yes --no-progress "$@" plan.yaml >"$tmp/rerun.out" 2>&1)
        r1=$(now)
        if grep -q "Bootstrap: 0 files uploaded, 0 services restarted, 0 nodes failed." "$tmp/rerun.out"; then
            awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f\n", b - a }' >>"$into"
            return
        fi
        discarded=$((discarded + 1))
        echo "re-run ($bin $*) changed something (try $try):" >&2
        grep -E "^bootstrap.*(uploaded|restarted|failed)|^Bootstrap|rror" "$tmp/rerun.out" >&2
    done
    exit 1
}

for ((run = 1; run <= RUNS; run++)); do
    for which in before after; do
        bin=$before_bin
        [[ $which == after ]] && bin=$after_bin
        rm -f "$tmp"/plan.state.json*
        t0=$(now)
        (cd "$tmp" && HOME="$tmp" "$bin" deploy --yes --no-progress plan.yaml >"$tmp/deploy.out" 2>&1; echo $? >"$tmp/deploy.rc") &
        deploy_pid=$!
        served=""
        while :; do
            if [[ -z $served ]] && serving; then served=$(now); fi
            if ! kill -0 "$deploy_pid" 2>/dev/null; then break; fi
            sleep 0.2
        done
        wait "$deploy_pid" || true
        returned=$(now)
        if [[ $(cat "$tmp/deploy.rc") != 0 ]]; then
            echo "$which deploy failed:" >&2
            grep -E "error|failed" "$tmp/deploy.out" | head -5 >&2
            exit 1
        fi
        deadline=$(($(date +%s) + 300))
        while [[ -z $served ]]; do
            if serving; then served=$(now); fi
            (($(date +%s) < deadline)) || { echo "$which: ZooKeeper never served" >&2; exit 1; }
            sleep 0.2
        done
        if [[ $which == after ]] && ((run % 2 == 0)); then
            rerun "$bin" "$tmp/after.unchecked" --health-timeout 0
            rerun "$bin" "$tmp/after.rerun"
        elif [[ $which == after ]]; then
            rerun "$bin" "$tmp/after.rerun"
            rerun "$bin" "$tmp/after.unchecked" --health-timeout 0
        else
            rerun "$bin" "$tmp/before.rerun"
        fi
        (cd "$tmp" && HOME="$tmp" "$bin" dispose --yes --no-progress plan.yaml >/dev/null 2>&1)
        awk -v a="$t0" -v b="$served" 'BEGIN { printf "%.2f\n", b - a }' >>"$tmp/$which.serving"
        awk -v a="$t0" -v b="$returned" 'BEGIN { printf "%.2f\n", b - a }' >>"$tmp/$which.returned"
        echo "$which run $run: serving after $(tail -1 "$tmp/$which.serving") s, deploy returned after $(tail -1 "$tmp/$which.returned") s, re-run $(tail -1 "$tmp/$which.rerun") s" >&2
    done
done

declare -A serving_m returned_m rerun_m
for which in before after; do
    serving_m[$which]=$(median <"$tmp/$which.serving")
    returned_m[$which]=$(median <"$tmp/$which.returned")
    rerun_m[$which]=$(median <"$tmp/$which.rerun")
done
unchecked_m=$(median <"$tmp/after.unchecked")
cost=$(awk -v a="${rerun_m[after]}" -v b="$unchecked_m" 'BEGIN { printf "%.1f", (a / b - 1) * 100 }')
engines=$(awk -v a="$unchecked_m" -v b="${rerun_m[before]}" 'BEGIN { printf "%.1f", (a / b - 1) * 100 }')
verdict=$(awk -v c="$cost" 'BEGIN { print (c < 20) ? "met" : "NOT met" }')

body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS BEFORE=$BEFORE bench/health.sh\`: on the 12 LXD nodes of bench/bootstrap/mesos-12.yaml,"
    echo "for the commit before the health checks ($BEFORE) and the working tree after them, alternating: a"
    echo "\`fitter deploy --yes\` from nothing, timed to the moment \`srvr\` gives one leader and two followers"
    echo "(asked through \`lxc exec\` every 0.2 s) and to its return; then a no-change re-run, timed; then dispose."
    echo
    echo "Machine: $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(revision). Medians of $RUNS runs."
    echo
    echo "| build | ensemble serving after (s) | deploy returned after (s) | no-change re-run (s) | re-run, \`--health-timeout 0\` (s) |"
    echo "|---|---:|---:|---:|---:|"
    echo "| before | ${serving_m[before]} | ${returned_m[before]} | ${rerun_m[before]} | - |"
    echo "| after | ${serving_m[after]} | ${returned_m[after]} | ${rerun_m[after]} | $unchecked_m |"
    echo
    echo "Before, deploy returned while the ensemble was still electing (it served after deploy had"
    echo "returned); after, it returns once the health checks pass, so \"done\" means serving."
    echo "Health checks' cost in a no-change re-run (after, with the checks against \`--health-timeout 0\`,"
    echo "same nodes, alternating): ${cost}% (target under 20%: **$verdict**). The checks of a node"
    echo "nothing changed on run in the bootstrap's first round trip, so they add no round trip."
    echo "The after build also runs a Docker engine on each of the 9 agents, which the before build"
    echo "does not: the ensemble serves later while 9 engines start, and the re-run without checks"
    echo "is ${engines}% slower than before's (more services probed, 9 engines running)."
    echo "Re-runs that changed something, not timed and run again: $discarded."
} >"$body"
cat "$body"
write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
