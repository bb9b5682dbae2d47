#!/usr/bin/env bash
# Installs every build and test dependency of hummingbird on Debian 12 (run as root or with sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libjansson-dev libzip-dev libopenblas-dev libpng-dev libjpeg-dev \
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev ffmpeg \
  libcivetweb-dev libsqlite3-dev libhiredis-dev redis-server curl \
  python3 python3-numpy python3-skimage \
  clang-14 libclang-rt-14-dev >/dev/null  # the clang build and libFuzzer (scripts/test.sh, scripts/fuzz.sh)
