#!/usr/bin/env bash
# Prepares this machine to run fitter's LXD provider: packages, the LXD daemon, a storage
# pool and profile named `fitter`, and the node image `fitter-debian-12`.
#
#   scripts/local-cloud.sh           set up whatever is missing (fast when all is there)
#   scripts/local-cloud.sh --check   only report; exit 0 when everything is in place, else 1
#   scripts/local-cloud.sh --smoke   set up, then boot a throwaway node and SSH into it
#
# Idempotent: every step looks first and acts only when something is missing. Written for
# Debian 12 as root on machines without an init system (the daemon is started by hand).
# Details, timings and pitfalls: docs/local-cloud.md.
#
# Environment:
#   FITTER_DEBIAN_MIRROR   Debian mirror for the image (default: the one apt uses here)
#   FITTER_CACHE           image cache (default /var/cache/fitter)
#   FITTER_POOL_SIZE       size of the loop-backed btrfs pool (default 15GiB)
set -euo pipefail

readonly IMAGE_ALIAS=fitter-debian-12
readonly POOL=fitter
readonly PROFILE=fitter
readonly SUITE=bookworm
readonly SOCKET=/var/lib/lxd/unix.socket
readonly LXD_LOG=/var/log/fitter-lxd.log
readonly CACHE=${FITTER_CACHE:-/var/cache/fitter}
readonly POOL_SIZE=${FITTER_POOL_SIZE:-15GiB}
# Packages of the machine running the tests (man-db: tests/cli_conventions.rs reads `fitter man` with `man -l`).
readonly HOST_PACKAGES=(lxd lxd-client nftables iptables dnsmasq-base debootstrap btrfs-progs
  openssh-client curl man-db)
# Installed by debootstrap itself (small, dependency-simple).
readonly IMAGE_BASE_PACKAGES=(systemd-sysv openssh-server iproute2 ca-certificates python3
  netcat-openbsd procps iputils-ping)
# Installed afterwards with apt inside the chroot (debootstrap's resolver handles neither
# virtual packages nor alternatives well, and apt also brings security updates).
# udev: without it systemd-networkd leaves every link "pending" (LXD mounts /sys read-write,
# so networkd waits for a udev that never comes) and the static address is never set.
# docker.io: the engine for nodes with the docker role (started only there, in containers
# with LXD nesting); busybox-static: the one binary of the tiny root file system below.
readonly IMAGE_EXTRA_PACKAGES=(udev dbus openjdk-17-jre-headless zookeeper zookeeperd docker.io
  busybox-static)

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

mode=setup
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --smoke) mode=smoke ;;
  -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--check | --smoke]" >&2; exit 2 ;;
esac

say() { printf '==> %s\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

missing=0 # --check: number of things not in place
need() { # --check: report something missing
  printf '    missing: %s\n' "$*"
  missing=$((missing + 1))
}

[[ $(id -u) -eq 0 ]] || die "run as root"

# One run at a time.
exec 9>/run/fitter-local-cloud.lock
flock -n 9 || { say "another run holds /run/fitter-local-cloud.lock; waiting"; flock 9; }

# --- 1. packages ---------------------------------------------------------------------------

missing_packages() {
  local p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
      printf '%s\n' "$p"
  done
}

ensure_packages() {
  local t todo
  t=$(now)
  mapfile -t todo < <(missing_packages)
  if ((${#todo[@]} == 0)); then
    ok "packages: ${HOST_PACKAGES[*]}"
    return
  fi
  if [[ $mode == check ]]; then
    need "packages: ${todo[*]}"
    return
  fi
  say "apt-get update (missing: ${todo[*]})"
  apt-get update -q
  say "apt-get install ${todo[*]}"
  apt-get install -y -q --no-install-recommends "${todo[@]}"
  ok "packages installed in $(elapsed "$t")"
}

# --- 2. the daemon -------------------------------------------------------------------------

lxd_running() { curl -s -f -m 5 --unix-socket "$SOCKET" http://lxd/1.0 >/dev/null 2>&1; }

# Every container runs systemd, udev and dbus, each holding inotify instances of the host's
# root user: with the kernel's default of 128, the 13th to 17th container found none left
# ("Too many open files") and never finished booting. LXD's production notes raise these.
ensure_inotify_limits() {
  local key want have
  for pair in fs.inotify.max_user_instances=1024 fs.inotify.max_user_watches=1048576; do
    key=${pair%%=*}
    want=${pair#*=}
    have=$(sysctl -n "$key")
    if ((have >= want)); then
      ok "$key = $have"
    elif [[ $mode == check ]]; then
      need "$key = $have (want $want)"
    else
      sysctl -qw "$key=$want"
      ok "$key = $want (was $have)"
    fi
  done
}

ensure_daemon() {
  local t
  if lxd_running; then
    ok "LXD daemon answers on $SOCKET"
    return
  fi
  if [[ $mode == check ]]; then
    need "LXD daemon (nothing answers on $SOCKET)"
    return
  fi
  command -v lxd >/dev/null || die "lxd is not installed"
  say "starting the LXD daemon (log: $LXD_LOG)"
  t=$(now)
  # No init system here: run it in the background, detached from this script's session.
  # (9>&-: the daemon must not inherit, and so hold forever, this script's lock.)
  setsid nohup lxd --group root >>"$LXD_LOG" 2>&1 </dev/null 9>&- &
  if ! lxd waitready --timeout 60; then
    tail -n 30 "$LXD_LOG" >&2 || true
    die "LXD did not become ready within 60 s"
  fi
  lxd_running || die "LXD is up but its REST API does not answer on $SOCKET"
  ok "LXD ready in $(elapsed "$t")"
}

# --- 3. storage pool and profiles ----------------------------------------------------------

ensure_pool() {
  local driver
  driver=$(pool_driver)
  if [[ -n $driver ]]; then
    ok "storage pool $POOL ($driver)"
    [[ $driver == btrfs ]] || warn "pool $POOL is $driver, not btrfs: every launch unpacks the whole image"
    return
  fi
  if [[ $mode == check ]]; then
    need "storage pool $POOL"
    return
  fi
  say "creating storage pool $POOL (btrfs, loop-backed, $POOL_SIZE)"
  if lxc storage create "$POOL" btrfs size="$POOL_SIZE"; then
    ok "storage pool $POOL (btrfs)"
    return
  fi
  warn "btrfs pool failed; falling back to a dir pool (every container then unpacks the whole image)"
  lxc storage delete "$POOL" >/dev/null 2>&1 || true
  lxc storage create "$POOL" dir
  ok "storage pool $POOL (dir)"
}

pool_driver() { lxc storage show "$POOL" 2>/dev/null | awk '$1 == "driver:" { print $2 }' || true; }

# Prints the devices of a profile as "name type pool" lines.
profile_devices() {
  lxc profile show "$1" 2>/dev/null | awk '
    /^devices:/ { d = 1; next }
    d && /^[^ ]/ { d = 0 }
    d && /^  [^ ]/ { if (name != "") print name, type, pool; name = $1; sub(/:$/, "", name); type = "-"; pool = "-"; next }
    d && /^    type:/ { type = $2 }
    d && /^    pool:/ { pool = $2 }
    END { if (name != "") print name, type, pool }'
}

ensure_profile() {
  local devs root_pool nics nic
  if ! lxc profile show "$PROFILE" >/dev/null 2>&1; then
    if [[ $mode == check ]]; then
      need "profile $PROFILE"
      return
    fi
    say "creating profile $PROFILE"
    lxc profile create "$PROFILE" 2>&1 | grep -v 'already exists' || true
    lxc profile set "$PROFILE" user.fitter "managed by scripts/local-cloud.sh"
  fi
  devs=$(profile_devices "$PROFILE")
  root_pool=$(awk '$1 == "root" && $2 == "disk" { print $3 }' <<<"$devs")
  if [[ $root_pool != "$POOL" ]]; then
    if [[ $mode == check ]]; then
      need "profile $PROFILE: root disk on pool $POOL"
    elif [[ -z $root_pool ]]; then
      say "profile $PROFILE: adding root disk on pool $POOL"
      lxc profile device add "$PROFILE" root disk path=/ pool="$POOL"
    else
      say "profile $PROFILE: moving root disk from pool $root_pool to $POOL"
      lxc profile device set "$PROFILE" root pool="$POOL"
    fi
  fi
  # No nic: the provider attaches each container to its deployment's own bridge.
  nics=$(awk '$2 == "nic" { print $1 }' <<<"$devs")
  for nic in $nics; do
    if [[ $mode == check ]]; then
      need "profile $PROFILE: has nic $nic (it must have none)"
    else
      say "profile $PROFILE: removing nic $nic"
      lxc profile device remove "$PROFILE" "$nic"
    fi
  done
  [[ $mode == check && $root_pool != "$POOL" ]] || ok "profile $PROFILE: root disk on pool $POOL, no nic"
}

ensure_default_profile() {
  local root_pool
  root_pool=$(profile_devices default | awk '$1 == "root" && $2 == "disk" { print $3 }')
  if [[ -n $root_pool ]]; then
    ok "profile default: root disk on pool $root_pool"
    [[ $root_pool == "$POOL" ]] || warn "profile default uses pool $root_pool; left as it is"
    return
  fi
  if [[ $mode == check ]]; then
    need "profile default: root disk"
    return
  fi
  say "profile default: adding root disk on pool $POOL"
  lxc profile device add default root disk path=/ pool="$POOL"
}

# --- 4. the node image ---------------------------------------------------------------------

# The Debian mirror apt uses here: the first enabled "deb" source carrying $SUITE itself.
# Reads one-line sources.list files and deb822 .sources files. $1: suite.
apt_mirror() {
  local suite=$1 f
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [[ -f $f ]] || continue
      # deb [options] URI SUITE COMPONENTS...
      sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v s="$suite" '$1 == "deb" && $3 == s { print $2 }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] || continue
      awk -v s="$suite" '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " s " ")) {
            n = split(uris, u, " "); for (i = 1; i <= n; i++) print u[i]
          }
          types = ""; uris = ""; suites = ""; enabled = ""
        }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        tolower($1) == "types:" { $1 = ""; types = $0 }
        tolower($1) == "uris:" { $1 = ""; uris = $0 }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        tolower($1) == "enabled:" { enabled = tolower($2) }
        END { flush() }' "$f"
    done
  } | head -n 1
}

# Apt's proxy for a scheme (http, https), if it has one.
apt_proxy() {
  local v
  v=$(apt-config dump "Acquire::$1::Proxy" 2>/dev/null | awk -v k="Acquire::$1::Proxy" '$1 == k { gsub(/[";]/, "", $2); print $2 }')
  [[ -n $v && ${v,,} != direct && $v != false ]] && printf '%s\n' "$v" || true
}

image_arch() { uname -m; } # LXD's architecture names are the kernel's (x86_64, aarch64)

CHROOT_MOUNTS=()
chroot_mount() { # $1 dir
  local m
  for m in proc sys dev dev/pts; do
    mountpoint -q "$1/$m" && continue
    case $m in
      proc) mount -t proc proc "$1/proc" ;;
      sys) mount -t sysfs sysfs "$1/sys" ;;
      dev) mount --bind /dev "$1/dev" ;;
      dev/pts) mount -t devpts devpts "$1/dev/pts" ;;
    esac
    CHROOT_MOUNTS=("$1/$m" "${CHROOT_MOUNTS[@]}")
  done
}
chroot_umount() {
  local m
  for m in "${CHROOT_MOUNTS[@]}"; do
    umount -l "$m" 2>/dev/null || true
  done
  CHROOT_MOUNTS=()
}

# The recipe. Its own text (declare -f), with the package lists, makes the cache key: change
# anything here and the next run rebuilds the image. $1: target dir, $2: mirror,
# $3: security mirror (may be empty).
build_rootfs() {
  local dir=$1 mirror=$2 security=$3
  debootstrap --variant=minbase --include="$(IFS=,; echo "${IMAGE_BASE_PACKAGES[*]}")" \
    "$SUITE" "$dir" "$mirror"

  # apt inside: the same mirror (and the machine's proxy and date settings, for the build only).
  {
    echo "deb $mirror $SUITE main"
    echo "deb $mirror $SUITE-updates main"
    [[ -z $security ]] || echo "deb $security $SUITE-security main"
  } >"$dir/etc/apt/sources.list"
  {
    [[ -z ${http_proxy:-} ]] || echo "Acquire::http::Proxy \"$http_proxy\";"
    [[ -z ${https_proxy:-} ]] || echo "Acquire::https::Proxy \"$https_proxy\";"
    echo 'Acquire::Check-Valid-Until "false";' # snapshot mirrors serve old Release files
    echo 'Acquire::Languages "none";'
  } >"$dir/etc/apt/apt.conf.d/99fitter-build"
  # Keep the image small, now and for packages the bootstrap installs later.
  cat >"$dir/etc/dpkg/dpkg.cfg.d/01fitter-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$dir/etc/apt/apt.conf.d/01fitter-norecommends"
  # No service may start inside the chroot (zookeeperd would launch a JVM here).
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"

  chroot_mount "$dir"
  chroot "$dir" apt-get update -q
  chroot "$dir" apt-get dist-upgrade -y -q
  # Debian's zookeeper depends on default-jre, the full JRE with GTK, Mesa and LLVM (~350 MB
  # unpacked) that no node uses: an empty local default-jre that needs only the headless JRE
  # stands in for it, held so that apt keeps it.
  mkdir -p "$dir/tmp/default-jre/DEBIAN"
  cat >"$dir/tmp/default-jre/DEBIAN/control" <<'EOF'
Package: default-jre
Version: 2:1.17-74+fitter1
Architecture: all
Maintainer: fitter <fitter@localhost>
Depends: openjdk-17-jre-headless
Section: java
Priority: optional
Description: stand-in for default-jre: fitter nodes need only the headless JRE
EOF
  chroot "$dir" dpkg-deb --build /tmp/default-jre /tmp/default-jre.deb
  chroot "$dir" apt-get install -y -q --no-install-recommends /tmp/default-jre.deb "${IMAGE_EXTRA_PACKAGES[@]}"
  chroot "$dir" apt-mark hold default-jre
  chroot "$dir" apt-get clean
  chroot_umount

  # Customisation.
  rm -f "$dir"/etc/ssh/ssh_host_* # fitter pushes each node's own host key before first boot
  : >"$dir/etc/machine-id"         # fitter pushes a fresh one per container
  rm -f "$dir/var/lib/dbus/machine-id"
  chroot "$dir" systemctl enable systemd-networkd.service # fitter pushes a static .network
  chroot "$dir" systemctl disable zookeeper.service       # fitter's bootstrap starts it
  # Docker runs only on nodes with the docker role, started by fitter's bootstrap.
  chroot "$dir" systemctl disable docker.service docker.socket containerd.service
  # No registry is reachable from the nodes: a root file system for `docker import`, a
  # static busybox and a page, so a node can run a container of its own (an HTTP server:
  # `docker import /usr/share/fitter/busybox-rootfs.tar fitter/busybox`).
  local rootfs=$dir/tmp/busybox-rootfs
  install -d "$rootfs/bin" "$rootfs/www" "$dir/usr/share/fitter"
  install -m 755 "$dir/bin/busybox" "$rootfs/bin/busybox"
  ln -s busybox "$rootfs/bin/sh"
  echo 'served by a container on a fitter node' >"$rootfs/www/index.html"
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$dir/usr/share/fitter/busybox-rootfs.tar" .
  # Cannot work in an unprivileged container; failed, it leaves every node "degraded".
  chroot "$dir" systemctl mask systemd-binfmt.service
  # networkd manages no link here (fitter-node.service sets the address), so its
  # wait-online waited out its 2 minutes before anything ordered after network-online.target
  # (docker.service) could start; fitter-node.service orders itself before that target.
  chroot "$dir" systemctl mask systemd-networkd-wait-online.service
  sed -i -E -e 's/^#?[[:space:]]*PermitRootLogin[[:space:]].*/PermitRootLogin prohibit-password/' \
    -e 's/^#?[[:space:]]*PasswordAuthentication[[:space:]].*/PasswordAuthentication no/' \
    "$dir/etc/ssh/sshd_config"
  grep -q '^PermitRootLogin prohibit-password$' "$dir/etc/ssh/sshd_config" ||
    echo 'PermitRootLogin prohibit-password' >>"$dir/etc/ssh/sshd_config"
  grep -q '^PasswordAuthentication no$' "$dir/etc/ssh/sshd_config" ||
    echo 'PasswordAuthentication no' >>"$dir/etc/ssh/sshd_config"
  install -d -m 700 "$dir/root/.ssh"
  : >"$dir/etc/resolv.conf" # debootstrap copied the build machine's
  echo localhost >"$dir/etc/hostname"
  rm -f "$dir/etc/apt/apt.conf.d/99fitter-build" "$dir/usr/sbin/policy-rc.d"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/tmp/* "$dir"/var/tmp/* \
    "$dir"/usr/share/doc/*/changelog* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
}

# LXD split image: metadata (with hostname templates) and rootfs tarballs. $1 rootfs dir,
# $2 output dir.
pack_image() {
  local dir=$1 out=$2 meta
  meta=$(mktemp -d)
  mkdir -p "$meta/templates"
  cat >"$meta/metadata.yaml" <<EOF
architecture: $(image_arch)
creation_date: $(date +%s)
properties:
  os: debian
  release: $SUITE
  architecture: $(image_arch)
  description: fitter node, Debian 12 ($SUITE) minbase with systemd, sshd, OpenJDK 17, ZooKeeper
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
EOF
  printf '{{ container.name }}\n' >"$meta/templates/hostname.tpl"
  printf '127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n::1 localhost ip6-localhost ip6-loopback\n' \
    >"$meta/templates/hosts.tpl"
  tar --numeric-owner -C "$meta" -czf "$out/meta.tar.gz" metadata.yaml templates
  rm -rf "$meta"
  tar --numeric-owner --xattrs --acls -C "$dir" -czf "$out/rootfs.tar.gz" .
}

recipe_hash() {
  {
    declare -f build_rootfs pack_image
    declare -p IMAGE_BASE_PACKAGES IMAGE_EXTRA_PACKAGES SUITE
    image_arch
  } | sha256sum | cut -c1-16
}

image_fingerprint() { cat "$1/meta.tar.gz" "$1/rootfs.tar.gz" | sha256sum | cut -d' ' -f1; }

ensure_image_cache() {
  local hash dir tmp mirror security t
  hash=$(recipe_hash)
  dir=$CACHE/image/$hash
  IMAGE_DIR=$dir
  if [[ -f $dir/fingerprint && -f $dir/meta.tar.gz && -f $dir/rootfs.tar.gz ]]; then
    ok "image cached: $dir ($(du -sh "$dir/rootfs.tar.gz" | cut -f1) rootfs)"
    return
  fi
  if [[ $mode == check ]]; then
    need "image cache $dir (recipe $hash)"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed"
  mirror=${FITTER_DEBIAN_MIRROR:-$(apt_mirror "$SUITE")}
  mirror=${mirror:-http://deb.debian.org/debian}
  security=$(apt_mirror "$SUITE-security")
  http_proxy=${http_proxy:-$(apt_proxy http)}
  https_proxy=${https_proxy:-$(apt_proxy https)}
  [[ -z $http_proxy ]] || export http_proxy
  [[ -z $https_proxy ]] || export https_proxy
  say "building image (recipe $hash) from $mirror${security:+ and $security}${http_proxy:+ via proxy $http_proxy}"
  mkdir -p "$CACHE/image"
  tmp=$(mktemp -d "$CACHE/image/build.XXXXXX")
  BUILD_TMP=$tmp
  t=$(now)
  build_rootfs "$tmp/rootfs" "$mirror" "$security"
  ok "rootfs built in $(elapsed "$t") ($(du -sh "$tmp/rootfs" | cut -f1))"
  t=$(now)
  mkdir -p "$tmp/out"
  pack_image "$tmp/rootfs" "$tmp/out"
  image_fingerprint "$tmp/out" >"$tmp/out/fingerprint"
  ok "packed in $(elapsed "$t"): meta $(du -h "$tmp/out/meta.tar.gz" | cut -f1), rootfs $(du -h "$tmp/out/rootfs.tar.gz" | cut -f1)"
  rm -rf "$dir"
  mv "$tmp/out" "$dir"
  rm -rf "$tmp"
  BUILD_TMP=
  # Older recipes' tarballs are of no further use.
  find "$CACHE/image" -mindepth 1 -maxdepth 1 -type d ! -name "$hash" -exec rm -rf {} +
}

# Fingerprint of the image an alias points at, empty if none.
alias_fingerprint() {
  lxc image alias list -f csv 2>/dev/null | awk -F, -v a="$1" '$1 == a { print $2 }'
}

ensure_image_imported() {
  local want have_short have t
  if [[ ! -f ${IMAGE_DIR:-}/fingerprint ]]; then
    [[ $mode != check ]] || need "image $IMAGE_ALIAS (not built)"
    return 0
  fi
  want=$(cat "$IMAGE_DIR/fingerprint")
  have_short=$(alias_fingerprint "$IMAGE_ALIAS")
  have=
  [[ -z $have_short ]] || have=$(lxc image info "$IMAGE_ALIAS" | awk '$1 == "Fingerprint:" { print $2 }')
  if [[ $have == "$want" ]]; then
    ok "image $IMAGE_ALIAS (${want:0:12})"
    return
  fi
  if [[ $mode == check ]]; then
    need "image $IMAGE_ALIAS at ${want:0:12}${have:+ (alias points at ${have:0:12})}"
    return
  fi
  t=$(now)
  if lxc image info "$want" >/dev/null 2>&1; then
    ok "image ${want:0:12} already in the store"
  else
    say "importing image ${want:0:12}"
    lxc image import "$IMAGE_DIR/meta.tar.gz" "$IMAGE_DIR/rootfs.tar.gz"
  fi
  if [[ -n $have ]]; then
    say "moving alias $IMAGE_ALIAS from ${have:0:12} to ${want:0:12}"
    lxc image alias delete "$IMAGE_ALIAS"
    lxc image alias create "$IMAGE_ALIAS" "$want"
    # Containers keep their own copy; the old image itself is no longer needed.
    lxc image delete "$have" || warn "could not delete old image ${have:0:12}"
  else
    lxc image alias create "$IMAGE_ALIAS" "$want"
  fi
  ok "image $IMAGE_ALIAS (${want:0:12}) in $(elapsed "$t")"
}

# --- 6. smoke test -------------------------------------------------------------------------

readonly SMOKE_CT=fitter-smoke SMOKE_NET=fitsmoke0
readonly SMOKE_GW=10.250.250.1 SMOKE_IP=10.250.250.10

smoke_cleanup() {
  lxc delete -f "$SMOKE_CT" >/dev/null 2>&1 || true
  lxc network delete "$SMOKE_NET" >/dev/null 2>&1 || true
  [[ -z ${SMOKE_TMP:-} ]] || rm -rf "$SMOKE_TMP"
}

smoke() {
  local t0 t k ssh_opts out deadline
  t0=$(now)
  say "smoke test: $SMOKE_CT on $SMOKE_NET ($SMOKE_IP)"
  smoke_cleanup # leftovers of an interrupted run
  if ip -4 -o addr show | grep -q ' 10\.250\.250\.'; then
    die "10.250.250.0/24 is already in use on this machine"
  fi
  SMOKE_TMP=$(mktemp -d)
  k=$SMOKE_TMP
  ssh-keygen -q -t ed25519 -N '' -C "$SMOKE_CT host" -f "$k/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C "fitter smoke operator" -f "$k/operator"
  echo "$SMOKE_IP $(cut -d' ' -f1,2 "$k/ssh_host_ed25519_key.pub")" >"$k/known_hosts"
  tr -d '-' </proc/sys/kernel/random/uuid >"$k/machine-id"
  cat >"$k/10-eth0.network" <<EOF
[Match]
Name=eth0

[Network]
Address=$SMOKE_IP/24
Gateway=$SMOKE_GW
EOF

  t=$(now)
  lxc network create "$SMOKE_NET" ipv4.address="$SMOKE_GW/24" ipv4.nat=false ipv6.address=none
  lxc init -q "$IMAGE_ALIAS" "$SMOKE_CT" --profile "$PROFILE" --network "$SMOKE_NET"
  lxc file push -q --uid 0 --gid 0 --mode 0644 "$k/10-eth0.network" "$SMOKE_CT/etc/systemd/network/10-eth0.network"
  lxc file push -q --uid 0 --gid 0 --mode 0600 "$k/ssh_host_ed25519_key" "$SMOKE_CT/etc/ssh/ssh_host_ed25519_key"
  lxc file push -q --uid 0 --gid 0 --mode 0644 "$k/ssh_host_ed25519_key.pub" "$SMOKE_CT/etc/ssh/ssh_host_ed25519_key.pub"
  lxc file push -q --uid 0 --gid 0 --mode 0444 "$k/machine-id" "$SMOKE_CT/etc/machine-id"
  lxc file push -q --uid 0 --gid 0 --mode 0600 "$k/operator.pub" "$SMOKE_CT/root/.ssh/authorized_keys"
  ok "created and files pushed in $(elapsed "$t")"
  t=$(now)
  lxc start "$SMOKE_CT"
  ok "started in $(elapsed "$t")"

  ssh_opts=(-n -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=yes
    -o UserKnownHostsFile="$k/known_hosts" -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR
    -i "$k/operator")
  t=$(now)
  deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    ssh "${ssh_opts[@]}" "root@$SMOKE_IP" true 2>/dev/null && break
    sleep 0.3
  done
  if ! ssh "${ssh_opts[@]}" "root@$SMOKE_IP" true; then
    lxc exec "$SMOKE_CT" -- sh -c 'ip -4 addr; systemctl --failed --no-pager; journalctl -b -u ssh -u systemd-networkd --no-pager | tail -n 30' </dev/null || true
    die "smoke: no SSH to root@$SMOKE_IP with the pinned host key"
  fi
  ok "ssh root@$SMOKE_IP true (host key pinned) after $(elapsed "$t") from start"

  out=$(ssh "${ssh_opts[@]}" "root@$SMOKE_IP" '
    set -e
    java -version 2>&1 | head -n 1
    zk=$(ls /usr/share/zookeeper/bin/zkServer.sh 2>/dev/null || command -v zkServer.sh)
    test -x "$zk" && echo "zkServer.sh: $zk"
    echo "machine-id: $(cat /etc/machine-id)"
    echo "hostname: $(hostname)"
    echo "zookeeper at boot: $(systemctl is-enabled zookeeper 2>/dev/null || true), $(systemctl is-active zookeeper 2>/dev/null || true)"
    echo "system: $(timeout 30 systemctl is-system-running --wait 2>/dev/null || true)"
    echo "disk: $(du -sxh / 2>/dev/null | cut -f1)"') || die "smoke: checks inside the node failed: $out"
  printf '    %s\n' "${out//$'\n'/$'\n'    }"
  grep -q '^openjdk version "17' <<<"$out" || die "smoke: java 17 not found"
  grep -q '^zkServer.sh: ' <<<"$out" || die "smoke: zkServer.sh not found"
  grep -q "^machine-id: $(cat "$k/machine-id")\$" <<<"$out" || die "smoke: machine-id is not the pushed one"
  grep -q '^zookeeper at boot: disabled, inactive$' <<<"$out" || die "smoke: zookeeper must not start at boot"
  if ! grep -q '^system: running$' <<<"$out"; then
    ssh "${ssh_opts[@]}" "root@$SMOKE_IP" systemctl --failed --no-pager || true
    die "smoke: systemd is not in state running"
  fi

  t=$(now)
  smoke_cleanup
  SMOKE_TMP=
  ok "cleaned up in $(elapsed "$t")"
  say "smoke test passed in $(elapsed "$t0")"
}

# --- main ----------------------------------------------------------------------------------

BUILD_TMP=
SMOKE_TMP=
IMAGE_DIR=
on_exit() {
  local rc=$?
  chroot_umount
  [[ -z $BUILD_TMP ]] || rm -rf "$BUILD_TMP"
  if [[ -n $SMOKE_TMP ]]; then smoke_cleanup; fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

start=$(now)
say "packages"
ensure_packages
if [[ $mode == check ]] && ! command -v lxc >/dev/null; then
  need "everything LXD (not installed)"
  exit 1
fi
say "kernel limits"
ensure_inotify_limits
say "LXD daemon"
ensure_daemon
if [[ $mode == check ]] && ! lxd_running; then
  exit 1
fi
say "storage pool, profiles"
ensure_pool
ensure_profile
ensure_default_profile
say "node image $IMAGE_ALIAS"
ensure_image_cache
ensure_image_imported

if [[ $mode == check ]]; then
  if ((missing > 0)); then
    say "$missing thing(s) missing; run $0 to set them up"
    exit 1
  fi
  say "everything in place ($(elapsed "$start"))"
  exit 0
fi
say "local cloud ready in $(elapsed "$start"): pool $POOL ($(pool_driver)), profile $PROFILE, image $IMAGE_ALIAS"
[[ $mode != smoke ]] || smoke
