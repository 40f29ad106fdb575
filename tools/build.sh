#!/usr/bin/env bash
# Configure and build everything (library, module, tests) into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# The UCX transport compiles against the installed UCX's own source tree.
ucx_src=$(tools/fetch-ucx-source.sh build/ucx-source)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXPMEM_UCX_SRC_DIR="$ucx_src" >/dev/null
cmake --build build -j"$(nproc)"
