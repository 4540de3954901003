#!/usr/bin/env bash
# Install what virtwatch needs on Debian bookworm and create .venv with virtwatch and all its extras in it.
# Usage: scripts/setup.sh [--test]    (--test adds the servers the test suite starts itself)
set -euo pipefail

# Runtime: libvirt-python builds from sdist against libvirt-dev (found through pkg-config);
# libvirt-clients/libvirt-daemon give virsh, virt-admin and the libvirt libraries the agent loads.
RUNTIME_PACKAGES=(libvirt-dev pkg-config libvirt-clients libvirt-daemon python3-venv)
# Tests only:
#   influxdb              -> influxd for the InfluxDB 1.6 write-and-read tests (@pytest.mark.influxdb)
#   victoria-metrics      -> the /api/v2/write path of influxdb-client (@pytest.mark.victoriametrics)
#   libvirt-daemon-system -> a private libvirtd (and virtlogd) for daemon and fault tests
#   qemu-system-x86       -> real QEMU guests (KVM when /dev/kvm exists, TCG otherwise)
#   prometheus-alertmanager -> a private Alertmanager that the alertmanager notifier pushes alerts to
#   chromium              -> headless browser the dashboard tests drive through Playwright (no `playwright install`)
TEST_PACKAGES=(influxdb victoria-metrics libvirt-daemon-system qemu-system-x86 prometheus-alertmanager chromium gdb)

MIN_PYTHON="3.11"

say() { echo "virtwatch setup: $*"; }
die() { echo "virtwatch setup: error: $*" >&2; exit 1; }

with_test=0
for arg in "$@"; do
    case "$arg" in
        --test) with_test=1 ;;
        -h|--help) echo "usage: $0 [--test]"; exit 0 ;;
        *) die "unknown argument: $arg (usage: $0 [--test])" ;;
    esac
done

cd "$(dirname "$0")/.."

packages=("${RUNTIME_PACKAGES[@]}")
if [[ $with_test == 1 ]]; then
    packages+=("${TEST_PACKAGES[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if (( ${#missing[@]} > 0 )); then
    if [[ $(id -u) == 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        die "not root and no sudo: install these Debian packages, then run again: ${missing[*]}"
    fi
    say "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    say "Debian packages already installed"
fi

python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" 2>/dev/null
}

if [[ ! -x .venv/bin/python ]]; then
    python=${PYTHON:-python3}
    command -v "$python" >/dev/null || die "$python not found; install Python >= $MIN_PYTHON"
    python_ok "$python" || die "$python is $("$python" -V 2>&1); virtwatch needs Python >= $MIN_PYTHON"
    say "creating .venv with $("$python" -V 2>&1)"
    "$python" -m venv .venv
fi
python_ok .venv/bin/python \
    || die ".venv has $(.venv/bin/python -V 2>&1); virtwatch needs Python >= $MIN_PYTHON (remove .venv and run again)"

.venv/bin/python -m pip install -qq --upgrade pip
# Every extra (pyproject.toml): `make run` starts the demo (dashboard, embedded store, engine) and `make test`
# exercises all of it. A hypervisor that only runs the agent installs the core: `pip install virtwatch`.
if [[ $with_test == 1 ]]; then
    say "installing virtwatch with all extras and the test tools into .venv"
    .venv/bin/python -m pip install -qq -e '.[all,test]'
else
    say "installing virtwatch with all extras into .venv"
    .venv/bin/python -m pip install -qq -e '.[all]'
fi
say "done"
