#!/usr/bin/env bash
# Build everything and run every test: host unit tests, then the kernel
# suite inside the VM (as root and as an unprivileged user).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
cd build
exec ctest --output-on-failure "$@"
