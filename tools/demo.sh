#!/usr/bin/env bash
# The main job: build everything, boot the test VM with the module loaded
# and show two processes sharing memory through /dev/xpmem.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
exec tests/vm/run-in-vm.sh --module build/kmod/kbuild/xpmem.ko --out build/vm-out/demo \
	-- build/tools/xpmem-share-demo
