#!/bin/sh
# Installs the PyTorch reference that `npm run bench:distill` runs next to TensorFlow.js:
# Debian's python3-torch (PyTorch 1.13, visible to /usr/bin/python3 only) with the
# OpenBLAS pthread build. Without libopenblas0-pthread PyTorch falls back to reference
# BLAS and is 15-25x slower on wide layers, which would flatter the comparison.
# Needs root (or sudo) and access to Debian's package mirror.
set -eu
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "setup-pytorch: torch already importable by /usr/bin/python3"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q python3-torch libopenblas0-pthread
/usr/bin/python3 -c 'import torch; print("setup-pytorch: torch", torch.__version__)'
