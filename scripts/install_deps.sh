#!/usr/bin/env bash
# Installs the Debian packages the testbed builds and runs with, if any is missing.
# Idempotent and quiet when everything is present. Runs apt-get as root (or via sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config git unzip ca-certificates python3 python3-pip
      openmpi-bin libopenmpi-dev libhdf5-dev hdf5-tools libgsl-dev libopenblas-dev libcjson-dev procps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (e.g. pyenv): only ask apt for them if they do not work
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  kept=(); for p in "${missing[@]}"; do [[ $p == python3 || $p == python3-pip ]] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install_deps: installing ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
