#!/usr/bin/env bash
# Install libxpmem into a staging prefix and build a C program from it with
# nothing but `pkg-config --cflags --libs cray-xpmem`, as a user would.
#   build-with-pkgconfig.sh BUILD_DIR STAGE_DIR SOURCE.c OUTPUT
set -euo pipefail
build=$1 stage=$2 src=$3 out=$4
rm -rf "$stage"
cmake --install "$build" --prefix "$stage" --component libxpmem >/dev/null
pcdir=$(dirname "$(find "$stage" -name cray-xpmem.pc | head -n 1)")
test -f "$pcdir/xpmem.pc"
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$stage" --cflags --libs cray-xpmem)
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --define-variable=prefix="$stage" --variable=libdir cray-xpmem)
cc -std=c11 -Wall -Wextra -Werror -o "$out" "$src" $flags -Wl,-rpath,"$libdir"
test -e "$libdir/libxpmem.so.0"
echo "built $out with: $flags"
