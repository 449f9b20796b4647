#!/usr/bin/env bash
# One command on a fresh machine: install dependencies, fetch the real model, build, run every
# test (ctest). --sanitize also builds with AddressSanitizer + UBSan and runs the tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
for a in "$@"; do
  case $a in --sanitize) sanitize=1 ;; *) echo "test.sh: unknown option $a" >&2; exit 2 ;; esac
done
./scripts/install_deps.sh
./scripts/fetch_model.sh
./scripts/python_env.sh
./scripts/build.sh build
ctest --test-dir build --output-on-failure --timeout 900
if [ $sanitize = 1 ]; then
  ./scripts/build.sh build-asan -DHAT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  # Open MPI under ASan: keep plugins loaded (readable stacks), suppress MPI's own leaks
  OMPI_MCA_mca_base_component_disable_dlclose=1 ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
    LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    ctest --test-dir build-asan --output-on-failure --timeout 1800
fi
