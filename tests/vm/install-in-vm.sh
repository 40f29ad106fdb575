#!/bin/sh
# The module installed the way README tells an admin to (cmake --install,
# component kmod) and loaded by name, inside the VM (run-in-vm.sh
# --no-module), in a throwaway copy-on-write view of this machine's root so
# nothing is left behind: the install puts xpmem.ko under
# /lib/modules/$(uname -r) and indexes it, `modprobe xpmem` loads it, udev
# gives /dev/xpmem the rule's mode (0666), an unprivileged user can use it,
# and `modprobe -r xpmem` unloads it.  Then the same with the module DKMS
# built (tests/kmod-dkms.sh, in DKMS_OUT): `dkms install`, modprobe, and
# `dkms remove`, which must leave no module behind.
#
#   install-in-vm.sh BUILD_DIR KERNEL_TESTS [DKMS_OUT VERSION]
set -eu
build=$1
tests=$2
dkms_out=${3:-}
version=${4:-}
ov=/tmp/xpmem-install
root=$ov/root

fail() {
	echo "install: FAIL: $*"
	exit 1
}
step() { echo "install: $*"; }

# --- a writable view of / (upper layer in a tmpfs, thrown away at poweroff)
mkdir -p $ov/rw $root
mount -t tmpfs tmpfs $ov/rw
mkdir -p $ov/rw/upper $ov/rw/work
mount -t overlay overlay -o lowerdir=/,upperdir=$ov/rw/upper,workdir=$ov/rw/work $root
for fs in proc sys dev dev/pts sys/kernel/debug; do mount --bind /$fs $root/$fs; done
# What udev would make on a real system and dkms needs (its <(...) uses).
for fd in fd:/proc/self/fd stdin:/proc/self/fd/0 stdout:/proc/self/fd/1 stderr:/proc/self/fd/2; do
	[ -e "/dev/${fd%%:*}" ] || ln -s "${fd#*:}" "/dev/${fd%%:*}"
done
# /tmp stays the overlay's: the build tree may live there (a CI clone).
mount -t tmpfs -o mode=755 tmpfs $root/run
in_root() { chroot $root env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

release=$(uname -r)
[ ! -e /lib/modules/$release/updates/xpmem.ko ] || fail "xpmem.ko is installed on the host already"

step "cmake --install $build --component kmod"
in_root cmake --install "$build" --component kmod || fail "cmake --install"
[ -f $root/lib/modules/$release/updates/xpmem.ko ] ||
	fail "xpmem.ko is not in /lib/modules/$release/updates (the running kernel's release)"
[ -f $root/lib/udev/rules.d/56-xpmem.rules ] || fail "the udev rule is not installed"
grep -q 'updates/xpmem.ko' $root/lib/modules/$release/modules.dep || fail "depmod did not index xpmem.ko"

step "udev, then modprobe xpmem"
in_root /lib/systemd/systemd-udevd --daemon || fail "systemd-udevd did not start"
in_root modprobe xpmem || fail "modprobe xpmem"
grep -q '^xpmem ' /proc/modules || fail "xpmem is not loaded"
in_root udevadm trigger --action=add --subsystem-match=misc --sysname-match=xpmem
in_root udevadm settle --timeout=30 || fail "udevadm settle"
[ -c /dev/xpmem ] || fail "/dev/xpmem is missing"
mode=$(stat -c %a /dev/xpmem)
[ "$mode" = 666 ] || fail "/dev/xpmem has mode $mode, the udev rule says 0666"

step "an unprivileged user uses it"
in_root setpriv --reuid=65534 --regid=65534 --clear-groups "$tests" --gtest_filter='Api.*:Semantics.*' ||
	fail "the kernel suite's Api and Semantics cases as nobody"

unload() {
	step "modprobe -r xpmem"
	in_root modprobe -r xpmem || fail "modprobe -r xpmem"
	! grep -q '^xpmem ' /proc/modules || fail "xpmem is still loaded"
	[ ! -e /dev/xpmem ] || fail "/dev/xpmem is still there"
}
unload
step "cmake --install: installed under /lib/modules/$release/updates, loaded by name, mode $mode, unloaded"

if [ -n "$dkms_out" ]; then
	rm $root/lib/modules/$release/updates/xpmem.ko
	trees="--sourcetree $dkms_out/src --dkmstree $dkms_out/dkms"
	step "dkms install xpmem/$version"
	# shellcheck disable=SC2086
	in_root dkms install -m xpmem -v "$version" -k "$release" $trees || fail "dkms install"
	path=$(in_root modinfo -n xpmem) || fail "modinfo finds no xpmem after dkms install"
	case "$path" in
	*/updates/dkms/xpmem.ko*) ;;
	*) fail "modprobe would load $path, not DKMS's module" ;;
	esac
	in_root modprobe xpmem || fail "modprobe xpmem (DKMS)"
	in_root udevadm trigger --action=add --subsystem-match=misc --sysname-match=xpmem
	in_root udevadm settle --timeout=30 || fail "udevadm settle"
	[ "$(stat -c %a /dev/xpmem)" = 666 ] || fail "/dev/xpmem (DKMS) has mode $(stat -c %a /dev/xpmem)"
	in_root setpriv --reuid=65534 --regid=65534 --clear-groups "$tests" --gtest_filter='Api.*' ||
		fail "the kernel suite's Api cases as nobody (DKMS)"
	unload
	step "dkms remove xpmem/$version"
	# shellcheck disable=SC2086
	in_root dkms remove -m xpmem -v "$version" --all $trees || fail "dkms remove"
	left=$(find $root/lib/modules/$release -name 'xpmem.ko*')
	[ -z "$left" ] || fail "dkms remove left $left"
	! in_root modinfo -n xpmem >/dev/null 2>&1 || fail "modinfo still finds xpmem after dkms remove"
	step "dkms: installed under /lib/modules/$release/updates/dkms, loaded by name, removed"
fi
in_root udevadm control --exit || true
step "PASS"
