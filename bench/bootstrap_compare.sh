#!/usr/bin/env bash
# Benchmark of fitter's bootstrap phase against ansible-playbook and pyinfra, on the same
# 12 LXD nodes (bench/bootstrap/mesos-12.yaml: 3 masters, 9 agents) and the same files.
# A benchmark, not a test: it never fails on a slow result, but it fails loudly when a tool
# does not leave the nodes as fitter does, or when a no-change run changes something.
#
#   bench/bootstrap_compare.sh            # 3 timed rounds
#   RUNS=5 bench/bootstrap_compare.sh
#   FORKS5=0 bench/bootstrap_compare.sh   # skip ansible with its default forks (5)
#
# Needs root, LXD and the node image (scripts/local-cloud.sh, which it runs), and PyPI
# (pip installs ansible-core and pyinfra in throwaway virtualenvs under a temporary folder).
# Steps:
#  1. waits (up to 10 min) while a bench/lxd_deploy.sh runs; refuses to start when anything
#     of deployment `bench12` exists already (it never touches what it did not create, and
#     never any mesos-local-* container);
#  2. builds fitter (release) and creates the 12 nodes once, untimed:
#     `fitter deploy --yes --skip-bootstrap --ssh-key KEY mesos-12.yaml` on a copy of the plan
#     in a temporary folder (state and known_hosts beside it, KEY made there);
#  3. an untimed warm-up round, then RUNS timed rounds; in each, for each tool in turn
#     (fitter, ansible-playbook with forks 12, pyinfra --parallel 12, ansible-playbook with
#     forks 5): reset every node to the same clean slate (below), time the first run, check
#     the result, time a second run, check it changed nothing. fitter's runs are
#     `fitter deploy --yes --ssh-key KEY mesos-12.yaml` (refresh + bootstrap, the nodes
#     existing); what of that is not bootstrap is timed too, as
#     `fitter deploy --yes --skip-bootstrap` on the same state;
#  4. writes the medians into docs/benchmarks.md under
#     "## Bootstrap: fitter, ansible-playbook, pyinfra (12 LXD nodes)" (only that section);
#  5. disposes of the 12 nodes (`fitter dispose --yes`) and checks with lxc that nothing of
#     `bench12` is left (containers, network, ACLs). KEEP=1 leaves them (and prints how to
#     remove them).
#
# The reset (`lxc exec NODE -- sh -c ...`, not timed, the same before every tool's first
# run): zookeeper stopped and disabled; /etc/hosts, zoo.cfg, myid and /etc/default/zookeeper
# put back as the image has them (saved once, before any tool ran, in /root); /etc/mesos,
# /etc/mesos-master, /etc/mesos-slave, /etc/docker, /etc/default/marathon and
# /var/lib/fitter removed.
#
# Checks after every first run: on master1 and agent1, every target file's path, mode,
# owner and sha256 equal those fitter's first run of the warm-up round left (and no other
# file under the Mesos and Docker folders); zookeeper active and enabled on the 3 masters,
# inactive on the agents. After every second run: fitter says `Bootstrap: 0 files uploaded,
# 0 services restarted`, ansible `changed=0` on every host, pyinfra no change but its
# `systemctl enable zookeeper` (see docs/benchmarks.md).
#
# Times are wall times of the tool's command alone (bash's `time` keyword), medians over
# the RUNS rounds. Before each timed command the script waits (at most QUIET_WAIT s,
# default 60) for 2 s with the host at most QUIET_MAX % busy (default 25): other sessions
# may build or test on the same machine.
set -euo pipefail

RUNS=${RUNS:-3}
FORKS5=${FORKS5:-1}
KEEP=${KEEP:-0}
WAIT_LXD_DEPLOY=${WAIT_LXD_DEPLOY:-600}
readonly DEPLOYMENT=bench12
readonly NETWORK=fitter-bench
readonly PLAN_SRC=bench/bootstrap/mesos-12.yaml
readonly MASTERS=(master1 master2 master3)
readonly AGENTS=(agent1 agent2 agent3 agent4 agent5 agent6 agent7 agent8 agent9)
readonly NODES=("${MASTERS[@]}" "${AGENTS[@]}")
readonly FILES_FIRST="Bootstrap: 114 files uploaded, 3 services restarted, 0 nodes failed."
readonly FILES_NONE="Bootstrap: 0 files uploaded, 0 services restarted, 0 nodes failed."

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
source bench/lib.sh
doc=docs/benchmarks.md
section="## Bootstrap: fitter, ansible-playbook, pyinfra (12 LXD nodes)"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
say() { printf '==> %s\n' "$*" >&2; }

((BASH_VERSINFO[0] >= 5)) || die "needs bash 5"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $(id -u) -eq 0 ]] || die "run as root (scripts/local-cloud.sh and lxc need it)"
for tool in python3 ssh-keygen ssh lxc; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# 1. Not while bench/lxd_deploy.sh runs (it measures LXD on the same 2 cores).
deadline=$((SECONDS + WAIT_LXD_DEPLOY))
while pgrep -f lxd_deploy.sh >/dev/null; do
    ((SECONDS < deadline)) || die "bench/lxd_deploy.sh is still running after ${WAIT_LXD_DEPLOY} s"
    say "waiting: bench/lxd_deploy.sh is running"
    sleep 10
done

# What exists of the deployment, one "kind name status" line each (read with lxc).
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
    if marked(n) or n["name"] == network:
        print("network", n["name"], "-")
for a in lxc("network", "acl", "list"):
    if marked(a) or a["name"].startswith("fitter-" + dep + "-"):
        print("acl", a["name"], "-")
PY
}

say "building: cargo build --release"
cargo build --release --quiet
fitter="$root/target/release/fitter"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain -- src providers templates Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    rev="$rev (with uncommitted changes)"
fi
"$fitter" validate "$PLAN_SRC" >&2

say "local cloud: scripts/local-cloud.sh"
scripts/local-cloud.sh >&2

left=$(leftovers)
[[ -z $left ]] || die "deployment $DEPLOYMENT exists already (not this run's; left alone):"$'\n'"$left"

tmp=$(mktemp -d)
ws=$tmp/ws
mkdir -p "$ws"
plan=$ws/mesos-12.yaml
cp "$PLAN_SRC" "$plan"
key=$ws/key
ssh-keygen -t ed25519 -N '' -q -C "fitter bootstrap bench" -f "$key"
state=$ws/mesos-12.state.json
known_hosts=$state.known_hosts
live=0
cp_dir="" # ansible's ControlPath folder of the current round and tool
close_masters() { # ends the OpenSSH control masters ansible left behind (they live 60 s)
    local s
    [[ -n $cp_dir && -d $cp_dir ]] || return 0
    for s in "$cp_dir"/*; do
        [[ -S $s ]] && ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || true
    done
    cp_dir=""
}

on_exit() {
    local rc=$?
    close_masters || true
    if ((live)); then
        if [[ $KEEP == 1 || $rc != 0 && ${KEEP_ON_FAILURE:-0} == 1 ]]; then
            echo "the nodes are left; remove them with:" >&2
            echo "  $fitter dispose --yes --ssh-key $key $plan" >&2
            trap - EXIT
            exit "$rc"
        fi
        say "disposing of $DEPLOYMENT"
        "$fitter" dispose --yes --ssh-key "$key" "$plan" >&2 || echo "error: dispose failed; see lxc list" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# 2. The nodes, once.
say "creating the 12 nodes: fitter deploy --skip-bootstrap"
live=1
# Untimed, 4 nodes at a time: with 12 at once LXD 5.0.2 now and then refuses a node's file
# push (`dial unix /proc/self/fd/N/forkfile.sock: connect: no such file or directory`), and
# keeps refusing it for that container; a deploy again is tried, as fitter says.
for attempt in 1 2 3; do
    "$fitter" deploy --yes --skip-bootstrap --parallelism 4 --ssh-key "$key" "$plan" >"$ws/create.out" 2>"$ws/create.err" && break
    grep 'failed' "$ws/create.out" "$ws/create.err" >&2 || true
    ((attempt < 3)) || { cat "$ws/create.out" "$ws/create.err" >&2; die "creating the nodes failed"; }
    say "creating the nodes: attempt $attempt failed; deploy again"
done
running=$(leftovers | awk '$1 == "container" && $3 == "Running"' | wc -l)
((running == 12)) || { leftovers >&2; die "expected 12 running containers of $DEPLOYMENT, found $running"; }
"$fitter" information --json --ssh-key "$key" "$plan" >"$ws/info.json"

# The tools, in throwaway virtualenvs.
say "virtualenvs: pip install ansible-core, pyinfra"
python3 -m venv "$tmp/ansible-venv"
"$tmp/ansible-venv/bin/pip" install -q ansible-core >&2
python3 -m venv "$tmp/pyinfra-venv"
"$tmp/pyinfra-venv/bin/pip" install -q pyinfra >&2
ansible_version=$("$tmp/ansible-venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
pyinfra_version=$("$tmp/pyinfra-venv/bin/python" -c 'from importlib.metadata import version; print(version("pyinfra"))')
py_version=$(python3 -c 'import platform; print(platform.python_version())')
openssh_version=$(ssh -V 2>&1 | awk '{ print $1 }' | tr -d ,)

"$tmp/ansible-venv/bin/python" bench/bootstrap/make_inventory.py "$ws/info.json" "$plan" "$key" "$known_hosts" "$ws"

# ansible: its own home, temp and config; default OpenSSH ControlPersist (60 s); host keys
# checked against the state's known_hosts only.
export ANSIBLE_HOME=$tmp/ansible-home ANSIBLE_LOCAL_TEMP=$tmp/ansible-local ANSIBLE_NOCOLOR=1
for forks in 12 5; do
    cat >"$tmp/ansible-$forks.cfg" <<EOF
[defaults]
inventory = $ws/inventory.yml
forks = $forks
host_key_checking = True
interpreter_python = /usr/bin/python3
retry_files_enabled = False

[ssh_connection]
ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$known_hosts -o StrictHostKeyChecking=yes
EOF
done

# Every node back to the clean slate, in parallel.
reset_script='set -e
systemctl stop zookeeper >/dev/null 2>&1 || true
systemctl disable zookeeper >/dev/null 2>&1 || true
orig=/root/bench-bootstrap-orig.tar
[ -f $orig ] || { tar -C / -cpf $orig.tmp etc/hosts etc/zookeeper/conf/zoo.cfg etc/zookeeper/conf/myid etc/default/zookeeper; mv $orig.tmp $orig; }
tar -C / -xpf $orig
rm -rf /var/lib/fitter /etc/mesos /etc/mesos-master /etc/mesos-slave /etc/docker /etc/default/marathon
! systemctl is-active -q zookeeper'
reset_nodes() {
    local n pids=() failed=0 p
    for n in "${NODES[@]}"; do
        lxc exec "$DEPLOYMENT-$n" -- sh -c "$reset_script" </dev/null >"$tmp/reset-$n.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    ((failed == 0)) || { cat "$tmp"/reset-*.log >&2; die "resetting the nodes failed"; }
    sync
    sleep 1
}

# What a node's target files are: "path mode owner:group sha256", sorted; and the state of
# zookeeper. The same listing for every tool. /var/lib/fitter/manifest is left out: it is
# fitter's own record of the files it placed (so that a later run removes what the plan
# drops), which no other tool writes or needs.
snapshot() {
    lxc exec "$DEPLOYMENT-$1" -- sh -c '
for f in $(find /etc/hosts /etc/zookeeper/conf/zoo.cfg /etc/zookeeper/conf/myid /etc/default/zookeeper \
    /etc/mesos /etc/mesos-master /etc/mesos-slave /etc/docker /etc/default/marathon /var/lib/fitter \
    -type f ! -path /var/lib/fitter/manifest 2>/dev/null | sort); do
  printf "%s %s %s\n" "$f" "$(stat -c "%a %U:%G" "$f")" "$(sha256sum "$f" | cut -d" " -f1)"
done' </dev/null
}
zk_state() { # "active enabled" of zookeeper on a node
    lxc exec "$DEPLOYMENT-$1" -- sh -c 'echo "$(systemctl is-active zookeeper 2>/dev/null) $(systemctl is-enabled zookeeper 2>/dev/null)"' </dev/null
}

check_first() { # $1: label. Fails loudly when the nodes are not as fitter leaves them.
    local label=$1 n s
    for n in master1 agent1; do
        snapshot "$n" >"$tmp/snap-$n.now"
        if [[ ! -f $tmp/snap-$n.ref ]]; then
            [[ $label == warmup:fitter ]] || die "no reference for $n"
            cp "$tmp/snap-$n.now" "$tmp/snap-$n.ref"
        elif ! diff -u "$tmp/snap-$n.ref" "$tmp/snap-$n.now" >&2; then
            die "$label: the files on $n differ from what fitter writes (above: - fitter, + $label)"
        fi
    done
    for n in "${MASTERS[@]}"; do
        s=$(zk_state "$n")
        [[ $s == "active enabled" ]] || die "$label: zookeeper on $n is '$s', not 'active enabled'"
    done
    for n in "${AGENTS[@]}"; do
        s=$(zk_state "$n")
        [[ $s != active* ]] || die "$label: zookeeper runs on agent $n"
    done
}

# How busy the host is (percent of all cores, over 2 s, from /proc/stat), just before a
# timed command: other work on the machine (other benchmarks, tests) shows here.
busy() {
    local a b
    a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
    sleep 2
    b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f\n", 100 * (y[1] - x[1]) / (y[2] - x[2]) }'
}

# Waits (at most QUIET_WAIT seconds, default 60) until the host is at most QUIET_MAX %
# busy (default 25) over 2 s, so that other work on the machine (a test suite, a build)
# and the reset's own tail (ZooKeeper's JVM stopping) weigh less on the timed command;
# prints the last reading.
quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-60})) b
    while :; do
        b=$(busy)
        ((b <= ${QUIET_MAX:-25} || SECONDS >= deadline)) && break
    done
    echo "$b"
}

# timed NAME CMD...: runs CMD, output in $tmp/NAME.out/.err; prints "WALL USER SYS" (s).
timed() {
    local name=$1
    shift
    if ! {
        TIMEFORMAT='%3R %3U %3S'
        time "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    } 2>"$tmp/$name.time"; then
        tail -n 40 "$tmp/$name.out" "$tmp/$name.err" >&2
        die "$name failed: $*"
    fi
    cat "$tmp/$name.time"
}

run_fitter() { "$fitter" deploy --yes --ssh-key "$key" "$plan"; }
run_fitter_infra() { "$fitter" deploy --yes --skip-bootstrap --ssh-key "$key" "$plan"; }
run_ansible() { # $1: forks
    ANSIBLE_CONFIG=$tmp/ansible-$1.cfg ANSIBLE_SSH_CONTROL_PATH_DIR=$cp_dir \
        "$tmp/ansible-venv/bin/ansible-playbook" bench/bootstrap/playbook.yml
}
run_pyinfra() {
    (cd "$tmp" && "$tmp/pyinfra-venv/bin/pyinfra" -y --parallel 12 "$ws/inventory.py" "$root/bench/bootstrap/pyinfra/deploy.py")
}

check_nochange() { # $1: tool, $2: output file of its second run
    local tool=$1 out=$2
    case $tool in
    fitter)
        grep -qxF "$FILES_NONE" "$out" || die "fitter's second run changed something: $(grep '^Bootstrap:' "$out")"
        grep -q '^Plan: 0 to add, 0 to change, 0 to destroy\.$' "$out" || die "fitter's second run planned changes"
        ;;
    ansible*)
        python3 - "$out" <<'PY' || die "$tool's second run changed something (see $out)"
import re, sys
hosts = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", open(sys.argv[1]).read(), re.M)
sys.exit(0 if len(hosts) == 12 and all(c == u == f == "0" for _, c, u, f in hosts) else 1)
PY
        ;;
    pyinfra)
        # Every operation "No change", but "ZooKeeper running and enabled": pyinfra reads
        # zookeeper (a System V script under systemd) as not enabled, and enables it again.
        python3 - "$out" "${out%.out}.err" <<'PY' || die "pyinfra's second run changed something (see $out, .err)"
import re, sys
text = "".join(open(p).read() for p in sys.argv[1:]).split("--> Results:")[-1]
rows = re.findall(r"^\s{4}(\S.*?)\s{2,}(\d+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s*$", text, re.M)
bad = [r for r in rows if r[0] != "Grand total" and r[2] != "-" and r[0] != "ZooKeeper running and enabled"]
errors = [r for r in rows if r[3] != "-"]
sys.exit(1 if bad or errors or len(rows) < 20 else 0)
PY
        ;;
    esac
}
check_first_output() { # $1: tool, $2: output file of its first run
    case $1 in
    fitter) grep -qxF "$FILES_FIRST" "$2" || die "fitter's first run: $(grep '^Bootstrap:' "$2" || echo 'no Bootstrap: line')" ;;
    esac
}

tools=(fitter ansible pyinfra)
((FORKS5)) && tools+=(ansible5)
results=$tmp/results # "round tool kind wall user sys"
: >"$results"

one_round() { # $1: round name (warmup, run1, ...)
    local r=$1 tool t
    for tool in "${tools[@]}"; do
        say "$r: $tool: reset"
        reset_nodes
        local cmd=()
        case $tool in
        fitter) cmd=(run_fitter) ;;
        ansible) cmd=(run_ansible 12) ;;
        ansible5) cmd=(run_ansible 5) ;;
        pyinfra) cmd=(run_pyinfra) ;;
        esac
        if [[ $tool == ansible* ]]; then
            cp_dir=$tmp/cp-$r-$tool
            mkdir -p "$cp_dir"
        fi
        local load
        load=$(quiet)
        say "$r: $tool: first run"
        t=$(timed "$r-$tool-first" "${cmd[@]}")
        echo "$r $tool first $t $load" >>"$results"
        check_first_output "$tool" "$tmp/$r-$tool-first.out"
        check_first "$r:$tool"
        say "$r: $tool: no-change run"
        load=$(quiet)
        t=$(timed "$r-$tool-again" "${cmd[@]}")
        echo "$r $tool again $t $load" >>"$results"
        check_nochange "$tool" "$tmp/$r-$tool-again.out"
        if [[ $tool == fitter ]]; then
            t=$(timed "$r-fitter-infra" run_fitter_infra)
            echo "$r fitter infra $t -" >>"$results"
            grep -q '^Plan: 0 to add, 0 to change, 0 to destroy\.$' "$tmp/$r-fitter-infra.out" ||
                die "fitter --skip-bootstrap planned changes"
        fi
        close_masters
        grep " $tool " "$results" | grep "^$r " | sed 's/^/    /' >&2
    done
}

one_round warmup
for ((i = 1; i <= RUNS; i++)); do
    one_round "run$i"
done

# --- report ------------------------------------------------------------------------------
med() { # median wall, user, sys of TOOL KIND over the timed rounds: "W U S"
    awk -v t="$1" -v k="$2" '$1 != "warmup" && $2 == t && $3 == k { print $4, $5, $6 }' "$results" |
        python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print(" ".join(f"{statistics.median(c):.2f}" for c in zip(*rows)) if rows else "nan nan nan")'
}
per_run() { # "a / b / c" of TOOL KIND walls over the timed rounds
    awk -v t="$1" -v k="$2" '$1 != "warmup" && $2 == t && $3 == k { printf "%s%.2f", (n++ ? " / " : ""), $4 }' "$results"
}
read -r f1 f1u f1s < <(med fitter first)
read -r f2 f2u f2s < <(med fitter again)
read -r infra_s _ < <(med fitter infra)
label() {
    case $1 in
    fitter) echo "fitter ${rev%% *}: \`fitter deploy --yes\` (refresh + bootstrap)" ;;
    ansible) echo "ansible-playbook (ansible-core $ansible_version), forks 12" ;;
    ansible5) echo "ansible-playbook (ansible-core $ansible_version), forks 5 (default)" ;;
    pyinfra) echo "pyinfra $pyinfra_version, \`--parallel 12\`" ;;
    esac
}
rows=()
for tool in "${tools[@]}"; do
    read -r a au as < <(med "$tool" first)
    read -r b bu bs < <(med "$tool" again)
    rows+=("$(awk -v l="$(label "$tool")" -v a="$a" -v b="$b" -v f1="$f1" -v f2="$f2" -v au="$au" -v as="$as" -v bu="$bu" -v bs="$bs" -v t="$tool" \
        -v pa="$(per_run "$tool" first)" -v pb="$(per_run "$tool" again)" 'BEGIN {
        r1 = (t == "fitter") ? "1" : sprintf("%.1fx", a / f1); r2 = (t == "fitter") ? "1" : sprintf("%.1fx", b / f2)
        printf "| %s | %.2f | %.2f | %s | %s | %.2f / %.2f | %s | %s |", l, a, b, r1, r2, au + as, bu + bs, pa, pb }')")
done
read -r a1 _ < <(med ansible first)
read -r a2 _ < <(med ansible again)
read -r p1 _ < <(med pyinfra first)
read -r p2 _ < <(med pyinfra again)
verdict=$(awk -v f1="$f1" -v f2="$f2" -v a1="$a1" -v a2="$a2" -v p1="$p1" -v p2="$p2" 'BEGIN {
    ra1 = a1 / f1; ra2 = a2 / f2; rp1 = p1 / f1; rp2 = p2 / f2
    ok = (ra1 >= 10 && ra2 >= 10 && rp1 >= 3 && rp2 >= 3)
    printf "Target (at least 10x faster than ansible-playbook and 3x faster than pyinfra, first run and no-change run): **%s**", ok ? "met" : "NOT met"
    printf " (ansible-playbook forks 12: %.1fx first, %.1fx no change, %s; pyinfra: %.1fx first, %.1fx no change, %s).", \
        ra1, ra2, (ra1 >= 10 && ra2 >= 10) ? "met" : "NOT met", rp1, rp2, (rp1 >= 3 && rp2 >= 3) ? "met" : "NOT met"
}')
loads=$(awk '$1 != "warmup" && $7 != "-" { print $7 }' "$results" | sort -g | awk '{ v[NR] = $1 } END { printf "%s%% to %s%% (median %s%%)", v[1], v[NR], v[int((NR + 1) / 2)] }')
others=$(lxc list --format csv -c n | grep -v "^$DEPLOYMENT-" | paste -sd ' ' || true)

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
hv=$(lscpu 2>/dev/null | awk -F': *' '/^Hypervisor vendor/ { print $2 }')
[[ -n $hv ]] && cpu="$cpu, $hv guest"
lxd_version=$(lxc version 2>/dev/null | awk -F': *' '/^Server version/ { print $2 }')

body=$tmp/section.md
{
    echo "$section"
    echo
    echo "Command: \`RUNS=$RUNS bench/bootstrap_compare.sh\`. The 12 nodes of \`bench/bootstrap/mesos-12.yaml\` (3 masters: ZooKeeper, Mesos"
    echo "master, Marathon; 9 agents: Mesos agent, Docker, a rack attribute; no cloud-config) are created once"
    echo "(\`fitter deploy --skip-bootstrap\`), then each tool in turn brings them from the same clean slate to the same state:"
    echo "11 files on a master, 9 on an agent (114 in all: /etc/hosts, zoo.cfg, myid, /etc/default/zookeeper, /etc/mesos/zk,"
    echo "/etc/mesos-master/*, /etc/default/marathon; /etc/docker/daemon.json, /etc/mesos-slave/*, attributes/rack), ZooKeeper"
    echo "started and enabled on the masters, stopped and disabled on the agents. The reset between tools (untimed, \`lxc exec\`):"
    echo "zookeeper stopped and disabled, /etc/hosts, zoo.cfg, myid and /etc/default/zookeeper put back as the image has them,"
    echo "the Mesos, Marathon and Docker files and /var/lib/fitter removed. After every first run the script checks that"
    echo "master1's and agent1's files (path, mode, owner, sha256) are those fitter writes and that ZooKeeper is active and"
    echo "enabled on the 3 masters; after every second run, that the tool changed nothing. Every check passed."
    echo
    echo "- fitter: \`fitter deploy --yes --ssh-key KEY mesos-12.yaml\` (the nodes exist: refresh from LXD, then bootstrap, one"
    echo "  SSH session per node, 16 at once). Of its time, $infra_s s (median) is not bootstrap: the same command with"
    echo "  \`--skip-bootstrap\` on the same state."
    echo "- ansible-playbook: \`bench/bootstrap/playbook.yml\` (template tasks over Jinja2 copies of the Tera templates, in"
    echo "  \`bench/bootstrap/ansible/templates/\`; a handler restarts ZooKeeper when its files changed), inventory made from"
    echo "  \`fitter information --json\`; \`gather_facts: false\`, \`interpreter_python = /usr/bin/python3\` (no discovery), forks 12"
    echo "  (and the default 5), pipelining off (the default), OpenSSH with the default \`ControlPersist=60s\`: the no-change run"
    echo "  reuses the first run's connections; each first run starts with none. Root login with the key, host keys checked"
    echo "  against the state's known_hosts (\`StrictHostKeyChecking=yes\`)."
    echo "- pyinfra: \`pyinfra -y --parallel 12 inventory.py bench/bootstrap/pyinfra/deploy.py\` (\`files.template\` over the same"
    echo "  Jinja2 templates, \`systemd.service\`; paramiko, host keys checked against the same known_hosts). Its no-change run"
    echo "  still runs \`systemctl enable zookeeper\` on the masters: zookeeper is a System V script under systemd, which pyinfra"
    echo "  reads as not enabled; every other operation reports no change."
    echo
    echo "Versions: ansible-core $ansible_version, pyinfra $pyinfra_version (pip, Python $py_version, throwaway virtualenvs), $openssh_version;"
    echo "$(rustc --version 2>/dev/null || echo rustc); LXD $lxd_version. Machine: $(nproc) cores, $cpu; $(date -u '+%Y-%m-%d %H:%M UTC'); commit $rev."
    echo "Before each timed command the script waits (at most ${QUIET_WAIT:-60} s) for a 2 s stretch with the host at most ${QUIET_MAX:-25}% busy"
    echo "(all cores, \`/proc/stat\`): other sessions build and test on the same machine. The last reading before each was $loads."
    [[ -z $others ]] || echo "Other containers on the host at the end: $others."
    echo
    echo "Wall time of the tool's command alone (bash's \`time\`), median of $RUNS rounds after one warm-up round; ratio = tool / fitter:"
    echo
    echo "| tool | first run (s) | no-change run (s) | ratio, first | ratio, no change | its own CPU, first / no change (s) | first, per round (s) | no change, per round (s) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "$verdict"
    echo
    echo "What to keep in mind:"
    echo
    echo "- One $(nproc)-core machine runs the tool and all 12 nodes: what a tool makes the nodes do (ansible's Python modules,"
    echo "  pyinfra's shell commands and fact gathering, sshd and PAM for every login) competes with the tool for the same CPU."
    echo "  On real machines that work runs on 12 other hosts, which would help ansible and pyinfra more than fitter (one"
    echo "  small shell script per step on a node). The other way round, the nodes are a bridge away (no network latency):"
    echo "  over a real network every round trip costs more, and ansible (per file a stat module, and a copy module when it"
    echo "  differs, each several SSH operations with pipelining off) and pyinfra (facts, then a command or an upload per"
    echo "  file) make many more round trips than fitter (at most four commands per node, two when nothing changes)."
    echo "- ansible with forks 5 is about as slow as with forks 12: the CPU is the limit here, not the number of forks."
    echo "- ansible's no-change run reuses the first run's SSH connections (\`ControlPersist=60s\`); with cold connections it"
    echo "  would be slower. fitter and pyinfra open new connections on every run."
    echo "- All three restart ZooKeeper (a JVM) on the 3 masters in the first run; fitter's first run also refreshes the"
    echo "  deployment from LXD (the \`--skip-bootstrap\` time above)."
    echo "- ansible-core 2.19 writes a template that is a single integer expression (\`{{ n }}\` + newline) without its"
    echo "  newline; myid.j2 and mesos-quorum.j2 pipe through \`| string\` so that the files are byte-identical to fitter's."
    echo "- The plan sets \`derive_firewall: false\`: when it was written (64236a2) the rules fitter derived from the"
    echo "  components' ports held duplicates that LXD refused for the masters' ACL (\`Duplicate of ingress rule\`); 90e04cb"
    echo "  made them unique. The firewall plays no part in bootstrap."
} >"$body"

cat "$body"

write_section "$doc" "$body" "$section"
say "wrote $doc"

# 5. Dispose, and check that nothing is left.
if [[ $KEEP != 1 ]]; then
    say "disposing of $DEPLOYMENT"
    "$fitter" dispose --yes --ssh-key "$key" "$plan" >"$tmp/dispose.out" 2>&1 ||
        { cat "$tmp/dispose.out" >&2; die "dispose failed"; }
    live=0
    left=$(leftovers)
    [[ -z $left ]] || die "after dispose, left:"$'\n'"$left"
    say "nothing of $DEPLOYMENT is left (lxc list, lxc network list, lxc network acl list)"
fi
