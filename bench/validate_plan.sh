#!/usr/bin/env bash
# Benchmark of `fitter validate` and `fitter plan` on generated plans of 100 to 100,000
# nodes (bench/gen_plan.py), in two forms: `ranges` (agents as `a1n[1..1000]`, a few KB)
# and `written` (every agent written out with its attributes, cloud-config and a peer
# reference, 3.8 MB for 10,000 nodes, 38 MB for 100,000: the file an operator's script
# would make). A benchmark, not a test: it never fails on a slow result, it reports.
# Target: 10,000 nodes, validate + plan under 1 s and 200 MB peak RSS.
#
#   bench/validate_plan.sh              # 5 runs per measurement
#   RUNS=9 bench/validate_plan.sh
#   SIZES="100 1000" FORMS=ranges bench/validate_plan.sh
#
# Prints a markdown table and writes it into docs/benchmarks.md under "## validate + plan"
# (only that section is replaced). Wall times are medians over RUNS runs, measured with
# bash's $EPOCHREALTIME (microseconds); peak RSS is /usr/bin/time's %M, the maximum over
# all runs. Uses hyperfine for the times when it is installed.
set -euo pipefail

RUNS=${RUNS:-5}
SIZES=${SIZES:-"100 1000 10000 100000"}
FORMS=${FORMS:-"ranges written"}
TARGET_NODES=10000
TARGET_SECONDS=1
TARGET_MB=200

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## validate + plan"

if ((BASH_VERSINFO[0] < 5)); then
    echo "bench/validate_plan.sh needs bash 5 (\$EPOCHREALTIME)" >&2
    exit 1
fi

# /usr/bin/time (Debian package `time`), for the peak RSS.
if [[ ! -x /usr/bin/time ]]; then
    sudo=()
    if ((EUID != 0)); then sudo=(sudo); fi
    echo "installing /usr/bin/time (Debian package time)" >&2
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq time >&2
fi

hyperfine_bin=$(command -v hyperfine || true)

echo "building: cargo build --release" >&2
cargo build --release --quiet
fitter="$root/target/release/fitter"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT


# run_timed LABEL CMD...: runs CMD (stdout to /dev/null) once to warm up, then RUNS times;
# prints "MEDIAN_SECONDS MAX_RSS_KB". CMD must exit 0.
run_timed() {
    local label=$1
    shift
    local times="$tmp/$label.times" rss="$tmp/$label.rss" out="$tmp/time.out" i t0 t1
    : >"$times"
    : >"$rss"
    "$@" >/dev/null
    for ((i = 0; i < RUNS; i++)); do
        t0=$EPOCHREALTIME
        /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$times"
        awk '{ print $2 }' "$out" >>"$rss"
    done
    if [[ -n $hyperfine_bin ]]; then
        # hyperfine's own timing (shell-less) replaces the bash one for the median.
        local cmd
        printf -v cmd '%q ' "$@"
        "$hyperfine_bin" -N --warmup 1 --runs "$RUNS" --style none \
            --export-json "$tmp/$label.json" "$cmd" >/dev/null
        python3 -c 'import json,sys; print("\n".join(str(t) for t in json.load(open(sys.argv[1]))["results"][0]["times"]))' \
            "$tmp/$label.json" >"$times"
    fi
    printf '%s %s\n' "$(median <"$times")" "$(sort -n "$rss" | tail -1)"
}

# Both commands as two invocations, one after the other (a tiny sh wrapper, so that
# /usr/bin/time and hyperfine see one command).
both="$tmp/validate-then-plan.sh"
printf '#!/bin/sh\nset -e\n%q validate "$1"\nexec %q plan "$1"\n' "$fitter" "$fitter" >"$both"
chmod +x "$both"

rows=()
verdicts=()
for form in $FORMS; do
for n in $SIZES; do
    plan="$tmp/bench-$form-$n.yaml"
    if [[ $form == written ]]; then
        python3 bench/gen_plan.py --written "$n" >"$plan"
    else
        python3 bench/gen_plan.py "$n" >"$plan"
    fi
    size_kb=$(awk -v b="$(stat -c %s "$plan")" 'BEGIN { printf "%.1f", b / 1024 }')
    nodes=$("$fitter" validate "$plan" 2>&1 | sed -n 's/.*, \([0-9]*\) nodes,.*/\1/p')
    nodes=${nodes:-?}
    echo "$form N=$n: $nodes nodes, ${size_kb} KB, $RUNS runs each" >&2

    read -r v_s v_kb < <(run_timed "validate-$form-$n" "$fitter" validate "$plan")
    read -r p_s p_kb < <(run_timed "plan-$form-$n" "$fitter" plan "$plan")
    read -r vp_s _ < <(run_timed "both-$form-$n" "$both" "$plan")
    peak_kb=$((v_kb > p_kb ? v_kb : p_kb))
    peak_mb=$(awk -v k="$peak_kb" 'BEGIN { printf "%.1f", k / 1024 }')
    rows+=("$(printf '| %s | %s | %s | %s KB | %.3f | %.3f | %.3f | %s |' \
        "$form" "$n" "$nodes" "$size_kb" "$v_s" "$p_s" "$vp_s" "$peak_mb")")

    if [[ $n == "$TARGET_NODES" ]]; then
        met=$(awk -v t="$vp_s" -v m="$peak_mb" -v ts="$TARGET_SECONDS" -v tm="$TARGET_MB" \
            'BEGIN { print (t < ts && m < tm) ? "met" : "NOT met" }')
        ratio=$(awk -v t="$vp_s" -v ts="$TARGET_SECONDS" 'BEGIN { printf "%.2f", t / ts }')
        verdicts+=("Target, \`$form\` (10,000 nodes: validate + plan under ${TARGET_SECONDS} s and ${TARGET_MB} MB peak RSS): **${met}** ($(printf '%.3f' "$vp_s") s as two invocations, ${ratio} of the bound; plan alone $(printf '%.3f' "$p_s") s; ${peak_mb} MB).")
    fi
done
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cpu=${cpu:-unknown}
family=$(awk -F': ' '/^cpu family/ { f = $2 } /^model\t/ { m = $2 } END { if (f != "") print "family " f ", model " m }' /proc/cpuinfo)
[[ -n $family ]] && cpu="$cpu ($family)"
hv=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ { print $2 }')
[[ -n $hv ]] && cpu="$cpu, $hv guest"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- src providers templates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    rev="$rev (with uncommitted changes)"
fi
timer="bash \$EPOCHREALTIME"
[[ -n $hyperfine_bin ]] && timer="hyperfine -N"

body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS SIZES=\"$SIZES\" FORMS=\"$FORMS\" bench/validate_plan.sh\` (plans from \`python3 bench/gen_plan.py [--written] N\`;"
    echo "3 masters, agents in blueprints of at most 1,000 nodes. \`ranges\`: agents as ranges, each agent's cloud-config naming"
    echo "\`{{ master1.private }}\`. \`written\`: every agent written out with a rack attribute, a description, a cloud-config"
    echo "file naming \`{{ master1.private }}\` and the agent before it, a runcmd line; the agents' size from a parameter)."
    echo
    echo "Machine: $(nproc) cores, $cpu; $(date -u '+%Y-%m-%d %H:%M UTC'); $(rustc --version 2>/dev/null || echo rustc); commit $rev."
    echo
    echo "Times are medians of $RUNS runs after one warm-up ($timer), release build, output to /dev/null."
    echo "\`plan\` also validates, so *plan* is the cost of the plan alone; *validate+plan* is both"
    echo "commands run as two invocations. Peak RSS is the larger of the two (\`/usr/bin/time -f '%e %M'\`)."
    echo
    echo "| form | N | nodes | plan file | validate median (s) | plan median (s) | validate+plan (s) | peak RSS (MB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    for v in "${verdicts[@]}"; do
        echo
        echo "$v"
    done
} >"$body"

cat "$body"

write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
