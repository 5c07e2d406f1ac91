#!/usr/bin/env bash
# Prepares this machine's PostgreSQL for fitter's PostgreSQL state backend and its tests:
# Debian's `postgresql` package, the cluster `<version> main` running on 127.0.0.1:5432 with
# TLS (a private CA and a certificate for `localhost`), a role `fitter` (LOGIN CREATEDB) with
# a password generated once, a database `fitter` it owns, and ~/.pgpass lines for it.
#
#   scripts/local-postgres.sh   set up whatever is missing; print the connection URL last
#
# The last line of stdout is the URL, without the password:
#   postgresql://fitter@127.0.0.1:5432/fitter
# Everything else (progress, apt's output) goes to stderr.
#
# Idempotent: every step looks first and acts only when something is missing or wrong, so a
# second run changes nothing and takes well under a second (0.3 s here). Written for Debian 12
# as root on machines without an init system: the cluster is started with pg_ctlcluster, not
# systemctl.
# The tests (tests/support/postgres.rs) call it once per test process.
#
# Files it keeps (documented places the tests read):
#   /etc/fitter/postgres-password   the role's password (mode 0600)
#   /etc/fitter/postgres-ca.crt     the CA that signed the server certificate (readable by all)
#
# Connect with, for example:
#   PGPASSWORD=$(cat /etc/fitter/postgres-password) psql postgresql://fitter@127.0.0.1:5432/fitter
#   psql "postgresql://fitter@localhost:5432/fitter?sslmode=verify-full&sslrootcert=/etc/fitter/postgres-ca.crt"
set -euo pipefail

readonly ROLE=fitter
readonly DATABASE=fitter
readonly PORT=5432
readonly CLUSTER=main
readonly FITTER_ETC=/etc/fitter
readonly PASSWORD_FILE=$FITTER_ETC/postgres-password
readonly CA_LINK=$FITTER_ETC/postgres-ca.crt
readonly URL="postgresql://$ROLE@127.0.0.1:$PORT/$DATABASE"
readonly START_TIMEOUT=60 # seconds to wait for the server to accept connections

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C
# pg_ctlcluster hands start/stop to systemctl when it sees /run/systemd/system; containers
# may have that directory without systemd running, so always drive the cluster directly.
export _SYSTEMCTL_SKIP_REDIRECT=1

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root"

# One run at a time: test processes start in parallel and each calls this script. Commands
# that may leave a daemon behind run with fd 9 closed (9>&-): a postmaster that inherited it
# would hold the lock for as long as it runs, and every later run would wait forever.
exec 9>/run/fitter-local-postgres.lock
flock -n 9 || { say "another run holds /run/fitter-local-postgres.lock; waiting"; flock 9; }

# Runs a command as the postgres user from /, which it can read (the caller's working
# directory often is not, and PostgreSQL's tools complain about it).
as_postgres() { (cd / && runuser -u postgres -- "$@"); }

# SQL as the superuser over the cluster's Unix socket (peer authentication); -At prints bare
# values, one row a line.
su_psql() { as_postgres psql -X -q -At -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }

# --- 1. packages ---------------------------------------------------------------------------

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

packages=()
installed postgresql || packages+=(postgresql)
installed openssl || packages+=(openssl)
if ((${#packages[@]})); then
  say "installing ${packages[*]} (Debian packages)"
  # On a machine without an init system the package's postinst creates the cluster but
  # cannot start it (invoke-rc.d fails or policy-rc.d denies it); step 2 starts it.
  if ! apt-get install -y -q --no-install-recommends "${packages[@]}" >&2 9>&-; then
    say "apt-get install failed; updating the package lists and trying again"
    apt-get update -q >&2 9>&-
    apt-get install -y -q --no-install-recommends "${packages[@]}" >&2 9>&-
  fi
fi

# --- 2. the cluster ------------------------------------------------------------------------

version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null |
  grep -E '^[0-9]+$' | sort -n | tail -n 1 || true)
[[ -n $version && -x /usr/lib/postgresql/$version/bin/postgres ]] ||
  die "no PostgreSQL server under /usr/lib/postgresql"
readonly CONF_DIR=/etc/postgresql/$version/$CLUSTER
readonly TLS_DIR=$CONF_DIR/fitter-tls
readonly TLS_CONF=$CONF_DIR/conf.d/fitter-tls.conf

# pg_lsclusters -h: "version cluster port status owner datadir logfile", one line a cluster.
cluster_line() {
  pg_lsclusters -h 2>/dev/null | awk -v v="$version" -v c="$CLUSTER" '$1 == v && $2 == c'
}
running() { [[ $(cluster_line | awk '{ print $4 }') == online* ]]; }

if [[ -z $(cluster_line) ]]; then
  say "creating cluster $version $CLUSTER"
  pg_createcluster --port "$PORT" "$version" "$CLUSTER" >&2 9>&-
fi
actual_port=$(cluster_line | awk '{ print $3 }')
[[ $actual_port == "$PORT" ]] ||
  die "cluster $version $CLUSTER listens on port $actual_port, not $PORT" \
    "(see $CONF_DIR/postgresql.conf)"

# --- 3. TLS --------------------------------------------------------------------------------

# A private CA and a server certificate for localhost / 127.0.0.1 that it signed. Made once;
# the server certificate is made again only when it no longer verifies or expires within 30
# days. ECDSA P-256: quick to generate, and accepted by libpq and by rustls.
new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}
mkdir -p "$TLS_DIR"
chown postgres:postgres "$TLS_DIR"
chmod 0755 "$TLS_DIR"
if [[ ! -s $TLS_DIR/ca.crt || ! -s $TLS_DIR/ca.key ]]; then
  say "making a private CA in $TLS_DIR"
  new_key "$TLS_DIR/ca.key"
  openssl req -x509 -new -key "$TLS_DIR/ca.key" -sha256 -days 3650 \
    -subj "/CN=fitter local PostgreSQL CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$TLS_DIR/ca.crt"
  rm -f "$TLS_DIR/server.crt" # signed by a CA that is gone
fi
chmod 0644 "$TLS_DIR/ca.crt"
chmod 0600 "$TLS_DIR/ca.key" # root's: only this script signs with it

if ! { [[ -s $TLS_DIR/server.crt && -s $TLS_DIR/server.key ]] &&
  openssl verify -CAfile "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt" >/dev/null 2>&1 &&
  openssl x509 -in "$TLS_DIR/server.crt" -noout -checkend $((30 * 24 * 3600)) >/dev/null; }; then
  say "making a server certificate for localhost"
  new_key "$TLS_DIR/server.key.new"
  extensions=$(mktemp)
  trap 'rm -f "$extensions"' EXIT
  cat >"$extensions" <<'EOF'
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EOF
  openssl req -new -key "$TLS_DIR/server.key.new" -subj "/CN=localhost" |
    openssl x509 -req -CA "$TLS_DIR/ca.crt" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
      -days 825 -sha256 -extfile "$extensions" -out "$TLS_DIR/server.crt.new" 2>/dev/null
  mv "$TLS_DIR/server.key.new" "$TLS_DIR/server.key"
  mv "$TLS_DIR/server.crt.new" "$TLS_DIR/server.crt"
  rm -f "$extensions"
  tls_changed=1 # the server reads its certificate at start and on reload
fi
# PostgreSQL refuses a key that its owner does not own alone.
chown postgres:postgres "$TLS_DIR/server.key" "$TLS_DIR/server.crt"
chmod 0600 "$TLS_DIR/server.key"
chmod 0644 "$TLS_DIR/server.crt"

# The tests look for the CA in one place, whatever the PostgreSQL version.
mkdir -p "$FITTER_ETC"
chmod 0755 "$FITTER_ETC"
if [[ $(readlink "$CA_LINK" 2>/dev/null || true) != "$TLS_DIR/ca.crt" ]]; then
  ln -sfn "$TLS_DIR/ca.crt" "$CA_LINK"
fi

# conf.d is included last by Debian's postgresql.conf, so this overrides its snakeoil
# certificate. Written only when different; ssl settings take effect on reload.
tls_conf="# Written by fitter's scripts/local-postgres.sh: TLS with fitter's private CA.
ssl = on
ssl_cert_file = '$TLS_DIR/server.crt'
ssl_key_file = '$TLS_DIR/server.key'"
if [[ ! -f $TLS_CONF || $(<"$TLS_CONF") != "$tls_conf" ]]; then
  say "configuring TLS in $TLS_CONF"
  mkdir -p "$(dirname "$TLS_CONF")"
  printf '%s\n' "$tls_conf" >"$TLS_CONF"
  chown postgres:postgres "$TLS_CONF"
  tls_changed=1
fi

# --- 4. password logins over TCP -----------------------------------------------------------

# Debian's pg_hba.conf lets every role log in with a password (scram-sha-256) on 127.0.0.1
# and ::1. Add such lines, before any other rule, only when they are not there.
hba=$CONF_DIR/pg_hba.conf
hba_changed=
s='[[:space:]]+'
for address in 127.0.0.1/32 ::1/128; do
  rule="^[[:space:]]*host(ssl)?${s}all${s}(all|$ROLE)${s}${address//./\\.}${s}(scram-sha-256|md5)"
  if ! grep -Eq "$rule([[:space:]]|$)" "$hba"; then
    say "allowing password logins from $address in $hba"
    sed -i "1i host    all             $ROLE             $address            scram-sha-256" "$hba"
    hba_changed=1
  fi
done

# --- 5. start ------------------------------------------------------------------------------

if running; then
  if [[ -n ${tls_changed:-} || -n $hba_changed ]]; then
    say "reloading cluster $version $CLUSTER"
    pg_ctlcluster "$version" "$CLUSTER" reload >&2
  fi
else
  say "starting cluster $version $CLUSTER"
  # /run is often empty after a container restart; pg_ctlcluster needs its socket directory.
  install -d -m 2775 -o postgres -g postgres /var/run/postgresql
  pg_ctlcluster "$version" "$CLUSTER" start >&2 9>&-
fi

deadline=$((SECONDS + START_TIMEOUT))
until pg_isready -q -h 127.0.0.1 -p "$PORT"; do
  ((SECONDS < deadline)) ||
    die "PostgreSQL did not accept connections within ${START_TIMEOUT}s" \
      "(see /var/log/postgresql/postgresql-$version-$CLUSTER.log)"
  sleep 0.2
done

# --- 6. role, password, database -----------------------------------------------------------

# The password is made once and kept; the role gets it when it is created (or when it no
# longer logs in with it, e.g. after /etc/fitter was removed). Hex, so it needs no quoting.
if [[ ! -s $PASSWORD_FILE ]]; then
  say "generating the password of role $ROLE in $PASSWORD_FILE"
  (
    umask 077
    openssl rand -hex 16 >"$PASSWORD_FILE.new"
  )
  mv "$PASSWORD_FILE.new" "$PASSWORD_FILE"
fi
chmod 0600 "$PASSWORD_FILE"
password=$(<"$PASSWORD_FILE")
[[ $password =~ ^[0-9a-f]+$ ]] || die "$PASSWORD_FILE does not hold a hex password"

# SQL with the password goes through stdin (printf is a builtin): never on a command line.
role=$(su_psql -c "SELECT rolcanlogin AND rolcreatedb FROM pg_roles WHERE rolname = '$ROLE'")
case $role in
  "")
    say "creating role $ROLE"
    printf "CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s';\n" "$ROLE" "$password" | su_psql
    ;;
  f)
    say "granting LOGIN CREATEDB to role $ROLE"
    su_psql -c "ALTER ROLE $ROLE LOGIN CREATEDB"
    ;;
esac

if [[ -z $(su_psql -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'") ]]; then
  say "creating database $DATABASE"
  su_psql -c "CREATE DATABASE $DATABASE OWNER $ROLE"
fi

if ! PGPASSWORD=$password psql -X -q -At -w "$URL" -c 'SELECT 1' >/dev/null 2>&1; then
  say "setting the password of role $ROLE from $PASSWORD_FILE"
  printf "ALTER ROLE %s PASSWORD '%s';\n" "$ROLE" "$password" | su_psql
  PGPASSWORD=$password psql -X -q -At -w "$URL" -c 'SELECT 1' >/dev/null ||
    die "role $ROLE cannot log in to $URL with the password in $PASSWORD_FILE"
fi

# --- 7. ~/.pgpass --------------------------------------------------------------------------

# libpq looks the password up by the host name as written in the URL, so one line for each.
# A line for the same host/port/role with another password is replaced; others are kept.
pgpass=${HOME:?}/.pgpass
[[ -e $pgpass ]] || install -m 0600 /dev/null "$pgpass"
chmod 0600 "$pgpass" # libpq ignores a .pgpass that others can read
for host in 127.0.0.1 localhost; do
  prefix="$host:$PORT:*:$ROLE:"
  if ! grep -qxF "$prefix$password" "$pgpass"; then
    say "adding $prefix… to $pgpass"
    awk -v p="$prefix" 'index($0, p) != 1' "$pgpass" >"$pgpass.new"
    printf '%s\n' "$prefix$password" >>"$pgpass.new"
    chmod 0600 "$pgpass.new"
    mv "$pgpass.new" "$pgpass"
  fi
done

echo "$URL"
