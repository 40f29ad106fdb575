#!/usr/bin/env bash
# The module's suites under the debug kernel (KASAN, lockdep, kmemleak,
# DEBUG_VM, ...; see debug-kernel.sh), in one VM boot:
#   guest-setup.sh (huge pages, zram swap), the kernel suite as root and as
#   nobody, then, if built, the stress programs xpmem_fuzz and xpmem_chaos
#   as nobody.
# Every step runs even if an earlier one failed; the rig fails on any failed
# step and on any KASAN/lockdep/WARN/BUG line or xpmem kmemleak report.
#
#   run-debug-suite.sh [--series X.Y] [--build DIR] [--out DIR] [--mem SIZE] [--timeout S] [--smp N]
#                      [--kernel-args ARGS]
#
# --series: a newer kernel series from the cached Debian 13 root
# (kernel-root.sh; e.g. 7.3 from trixie-backports), built in that root;
# default Debian 12's 6.1 on this machine.
# --build: the CMake build tree with the test programs (default: <source>/build).
# --kernel-args: added to the kernel command line.  The debug kernels enforce
# the page-table checker, under which the module maps anonymous huge pages
# with PTEs (kmod/compat.h); page_table_check=0 lets the PMD path run under
# KASAN and lockdep.
# --out: results and the console log (default: /var/tmp/xpmem-debug-suite).
# Environment: XPMEM_CACHE (see debug-kernel.sh); XPMEM_DEBUG_GTEST_FILTER
# (default: all tests); XPMEM_TEST_TIMEOUT_S, the suite's per-test watchdog
# (default here 900 s: Memory.TenThousandAttachments alone takes ~175 s under
# this kernel, 1.5 s under Debian's); XPMEM_DEBUG_FUZZ_SECONDS (60),
# XPMEM_DEBUG_CHAOS_ROUNDS (40), XPMEM_STRESS_SEED (default: from the clock).
# xpmem.ko is built against the debug kernel from a temporary copy of kmod/
# (the source tree and the normal build stay untouched).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build
out=/var/tmp/xpmem-debug-suite
mem=6G
timeout_s=5400
smp=2
series=""
kernel_args=""
while [ $# -gt 0 ]; do
	case "$1" in
	--kernel-args) kernel_args=$2; shift 2 ;;
	--series) series=$2; shift 2 ;;
	--build) build=$(realpath "$2"); shift 2 ;;
	--out) out=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	*) echo "run-debug-suite: unknown option $1" >&2; exit 2 ;;
	esac
done
tests=$build/tests/xpmem_kernel_tests
[ -x "$tests" ] || { echo "run-debug-suite: $tests missing (cmake --build $build --target xpmem_kernel_tests)" >&2; exit 2; }

# --- the kernel (cached) and the module built against it
if [ -n "$series" ]; then
	root=$("$here/kernel-root.sh" | tail -n 1)
	envfile=$("$here/debug-kernel.sh" --root "$root" --series "$series" | tail -n 1)
else
	envfile=$("$here/debug-kernel.sh" | tail -n 1)
fi
KERNEL_ROOT=""
# shellcheck disable=SC1090
. "$envfile"
work=$(mktemp -d /tmp/xpmem-debug-suite.XXXXXX)
kwork=""
trap 'rm -rf "$work" ${kwork:+"$kwork"}' EXIT
# -g: module frames in reports can be resolved with addr2line/faddr2line.
if [ -n "$KERNEL_ROOT" ]; then
	# A newer kernel's kbuild tools need the root's glibc: build in there.
	kwork=$(mktemp -d "$KERNEL_ROOT/var/tmp/xpmem-debug-kmod.XXXXXX")
	cp -r "$src/kmod" "$kwork/kmod"
	rm -f "$kwork/kmod/CMakeLists.txt"
	mount -t proc proc "$KERNEL_ROOT/proc"
	status=0
	chroot "$KERNEL_ROOT" env LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		make -s -C "${KERNEL_BUILD#"$KERNEL_ROOT"}" M="${kwork#"$KERNEL_ROOT"}/kmod" \
		W=1 KCFLAGS=-g modules </dev/null || status=$?
	umount "$KERNEL_ROOT/proc"
	[ "$status" = 0 ] || { echo "run-debug-suite: FAIL: module build in $KERNEL_ROOT" >&2; exit 1; }
	mkdir -p "$work/kmod"
	cp "$kwork/kmod/xpmem.ko" "$work/kmod/xpmem.ko"
else
	cp -r "$src/kmod" "$work/kmod"
	rm -f "$work/kmod/CMakeLists.txt"
	make -s -C "$KERNEL_BUILD" M="$work/kmod" W=1 KCFLAGS=-g modules
fi
module=$work/kmod/xpmem.ko
mkdir -p "$out"
cp "$module" "$out/xpmem.ko" # kept to decode traces after the run (faddr2line)

# zram is built in and the debug kernel has no /lib/modules/R, where modprobe
# would find that out (nor /sys/module/zram: its parameter is not in sysfs):
# guest-setup.sh gets a modprobe that accepts built-in drivers.
mkdir -p "$work/bin"
cat >"$work/bin/modprobe" <<'EOF'
#!/bin/sh
for a; do
	case "$a" in
	-*) ;;
	zram) [ -d /sys/class/zram-control ] && exit 0; break ;;
	*) [ -d "/sys/module/$a" ] && exit 0; break ;;
	esac
done
exec /sbin/modprobe "$@"
EOF
chmod +x "$work/bin/modprobe"

fuzz=$build/tests/stress/xpmem_fuzz
chaos=$build/tests/stress/xpmem_chaos
seed=${XPMEM_STRESS_SEED:-}
filter=${XPMEM_DEBUG_GTEST_FILTER:+$(printf '%q' "--gtest_filter=$XPMEM_DEBUG_GTEST_FILTER")}
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
q() { printf '%q' "$1"; }
cat >"$work/guest-job.sh" <<JOB
export XPMEM_TEST_TIMEOUT_S=${XPMEM_TEST_TIMEOUT_S:-900}
failed=""
step() { name=\$1; shift; echo "=== debug-suite: \$name"; "\$@" || failed="\$failed \$name"; }
step guest-setup env PATH=$(q "$work/bin"):\$PATH $(q "$here/guest-setup.sh")
step suite-root $(q "$tests") --gtest_brief=0 $filter
step suite-nobody $nobody $(q "$tests") $filter
if [ -x $(q "$fuzz") ]; then
	step fuzz-nobody $nobody $(q "$fuzz") --seconds ${XPMEM_DEBUG_FUZZ_SECONDS:-60} ${seed:+--seed $seed}
else
	echo "=== debug-suite: no $(q "$fuzz"), skipped"
fi
if [ -x $(q "$chaos") ]; then
	step chaos-nobody $nobody $(q "$chaos") --rounds ${XPMEM_DEBUG_CHAOS_ROUNDS:-40} ${seed:+--seed $seed}
else
	echo "=== debug-suite: no $(q "$chaos"), skipped"
fi
[ -z "\$failed" ] || { echo "=== debug-suite: FAILED:\$failed"; exit 1; }
echo "=== debug-suite: all steps passed"
JOB

echo "run-debug-suite: kernel $KERNEL_RELEASE, results in $out"
flock /tmp/xpmem-vm.lock "$here/run-in-vm.sh" --kernel-image "$KERNEL_IMAGE" --module "$module" --numa \
	${kernel_args:+--append "$kernel_args"} \
	--mem "$mem" --smp "$smp" --timeout "$timeout_s" --out "$out" -- sh "$work/guest-job.sh"
