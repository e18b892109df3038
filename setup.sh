#!/usr/bin/env bash
# mvnb's two set-up commands for a fresh machine (Debian/Ubuntu):
#
#   ./setup.sh demo   installs everything, boots the default guest to its LAPIC timer
#                     calibration, prints what it found, and publishes the first-session
#                     notebook as a blog post into ./site (MVNB_DEMO_SITE), printing its path
#   ./setup.sh test   installs what the tests need (QEMU 10 from bookworm-backports too),
#                     then runs the whole test suite, the live tests on both QEMUs
#
# Installing means: the OS packages that are missing (QEMU, GDB, ...) through apt, a
# virtual environment in .venv with mvnb in editable mode, and the guest kernel cache
# (Debian's cloud kernel and its debug symbols, in ~/.cache/mvnb). Each step is skipped
# when it is already done, so running it again costs seconds.
set -euo pipefail
cd "$(dirname "$0")"

what=${1:-}
case "$what" in
  demo|test) shift ;;
  *) echo "usage: ./setup.sh demo | test [pytest arguments]" >&2; exit 2 ;;
esac

say() { printf '\n== %s\n' "$*"; }

# -- OS packages -------------------------------------------------------------------------
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need qemu-system-x86_64 qemu-system-x86
need gdb gdb
need apt-get apt
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
if [ "$what" = test ]; then
  need gdbserver gdbserver
  need chromium chromium
  need jekyll jekyll
  need objcopy binutils  # notebooks/symbols.ipynb relinks a symbol file with objcopy
  # the theme of the real-Jekyll publish test (Debian packages the gem; no Bundler needed)
  dpkg-query -W -f='${Status}' jekyll-theme-minima 2>/dev/null | grep -q "ok installed" \
    || packages+=(jekyll-theme-minima)
fi
if [ ${#packages[@]} -gt 0 ]; then
  say "installing OS packages: ${packages[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "need root (or sudo) to install: ${packages[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# -- the virtual environment ---------------------------------------------------------------
extra=$([ "$what" = test ] && echo "[test]" || echo "[notebook]")
stamp=".venv/.mvnb-installed$extra"
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing mvnb$extra into .venv (editable)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extra"
  touch "$stamp"
fi

# -- the guest kernel cache ------------------------------------------------------------
say "guest kernel (cached in ${XDG_CACHE_HOME:-$HOME/.cache}/mvnb)"
.venv/bin/mvnb guest fetch
if [ "$what" = test ]; then
  # the symbol-placement tests boot Debian's generic kernel (KASLR) too: about 930 MB, once
  .venv/bin/mvnb guest fetch --flavour amd64
fi

# -- QEMU 10, the second QEMU the live tests run on (tests/conftest.py: --qemu) ------------
if [ "$what" = test ]; then
  if .venv/bin/python -c 'from mvnb.vm.builds import resolve_qemu; resolve_qemu("10.0")' \
      >/dev/null 2>&1; then
    say "QEMU 10.0: already here (mvnb qemu list)"
  else
    say "QEMU 10.0 from bookworm-backports (cached in ${XDG_CACHE_HOME:-$HOME/.cache}/mvnb/qemu)"
    .venv/bin/mvnb qemu fetch --version 10.0
  fi
fi

# -- the job -------------------------------------------------------------------------------
if [ "$what" = demo ]; then
  say "mvnb demo"
  .venv/bin/mvnb demo "$@"
  site=${MVNB_DEMO_SITE:-$PWD/site}
  say "publishing notebooks/first-session.ipynb as a post into $site"
  mkdir -p "$site"
  exec .venv/bin/mvnb publish notebooks/first-session.ipynb --site "$site"
else
  say "tests"
  exec .venv/bin/python -m pytest "$@"
fi
