# Shared set-up for scripts/test and scripts/demo (sourced, not run).
# On a fresh Debian/Ubuntu machine: installs redis-server and Python's venv
# support with apt when missing, makes .venv and installs the project into it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "error: need root (or sudo) to run: $*" >&2; return 1
    fi
}

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: please install: $* (no apt-get on this machine)" >&2
        return 1
    fi
    echo "--> installing $* with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_redis() {
    if [ -z "${REDIS_SERVER_BIN:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server redis-tools
        # Debian may start a system redis on :6379; ours run on their own ports.
    fi
}

ensure_openssl() {
    # The TLS tests make a throwaway CA with the openssl command.
    command -v openssl >/dev/null 2>&1 || apt_install openssl
}

pick_python() {
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "error: Python 3.11+ is needed (apt-get install python3)" >&2
    return 1
}

ensure_venv() {
    local extras="$1"
    local py
    py="$(pick_python)"
    if [ ! -x .venv/bin/python ]; then
        if ! "$py" -m venv .venv 2>/dev/null; then
            rm -rf .venv
            apt_install python3-venv
            "$py" -m venv .venv
        fi
    fi
    local stamp=".venv/.installed-$extras"
    if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
        echo "--> installing django-redisroles[$extras] into .venv" >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
        touch "$stamp"
    fi
}
