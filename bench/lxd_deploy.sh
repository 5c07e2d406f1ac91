#!/usr/bin/env bash
# Benchmark of `fitter deploy` and `fitter dispose` of fittings/mesos-local.yaml on this
# machine's LXD (5 system containers, one bridge, two network ACLs). A benchmark, not a
# test: it never fails on a slow result, but it fails loudly when a deploy does not leave
# 5 running containers or a dispose leaves anything behind.
#
#   bench/lxd_deploy.sh            # 5 timed cycles
#   RUNS=9 bench/lxd_deploy.sh
#   REV=HEAD bench/lxd_deploy.sh   # a commit as committed, without the working tree's changes
#
# Builds the working tree (cargo build --release), or with REV=COMMIT that commit alone, from
# `git archive` into target/bench-rev/ (its own target dir; the checkout is not touched).
# Needs root and the local cloud of scripts/local-cloud.sh (run first; fast when in place).
# Each cycle works on a copy of the plan in a temporary folder (its state file goes there),
# with an operator key made there: a timed `deploy --yes` from nothing (image in the
# store), a timed second `deploy --yes` that must change nothing, a timed `dispose --yes`.
# Two untimed cycles come first, as warm-up and to see where a node's time goes: their
# deploys run with -vv and time-stamped logs, once with --parallelism 1 (the nodes one
# after the other) and once with the default parallelism.
#
# Only one `mesos-local` deployment can exist on a host: before each deploy the script waits
# (up to WAIT_FREE seconds, default 300) until no container, network or ACL of it has existed
# for QUIET seconds (default 15), and never deletes what it did not create. If it fails
# mid-cycle it disposes of its deployment only when every container left shows a host key
# of its own state file (`fitter dispose` removes all that carries the deployment's mark);
# else it prints the command and leaves it. KEEP_ON_FAILURE=1 always leaves it.
#
# Prints a markdown section and writes it into docs/benchmarks.md under
# "## LXD: deploy and dispose of fittings/mesos-local.yaml" (only that section is replaced).
set -euo pipefail

RUNS=${RUNS:-5}
WAIT_FREE=${WAIT_FREE:-300}
QUIET=${QUIET:-15}
KEEP_ON_FAILURE=${KEEP_ON_FAILURE:-0}
REV=${REV:-}
readonly DEPLOYMENT=mesos-local
readonly PLAN_FILE=fittings/mesos-local.yaml
readonly NETWORK=fitter-mesos
readonly NODES=(master1 master2 master3 agent1 agent2)
readonly POOL=fitter
readonly IMAGE=fitter-debian-12

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## LXD: deploy and dispose of fittings/mesos-local.yaml"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

if ((BASH_VERSINFO[0] < 5)); then
    die "bench/lxd_deploy.sh needs bash 5 (\$EPOCHREALTIME)"
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $(id -u) -eq 0 ]] || die "run as root (scripts/local-cloud.sh and lxc need it)"
for tool in python3 ssh-keygen; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# The tree measured: the checkout, or REV's files alone. Its plan and local-cloud script
# are used too, so that everything measured comes from one tree.
if [[ -n $REV ]]; then
    commit=$(git rev-parse --verify --quiet "$REV^{commit}") || die "REV=$REV names no commit"
    rev="$(git rev-parse --short "$commit") (REV=$REV, built from \`git archive\`: no uncommitted changes)"
    tree="$root/target/bench-rev/src-${commit:0:12}"
    if [[ ! -f $tree/Cargo.toml ]]; then
        rm -rf "$tree"
        mkdir -p "$tree"
        git archive "$commit" | tar -x -C "$tree"
    fi
    echo "building ${commit:0:12} in $tree: cargo build --release" >&2
    (cd "$tree" && CARGO_TARGET_DIR="$root/target/bench-rev/target" cargo build --release --quiet)
    fitter="$root/target/bench-rev/target/release/fitter"
else
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git status --porcelain -- src providers templates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
        rev="$rev (with uncommitted changes)"
    fi
    tree=$root
    echo "building: cargo build --release" >&2
    cargo build --release --quiet
    fitter="$root/target/release/fitter"
fi
plan_src="$tree/$PLAN_FILE"

echo "local cloud: scripts/local-cloud.sh" >&2
"$tree/scripts/local-cloud.sh" >&2

tmp=$(mktemp -d)
plan_name=$(basename "$PLAN_FILE")
live="" # the workspace whose deployment may exist right now
on_exit() {
    local rc=$? why
    if [[ -n $live ]]; then
        if [[ $KEEP_ON_FAILURE == 1 ]]; then
            echo "KEEP_ON_FAILURE=1: the deployment is left; remove it with:" >&2
            echo "  $fitter dispose --yes --ssh-key $live/key $live/$plan_name" >&2
            trap - EXIT
            exit "$rc" # keeps $tmp: it holds the state and key that command needs
        elif why=$(only_ours) && [[ $why == nothing ]]; then
            : # nothing to clean up
        elif [[ $why != ours ]]; then
            # dispose removes everything carrying the deployment's mark: never run it while
            # someone else's deployment of the same name may be there.
            echo "error: NOT cleaning up: ${why:-the check failed}. Once sure it is this run's, remove it with:" >&2
            echo "  $fitter dispose --yes --ssh-key $live/key $live/$plan_name" >&2
            trap - EXIT
            exit "$rc" # keeps $tmp: it holds the state and key that command needs
        else
            echo "cleaning up: fitter dispose of the deployment this run made" >&2
            "$fitter" dispose --yes --ssh-key "$live/key" "$live/$plan_name" >&2 ||
                echo "error: the clean-up dispose failed too; see lxc list" >&2
        fi
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# What exists of the deployment, one "kind name status" line each: anything carrying its
# mark (user.fitter.deployment) or its names, read with the lxc client, not with fitter.
leftovers() {
    python3 - "$DEPLOYMENT" "$NETWORK" <<'PY'
import json, subprocess, sys
dep, network = sys.argv[1:3]
def lxc(*args):
    out = subprocess.run(["lxc", *args, "--format", "json"], check=True, text=True,
                         stdin=subprocess.DEVNULL, capture_output=True).stdout
    return json.loads(out)
def marked(item):
    return (item.get("config") or {}).get("user.fitter.deployment") == dep
for i in lxc("list"):
    if marked(i) or i["name"].startswith(dep + "-"):
        print("container", i["name"], i["status"])
for n in lxc("network", "list"):
    # fitter names the bridge (providers/src/lxd/mod.rs, bridge_name); the plan's name is
    # in its config.
    name = (n.get("config") or {}).get("user.fitter.name", n["name"])
    if marked(n) or name == network:
        print("network", name, "-")
for a in lxc("network", "acl", "list"):
    if marked(a) or a["name"].startswith("fitter-" + dep + "-"):
        print("acl", a["name"], "-")
PY
}

# Waits until no trace of the deployment is left (someone else's test may hold it), and has
# been so for QUIET seconds: a test suite runs its deployments back to back. Returns right
# after the last look, so that the deploy starts at once.
wait_free() {
    local deadline=$((SECONDS + WAIT_FREE)) left said=0 free_since=-1
    while :; do
        left=$(leftovers)
        if [[ -z $left ]]; then
            ((free_since >= 0)) || free_since=$SECONDS
            ((SECONDS - free_since >= QUIET)) && return 0
        else
            free_since=-1
            if ((SECONDS >= said)); then
                echo "waiting: a $DEPLOYMENT deployment exists (another test?):" $left >&2
                said=$((SECONDS + 30))
            fi
        fi
        if ((SECONDS >= deadline)); then
            [[ -z $left ]] || printf '%s\n' "$left" >&2
            die "no quiet ${QUIET} s without a $DEPLOYMENT deployment within ${WAIT_FREE} s (not this script's; left alone)"
        fi
        sleep 3
    done
}

# Prints "ours" when every container of the deployment now in LXD shows a host key that
# this run's state file records, "nothing" when nothing is left, else why it may not be ours.
only_ours() {
    local left
    left=$(leftovers) || { echo "lxc cannot be read"; return; }
    [[ -n $left ]] || { echo nothing; return; }
    python3 - "$live/${plan_name%.yaml}.state.json" "$DEPLOYMENT" "$left" <<'PY2'
import json, subprocess, sys
state_path, dep, left = sys.argv[1:4]
try:
    resources = json.load(open(state_path)).get("resources", {})
except (OSError, ValueError):
    print("this run has no readable state file"); sys.exit(0)
keys = {" ".join(str(r.get("outputs", {}).get("host_key", "")).split()[:2])
        for a, r in resources.items() if a.startswith("node.")}
containers = [l.split()[1] for l in left.splitlines() if l.startswith("container ")]
if not containers:
    print("only a network or ACLs are left, which another deployment may be starting with"); sys.exit(0)
for c in containers:
    got = subprocess.run(["lxc", "file", "pull", f"{c}/etc/ssh/ssh_host_ed25519_key.pub", "-"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    key = " ".join(got.stdout.split()[:2])
    if got.returncode != 0 or key not in keys:
        print(f"container {c} does not show a host key of this run"); sys.exit(0)
print("ours")
PY2
}

expected=$(for n in "${NODES[@]}"; do echo "container $DEPLOYMENT-$n Running"; done | sort)

check_deployed() { # $1: what just ran
    local have
    have=$(leftovers | sort)
    if [[ $(grep '^container ' <<<"$have") != "$expected" ]] ||
        ! grep -q "^network $NETWORK " <<<"$have" ||
        [[ $(grep -c '^acl ' <<<"$have") != 2 ]]; then
        printf 'found:\n%s\nexpected: 5 running containers, network %s, 2 ACLs\n' "$have" "$NETWORK" >&2
        die "after $1: the deployment is not what the plan asks for"
    fi
}

check_gone() { # $1: what just ran
    local have
    have=$(leftovers)
    if [[ -n $have ]]; then
        printf 'left:\n%s\n' "$have" >&2
        die "after $1: the deployment is not gone"
    fi
}

# CPU accounting, in seconds: the whole host (user+nice+system+irq+softirq of /proc/stat),
# the LXD daemon (itself and its reaped children: forkfile, forkstart, btrfs...) and the
# kernel threads (children of kthreadd: btrfs workers, the loop device, kworkers).
lxd_pid=$(lxc query /1.0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["environment"].get("server_pid") or "")' 2>/dev/null || true)
[[ -n $lxd_pid ]] || lxd_pid=$(pgrep -o -x lxd || true)
cpu_now() { # prints "HOST_S LXD_S KTHREADS_S"
    python3 - "${lxd_pid:-0}" <<'PY2'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
lxd, kthreads = 0, 0
f = open("/proc/stat").readline().split()
host = sum(int(f[i]) for i in (1, 2, 3, 6, 7))
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        st = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    except OSError:
        continue  # gone meanwhile
    if pid == sys.argv[1]:
        lxd = sum(int(x) for x in st[11:15])  # utime stime cutime cstime
    elif pid == "2" or st[1] == "2":
        kthreads += int(st[11]) + int(st[12])
print(f"{host / hz:.2f} {lxd / hz:.2f} {kthreads / hz:.2f}")
PY2
}
# How busy the host is while nothing of this script runs: percent of all cores over 2 s.
background() {
    local a b
    read -r a _ < <(cpu_now)
    sleep 2
    read -r b _ < <(cpu_now)
    awk -v a="$a" -v b="$b" -v c="$(nproc)" 'BEGIN { printf "%.0f\n", 100 * (b - a) / (2 * c) }'
}
# CPU seconds used so far by the deployment's containers (payload and monitor cgroups).
containers_cpu() {
    local n g total=0 ns
    for n in "${NODES[@]}"; do
        for g in payload monitor; do
            ns=""
            if [[ -r /sys/fs/cgroup/cpuacct/lxc.$g.$DEPLOYMENT-$n/cpuacct.usage ]]; then
                ns=$(cat "/sys/fs/cgroup/cpuacct/lxc.$g.$DEPLOYMENT-$n/cpuacct.usage")
            elif [[ -r /sys/fs/cgroup/lxc.$g.$DEPLOYMENT-$n/cpu.stat ]]; then
                ns=$(awk '$1 == "usage_usec" { print $2 * 1000 }' "/sys/fs/cgroup/lxc.$g.$DEPLOYMENT-$n/cpu.stat")
            fi
            [[ -n $ns ]] || { echo nan; return; }
            total=$(awk -v a="$total" -v b="$ns" 'BEGIN { printf "%.0f", a + b }')
        done
    done
    awk -v t="$total" 'BEGIN { printf "%.2f\n", t / 1e9 }'
}

# timed NAME CMD...: runs CMD with stdout and stderr to $ws/NAME.out and .err; writes
# "WALL_S USER_S SYS_S" to $ws/NAME.time (bash's time keyword: wall, CMD's own CPU time).
# Fails loudly.
timed() {
    local name=$1
    shift
    if ! {
        TIMEFORMAT='%3R %3U %3S'
        time "$@" >"$ws/$name.out" 2>"$ws/$name.err"
    } 2>"$ws/$name.time"; then
        cat "$ws/$name.out" "$ws/$name.err" >&2
        die "$name failed: $*"
    fi
}

# traced NAME CMD...: runs CMD with its stdout and stderr lines time-stamped into
# $ws/NAME.trace, and the same lines without the stamps into $ws/NAME.out.
traced() {
    local name=$1
    shift
    NO_COLOR=1 "$@" 2>&1 | while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "$line"
    done >"$ws/$name.trace" || {
        cat "$ws/$name.trace" >&2
        die "$name failed: $*"
    }
    sed 's/^[^ ]* //' "$ws/$name.trace" >"$ws/$name.out"
}

# Where each node's time went in a traced deploy; prints the medians over the nodes,
# "CREATE FILES START SSH NODE", then "APPLY BOOTSTRAP": from the first line to the
# `...: created` lines (printed when all resources are done), and from there to the
# `Bootstrap:` line (n/a when this build has no bootstrap). Seconds, n/a when the log does
# not allow it.
phases() {
    python3 - "$1.trace" "$1.out" "$DEPLOYMENT" <<'PY' || echo "n/a n/a n/a n/a n/a n/a n/a"
import re, statistics, sys
trace, out, dep = sys.argv[1:4]
events = []
for line in open(trace):
    t, _, text = line.rstrip("\n").partition(" ")
    events.append((float(t), re.sub(r"\x1b\[[0-9;]*m", "", text)))
took = {m[1]: float(m[2]) for m in
        re.finditer(r"^node\.(\S+): created \(([0-9.]+) s\)$", open(out).read(), re.M)}
cols = {k: [] for k in ("create", "files", "start", "ssh", "node")}
for node, d in took.items():
    inst = f"/1.0/instances/{dep}-{node}"
    begin = next(t for t, x in events if f"GET {inst} -> " in x)       # does it exist?
    polls = [t for t, x in events if f"GET {inst}/state -> " in x]
    start = next(t for t, x in events if f"PUT {inst}/state -> " in x)  # start accepted
    created = polls[0]                 # instance made (image cloned), before the files
    # the poll that saw it Running: the last before the node was done
    running = [t for t in polls if start < t <= begin + d + 0.1][-1]
    cols["create"].append(created - begin)
    cols["files"].append(start - created)
    cols["start"].append(running - start)
    cols["ssh"].append(max(0.0, begin + d - running))  # boot, sshd, SSH handshake
    cols["node"].append(d)
if len(took) != 5:
    raise SystemExit("not 5 nodes")
done = next(t for t, x in events if re.match(r"(firewall|network|node)\.\S+: created \(", x))
boot = next((t for t, x in events if x.startswith("Bootstrap:")), None)
print(" ".join(f"{statistics.median(cols[k]):.1f}" for k in cols),
      f"{done - events[0][0]:.1f}", "n/a" if boot is None else f"{boot - done:.1f}")
PY
}

# stats: "MEDIAN MIN MAX" of the numbers on stdin
stats() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan nan nan"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }'
}

results="$tmp/results" # "run kind value" lines
: >"$results"

# cycle NAME MODE: one deploy, no-change deploy, dispose. MODE: timed, or traced-serial /
# traced-parallel (the deploy with -vv and time-stamped logs; nothing recorded but phases).
cycle() {
    local name=$1 mode=$2 plan t wall usr sys h0 l0 h1 l1 ct line
    ws="$tmp/$name"
    mkdir -p "$ws"
    cp "$plan_src" "$ws/$plan_name"
    plan="$ws/$plan_name"
    ssh-keygen -t ed25519 -N '' -C "fitter bench $name" -f "$ws/key" -q
    [[ $mode != timed ]] || echo "$name background $(background)" >>"$results"
    echo "$name: waiting for ${QUIET} s without any $DEPLOYMENT deployment" >&2
    wait_free
    live=$ws
    echo "$name: deploy ($mode)" >&2

    case $mode in
    traced-serial)
        t=$EPOCHREALTIME
        traced deploy "$fitter" deploy -vv --parallelism 1 --yes --ssh-key "$ws/key" "$plan"
        ;;
    traced-parallel)
        t=$EPOCHREALTIME
        traced deploy "$fitter" deploy -vv --yes --ssh-key "$ws/key" "$plan"
        ;;
    timed)
        read -r h0 l0 k0 < <(cpu_now)
        timed deploy "$fitter" deploy --yes --ssh-key "$ws/key" "$plan"
        read -r wall usr sys <"$ws/deploy.time"
        read -r h1 l1 k1 < <(cpu_now)
        ct=$(containers_cpu)
        echo "$name deploy $wall" >>"$results"
        awk -v n="$name" -v h0="$h0" -v h1="$h1" -v l0="$l0" -v l1="$l1" -v k0="$k0" -v k1="$k1" -v ct="$ct" \
            -v f="$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')" 'BEGIN {
                printf "%s cpu_host %.2f\n%s cpu_lxd %.2f\n%s cpu_fitter %.2f\n%s cpu_kthreads %.2f\n", n, h1 - h0, n, l1 - l0, n, f, n, k1 - k0
                if (ct != "nan") printf "%s cpu_containers %.2f\n%s cpu_other %.2f\n", n, ct, n, (h1 - h0) - (l1 - l0) - (k1 - k0) - ct - f
            }' >>"$results"
        ;;
    esac
    [[ $mode == timed ]] || awk -v a="$t" -v b="$EPOCHREALTIME" -v m="$mode" 'BEGIN { printf "warmup %s:wall %.2f\n", m, b - a }' >>"$results"
    grep -q '^Plan: 8 to add, 0 to change, 0 to destroy\.$' "$ws/deploy.out" ||
        die "$name: the first deploy did not start from nothing (see $ws/deploy.out)"
    while IFS= read -r line; do
        [[ $line =~ ^((node|network|firewall)\.[^:]+):\ created\ \(([0-9.]+)\ s\)$ ]] || continue
        echo "$name ${mode}:${BASH_REMATCH[1]} ${BASH_REMATCH[3]}" >>"$results"
    done <"$ws/deploy.out"
    check_deployed "$name: deploy"
    if grep -q '^Bootstrap:' "$ws/deploy.out"; then echo "$name bootstrap 1" >>"$results"; fi
    [[ $mode == timed ]] || phases "$ws/deploy" >"$tmp/phases.$mode"

    echo "$name: deploy again (no change)" >&2
    timed redeploy "$fitter" deploy --yes --ssh-key "$ws/key" "$plan"
    read -r wall _ <"$ws/redeploy.time"
    grep -q '^Plan: 0 to add, 0 to change, 0 to destroy\.$' "$ws/redeploy.out" ||
        die "$name: the second deploy was not a no-op: $(grep '^Plan:' "$ws/redeploy.out" || echo 'no Plan: line')"
    # On the nodes too: nothing uploaded, nothing restarted.
    grep -q '^Bootstrap: 0 files uploaded, 0 services restarted, 0 nodes failed\.$' "$ws/redeploy.out" ||
        die "$name: the second deploy's bootstrap was not a no-op: $(grep '^Bootstrap:' "$ws/redeploy.out" || echo 'no Bootstrap: line')"
    [[ $mode == timed ]] && echo "$name redeploy $wall" >>"$results"
    check_deployed "$name: second deploy"

    echo "$name: dispose" >&2
    timed dispose "$fitter" dispose --yes --ssh-key "$ws/key" "$plan"
    read -r wall _ <"$ws/dispose.time"
    check_gone "$name: dispose"
    live=""
    [[ $mode == timed ]] && echo "$name dispose $wall" >>"$results"
    return 0
}

cycle warmup-serial traced-serial
cycle warmup-parallel traced-parallel
for ((i = 1; i <= RUNS; i++)); do
    cycle "run$i" timed
done

# --- report --------------------------------------------------------------------------------

col() { awk -v k="$1" '$2 == k { print $3 }' "$results"; }
read -r dep_med dep_min dep_max < <(col deploy | stats)
read -r re_med re_min re_max < <(col redeploy | stats)
read -r dis_med dis_min dis_max < <(col dispose | stats)
per_run=$(awk '$2 == "deploy" || $2 == "redeploy" || $2 == "dispose" { v[$1] = v[$1] sprintf("%s%.2f", (v[$1] == "" ? "" : " / "), $3) }
    $2 == "cpu_other" { o[$1] = $3 } $2 == "background" { g[$1] = $3 }
    END { for (r in v) printf "%s: %s (other processes %s core-s%s; %s%% busy before)\n", r, v[r], o[r], (o[r] > 1 ? ", **disturbed**" : ""), g[r] }' "$results" |
    sort -V | paste -sd '|' | sed 's/|/; /g')

node_rows=()
for r in "network.$NETWORK" "${NODES[@]/#/node.}"; do
    read -r m lo hi < <(col "timed:$r" | stats)
    s=$(col "traced-serial:$r")
    p=$(col "traced-parallel:$r")
    node_rows+=("$(printf '| `%s` | %.1f | %.1f | %.1f | %s | %s |' "$r" "$m" "$lo" "$hi" "${p:-?}" "${s:-?}")")
done
read -r node_med _ < <(for n in "${NODES[@]}"; do col "timed:node.$n"; done | stats)
read -r net_med _ < <(col "timed:network.$NETWORK" | stats)

read -r c_host _ < <(col cpu_host | stats)
read -r c_lxd _ < <(col cpu_lxd | stats)
read -r c_ct _ < <(col cpu_containers | stats)
read -r c_fit _ < <(col cpu_fitter | stats)
read -r c_kt _ < <(col cpu_kthreads | stats)
read -r c_other _ < <(col cpu_other | stats)
read -r bg_med _ bg_max < <(col background | stats | awk '{ printf "%.0f %.0f %.0f\n", $1, $2, $3 }')
cores=$(nproc)
busy=$(awk -v h="$c_host" -v w="$dep_med" -v c="$cores" 'BEGIN { printf "%.0f", 100 * h / (w * c) }')
# the deployment's own share: all but other processes
own=$(awk -v h="$c_host" -v o="$c_other" -v w="$dep_med" -v c="$cores" 'BEGIN { printf "%.0f", 100 * (h - o) / (w * c) }')

ws_wall=$(col traced-serial:wall)
wp_wall=$(col traced-parallel:wall)
read -r ps_create ps_files ps_start ps_ssh ps_node ps_apply ps_boot <"$tmp/phases.traced-serial"
read -r pp_create pp_files pp_start pp_ssh pp_node pp_apply pp_boot <"$tmp/phases.traced-parallel"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cpu=${cpu:-unknown}
family=$(awk -F': ' '/^cpu family/ { f = $2 } /^model\t/ { m = $2 } END { if (f != "") print "family " f ", model " m }' /proc/cpuinfo)
[[ -n $family ]] && cpu="$cpu ($family)"
hv=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ { print $2 }')
[[ -n $hv ]] && cpu="$cpu, $hv guest"
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
lxd_version=$(lxc version 2>/dev/null | awk -F': *' '/^Server version/ { print $2 }')
driver=$(lxc storage show "$POOL" | awk '$1 == "driver:" { print $2 }')
pool_src=$(lxc storage show "$POOL" | awk '$1 == "source:" { print $2 }')
pool_size=$(lxc storage show "$POOL" | awk '$1 == "size:" { print $2 }')
storage="\`$driver\`"
if [[ -f $pool_src ]]; then
    storage="$storage on a ${pool_size:-?} loop file ($(df -T "$pool_src" | awk 'NR == 2 { print $2 }') underneath)"
elif [[ -n $pool_src ]]; then
    storage="$storage on $pool_src"
fi
image_size=$(lxc image info "$IMAGE" | awk '$1 == "Size:" { print $2 }')
image_fp=$(lxc image info "$IMAGE" | awk '$1 == "Fingerprint:" { print substr($2, 1, 12) }')

fw_max=$(for r in $(awk '$2 ~ /^timed:firewall\./ { print $2 }' "$results" | sort -u); do col "$r"; done | sort -g | tail -1)
# The sentence on what dominates, from the numbers above.
disturbed=$(awk '$2 == "cpu_other" && $3 > 1 { printf "%s%s", (n++ ? ", " : ""), $1 }' "$results")
verdict=$(awk -v net="$net_med" -v node="$node_med" -v dep="$dep_med" -v fit="$c_fit" -v re="$re_med" \
    -v pc="$pp_create" -v pf="$pp_files" -v pst="$pp_start" -v pssh="$pp_ssh" -v pn="$pp_node" -v sn="$ps_node" \
    -v ss="$ps_start" -v sssh="$ps_ssh" -v pboot="$pp_boot" -v papply="$pp_apply" -v sapply="$ps_apply" -v pw="$wp_wall" -v sw="$ws_wall" \
    -v own="$own" -v cores="$cores" -v lxd="$c_lxd" -v ct="$c_ct" -v other="$c_other" -v host="$c_host" \
    -v disturbed="$disturbed" -v runs="$RUNS" 'BEGIN {
    boot = (pboot != "" && pboot != "n/a")
    printf "What dominates: making the nodes, not fitter (%s CPU-seconds of its own). The deploy is the network (%s s)", fit, net
    printf " followed by the 5 nodes made concurrently, %s s each (median): together %.0f%% of the %s s", node, 100 * (net + node) / dep, dep
    if (boot) printf "; then comes the SSH bootstrap of the 5 nodes (%s s of the %s s of the traced concurrent warm-up deploy)", pboot, pw
    printf ". "
    if (pn == "n/a") { print "(The traced warm-ups gave no phase split.)"; exit }
    big = (pst - pssh >= 0.3) ? "LXD starting the container is the largest part" : \
          (pssh - pst >= 0.3) ? "the boot to sshd is the largest part" : "those two are the bulk, about even"
    printf "Of a node'"'"'s time, LXD starting the container takes %s s and the boot to an SSH answer %s s, creating it from the btrfs image %s s and pushing its files %s s: %s. ", pst, pssh, pc, pf, big
    printf "One node at a time, a node takes %s s (start %s s, boot to SSH %s s); five at once, %s s each", sn, ss, sssh, pn
    if (papply != "n/a" && sapply != "n/a" && papply > 0)
        printf " (start of the warm-up deploy to all resources ready: %s s one at a time, %s s at once, a speed-up of %.1f on %d cores)", sapply, papply, sapply / papply, cores
    printf ". "
    cts = boot ? "their boot, then the services the bootstrap starts" : "their boot"
    who = (lxd >= ct) ? sprintf("mostly the LXD daemon (%s core-s) rather than the 5 containers (%s core-s: %s)", lxd, ct, cts) \
                      : sprintf("mostly the 5 containers (%s core-s: %s) rather than the LXD daemon (%s core-s)", ct, cts, lxd)
    if (own >= 70 && pn > 1.5 * sn)
        printf "That is where the %d cores are the limit: the deployment alone keeps them %d%% busy on average, %s, so the concurrent starts and boots queue for CPU and more parallelism cannot shorten the deploy on this machine.", cores, own, who
    else
        printf "The %d cores are not saturated by the deployment (%d%% busy; %s), so the time is mostly waiting, not CPU.", cores, own, who
    if (disturbed != "")
        printf " Other processes on the machine took more than 1 core-s during the deploy of %s (of %d runs): those times are pessimistic.", disturbed, runs
    if (boot)
        printf " The no-change deploy (%s s) reads the state, asks LXD and opens an SSH session to every node to find nothing to upload; dispose is LXD stopping and deleting the containers.\n", re
    else
        printf " The no-change deploy (%s s) only reads the state and asks LXD; dispose is LXD stopping and deleting the containers.\n", re
}')

body="$tmp/section.md"
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS${REV:+ REV=$REV} bench/lxd_deploy.sh\` (after \`cargo build --release\` and \`scripts/local-cloud.sh\`). Each run, on a copy of"
    echo "\`$PLAN_FILE\` in a temporary folder: \`fitter deploy --yes --ssh-key KEY mesos-local.yaml\` from nothing (image already"
    echo "in LXD's store), the same again (must print \`Plan: 0 to add, 0 to change, 0 to destroy.\` and \`Bootstrap: 0 files uploaded, 0 services restarted, 0 nodes failed.\`), then \`fitter dispose --yes\`."
    echo "After each deploy the script checks with \`lxc\` that the 5 containers run and the network and 2 ACLs exist; after each"
    echo "dispose that nothing of the deployment is left. Every check passed."
    if [[ -n $(col bootstrap) ]]; then
        echo "This build's \`deploy\` also bootstraps the nodes over SSH (it prints \`Bootstrap: ...\`), on every deploy, the no-change one too."
    fi
    echo
    echo "Machine: $cores cores, $cpu, $mem; $(rustc --version 2>/dev/null || echo rustc); LXD $lxd_version; storage pool \`$POOL\`: $storage;"
    echo "image \`$IMAGE\` ($image_fp) $image_size; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $rev."
    echo
    echo "Wall times of $RUNS runs after two untimed warm-up cycles (bash's \`time\`, release build):"
    echo
    echo "| step | median (s) | min (s) | max (s) |"
    echo "|---|---:|---:|---:|"
    echo "| \`deploy\` (5 nodes from nothing, each answering SSH with its pinned host key) | $dep_med | $dep_min | $dep_max |"
    echo "| \`deploy\` again (no change) | $re_med | $re_min | $re_max |"
    echo "| \`dispose\` | $dis_med | $dis_min | $dis_max |"
    echo
    echo "Per run (deploy / no change / dispose, s): $per_run."
    echo
    echo "Per resource, the time fitter prints (\`node.master1: created (6.2 s)\`); the 5 nodes are made concurrently"
    echo "(default \`--parallelism 10\`). The last two columns are the warm-up deploys, traced with \`-vv\`:"
    echo "all at once, and one node at a time (\`--parallelism 1\`). The 2 firewalls (LXD network ACLs) take at most ${fw_max:-?} s."
    echo
    echo "| resource | median (s) | min (s) | max (s) | warm-up, concurrent (s) | warm-up, one at a time (s) |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${node_rows[@]}"
    echo
    echo "Where a node's time goes (warm-up deploys; time-stamped \`-vv\` logs of the LXD calls; median over the 5 nodes;"
    if [[ $pp_boot != n/a ]]; then
        echo "\`--parallelism\` applies to the LXD calls, the bootstrap keeps its own \`--ssh-parallelism\`):"
    else
        echo "\`--parallelism\` applies to the LXD calls):"
    fi
    echo
    echo "| phase | concurrent (s) | one at a time (s) |"
    echo "|---|---:|---:|"
    echo "| create the container (\`POST /1.0/instances\`: btrfs snapshot of the image) | $pp_create | $ps_create |"
    echo "| push its files (host key, authorized_keys, machine-id...) | $pp_files | $ps_files |"
    echo "| start it (\`PUT .../state\` until Running) | $pp_start | $ps_start |"
    echo "| from Running to SSH with the pinned key (systemd boot, sshd, fitter's retry back-off) | $pp_ssh | $ps_ssh |"
    echo "| whole node | $pp_node | $ps_node |"
    echo "| *whole deploy:* start to all resources ready | $pp_apply | $ps_apply |"
    if [[ $pp_boot != n/a ]]; then
        echo "| *whole deploy:* then the SSH bootstrap of the 5 nodes (up to \`Bootstrap: ...\`) | $pp_boot | $ps_boot |"
    fi
    echo
    echo "CPU during a deploy (medians, core-seconds; host from \`/proc/stat\`): host $c_host of $(awk -v w="$dep_med" -v c="$cores" 'BEGIN { printf "%.1f", w * c }') available (${busy}% of $cores cores);"
    echo "LXD daemon and its helpers $c_lxd, the 5 containers (their cgroups) $c_ct, kernel threads (btrfs, loop device...) $c_kt, fitter $c_fit,"
    echo "other processes $c_other. Before each timed deploy the host was $bg_med% busy (median over 2 s; at most $bg_max%)."
    echo
    echo "$verdict"
} >"$body"

cat "$body"

write_section "$doc" "$body" "$section"
echo "wrote $doc" >&2
