#!/usr/bin/env bash
# Installs what the test suite needs and runs it. Idempotent: safe to run again and again,
# on a fresh Debian 12 machine or on one that already has everything.
#
# The end-to-end tests need the LXD daemon, its storage pool and profile, and the node image:
# scripts/local-cloud.sh installs and starts them (idempotent, fast when all is in place).
# They are #[ignore]d in a plain `cargo test`; here they run with `--include-ignored`, and
# `--no-fail-fast` runs every test binary even when one fails, so one failure hides no other.
# The DigitalOcean tests need Prism, which scripts/prism.sh installs with npm.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/local-cloud.sh

# The DigitalOcean tests put Prism (npm: @stoplight/prism-cli) between fitter and fitter-sim
# to hold both to the official spec; install it once (idempotent, cached).
scripts/prism.sh install >/dev/null

# tests/postgres.rs keeps fitter's state in PostgreSQL: Debian's package, started without an
# init system, with TLS, a role and a database (idempotent, about 0.3 s when all is there).
# The tests call it too; running it here first shows a setup failure once, not in every test.
scripts/local-postgres.sh >/dev/null

# tests/ansible_inventory.rs reads fitter's inventory with Ansible's own ansible-inventory
# (pip: ansible-core, pinned, in a virtual environment of its own; idempotent, cached).
scripts/ansible.sh install >/dev/null

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust with rustup first" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" -- --include-ignored 2>&1 | tee "$log" || status=$?

# cargo prints one "test result:" line per test binary, the last often a doc-test run with
# nothing in it; close with the totals, so the last line says what really ran.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
