#!/usr/bin/env bash
# Installs or locates ansible-core in a virtual environment of its own, so that the tests
# can check fitter's inventory with Ansible's own reader (`ansible-inventory --list`):
#
#   scripts/ansible.sh install   install the pinned version if it is not there; print the path
#                                of ansible-inventory
#   scripts/ansible.sh path      print that path (exit 1 when not installed)
#
# The environment lives in $FITTER_ANSIBLE_DIR (default ~/.cache/fitter/ansible); a second
# run with the right version in place does nothing but print the path.
set -euo pipefail

version=2.19.4
dir=${FITTER_ANSIBLE_DIR:-$HOME/.cache/fitter/ansible}
bin=$dir/bin/ansible-inventory

installed() {
  [[ -x $bin ]] && "$dir/bin/python" -c "import ansible.release as r; assert r.__version__ == '$version'" 2>/dev/null
}

case ${1:-} in
  install)
    if ! installed; then
      if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1; then
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
          echo "installing python3-venv (Debian package)" >&2
          DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >&2
        else
          echo "error: python3's venv module is missing; install python3-venv" >&2
          exit 1
        fi
      fi
      rm -rf "$dir"
      /usr/bin/python3 -m venv "$dir" >&2
      "$dir/bin/pip" install --quiet --disable-pip-version-check "ansible-core==$version" >&2
      installed || { echo "error: ansible-core $version did not install in $dir" >&2; exit 1; }
    fi
    echo "$bin"
    ;;
  path)
    installed || exit 1
    echo "$bin"
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
