# The project's virtual environment, shared by scripts/demo.sh and scripts/run-tests.sh (sourced, bash).
#
# Debian 12 and RHEL 9 mark their /usr/bin/python3 as externally managed (PEP 668): pip refuses to
# install into it. The scripts therefore install the package into a virtual environment of the
# checkout, .venv (FEDCLOUD_SITE_VENV to put it elsewhere), made by the first python3 on PATH
# (PYTHON to choose another interpreter, >= 3.9): Debian's, a pyenv one, anything. Where that Python
# lacks the venv module (Debian without python3-venv) and we are root, it is installed with apt-get
# (dnf on RHEL-likes). An existing .venv is reused while its interpreter still runs and is the same
# Python version as the chosen interpreter; otherwise it is made anew.
#
# use_project_venv: makes/reuses the environment, puts its bin/ first on PATH (so python3, pip and
# the console scripts, fedcloud-site and fedcloud-site-*, are the environment's) and sets VENV_PY.

venv_fail() {
    echo "scripts/venv.sh: $*" >&2
    exit 1
}

# the system package that brings the venv module of the chosen Python, installed as root
_install_venv_module() {
    local base=$1 pyver
    pyver=$("$base" -c 'import sys; print("{0}.{1}".format(*sys.version_info))')
    [ "$(id -u)" -eq 0 ] || venv_fail "$base has no working venv module: as root, install python3-venv (Debian/Ubuntu) or python3 (RHEL), or run with PYTHON=<another python3>"
    if command -v apt-get >/dev/null 2>&1; then
        echo "installing the venv module of $base (apt-get install python3-venv python$pyver-venv)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends python3-venv >/dev/null \
            || apt-get install -y -q --no-install-recommends "python$pyver-venv" >/dev/null \
            || venv_fail "apt-get could not install python3-venv"
    elif command -v dnf >/dev/null 2>&1; then
        echo "installing the venv module of $base (dnf install python3 python3-pip)"
        dnf install -y -q python3 python3-pip >/dev/null || venv_fail "dnf could not install python3 python3-pip"
    else
        venv_fail "$base has no working venv module and neither apt-get nor dnf is here to install it"
    fi
}

use_project_venv() {
    local base=${PYTHON:-python3} venv=${FEDCLOUD_SITE_VENV:-.venv} want have
    command -v "$base" >/dev/null 2>&1 || venv_fail "no $base on PATH ($PATH)"
    "$base" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || venv_fail "$base is Python $("$base" -c 'import sys; print(sys.version.split()[0])'), fedcloud-site needs >= 3.9"
    want=$("$base" -c 'import sys; print(sys.version.split()[0])')
    have=$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || true)
    if [ -n "$have" ] && [ "$have" = "$want" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "virtual environment: $venv (Python $have, reused)"
    else
        [ -z "$have" ] || echo "virtual environment $venv is Python $have, $base is $want: making it anew"
        rm -rf "$venv"
        if ! "$base" -m venv "$venv" >/dev/null 2>&1; then
            rm -rf "$venv"  # a half-made one (Debian: "ensurepip is not available")
            _install_venv_module "$base"
            "$base" -m venv "$venv" || venv_fail "$base -m venv $venv failed"
        fi
        echo "virtual environment: $venv (Python $want from $(command -v "$base"), new)"
    fi
    VIRTUAL_ENV=$(cd "$venv" && pwd)
    export VIRTUAL_ENV
    export PATH="$VIRTUAL_ENV/bin:$PATH"
    unset PYTHONHOME
    VENV_PY=$VIRTUAL_ENV/bin/python
    hash -r
}
