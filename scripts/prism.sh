#!/usr/bin/env bash
# Installs or locates Stoplight Prism, the OpenAPI validating proxy used for contract tests:
#   prism proxy --errors shared/digitalocean-openapi.yaml http://127.0.0.1:SIMPORT
#
#   scripts/prism.sh install   install the pinned version if it is not there; print the binary
#   scripts/prism.sh path      print the binary's path (exit 1 when not installed)
#
# The install lives in $FITTER_PRISM_DIR (default ~/.cache/fitter/prism) and is idempotent:
# a second run with the right version in place does nothing but print the path.
set -euo pipefail

version=5.14.2
dir=${FITTER_PRISM_DIR:-$HOME/.cache/fitter/prism}
bin=$dir/node_modules/.bin/prism
manifest=$dir/node_modules/@stoplight/prism-cli/package.json

installed() {
  [[ -x $bin && -f $manifest ]] &&
    grep -Eq "^[[:space:]]*\"version\":[[:space:]]*\"${version//./\\.}\"" "$manifest"
}

case ${1:-} in
  install)
    if ! installed; then
      if ! command -v npm >/dev/null 2>&1; then
        # A machine without Node.js: Debian's (18 on Debian 12), which Prism 5 runs on.
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
          echo "installing nodejs and npm (Debian packages)" >&2
          DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm >&2
        else
          echo "error: npm is not installed; install Node.js 18 or later first" >&2
          exit 1
        fi
      fi
      mkdir -p "$dir"
      [[ -f $dir/package.json ]] || printf '{ "name": "fitter-prism", "private": true }\n' >"$dir/package.json"
      # npm's progress goes to stderr so that stdout is only the path.
      npm install --prefix "$dir" --save-exact --no-audit --no-fund \
        "@stoplight/prism-cli@$version" >&2
      if ! installed; then
        echo "error: npm finished but $bin is not prism-cli $version" >&2
        exit 1
      fi
    fi
    echo "$bin"
    ;;
  path)
    if ! installed; then
      echo "error: prism-cli $version is not installed in $dir; run scripts/prism.sh install" >&2
      exit 1
    fi
    echo "$bin"
    ;;
  *)
    echo "usage: scripts/prism.sh install|path" >&2
    exit 2
    ;;
esac
