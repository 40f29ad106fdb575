#!/usr/bin/env bash
# Build (once) a small debug kernel for the VM rig: Debian's linux-source,
# x86_64_defconfig plus what the rig needs, all built in (=y), with KASAN,
# lockdep, kmemleak, DEBUG_VM, DEBUG_PAGEALLOC, page owner, page-table check
# and the lockup detectors.  Only Debian packages are downloaded.
#
#   debug-kernel.sh [--print-config] [--root DIR --series X.Y]
#
# Without --root: Debian 12's linux-source-6.1, built on this machine.
# With --root DIR --series X.Y: linux-source-X.Y of DIR's archive (a root made
# by kernel-root.sh: trixie, trixie-backports), unpacked and built inside DIR
# with its compiler and tools (chroot), as a newer kernel needs.
#
# Cache: ${XPMEM_CACHE:-/var/cache/xpmem-dev}/debug-kernel, or
# DIR/var/cache/xpmem-debug-kernel with --root (outside the tree; about 4 GB
# each).  It keeps the unpacked, built source tree (a kernel build tree:
# `make -C $KERNEL_BUILD M=<dir> modules` builds an external module against
# it) and an `env` file with KERNEL_IMAGE=, KERNEL_BUILD=, KERNEL_RELEASE=
# (host paths) and, with --root, KERNEL_ROOT= (then KERNEL_BUILD is to be
# used inside that root: chroot KERNEL_ROOT make -C ${KERNEL_BUILD#KERNEL_ROOT}).
# The build is skipped when the image exists for the same configuration hash
# (this script's fragment + the linux-source package version).  Takes about
# 1-2 hours on 2 cores the first time (nice -n 10 make -j$XPMEM_JOBS, default 2).
#
# Use:  . "$(tests/vm/debug-kernel.sh | tail -n 1)"   (the last line is the env file)
#       tests/vm/run-in-vm.sh --kernel-image "$KERNEL_IMAGE" --module xpmem.ko ...
set -euo pipefail

jobs=${XPMEM_JOBS:-2}
root="" series=6.1 print=0
while [ $# -gt 0 ]; do
	case "$1" in
	--print-config) print=1; shift ;;
	--root) root=$(realpath "$2"); shift 2 ;;
	--series) series=$2; shift 2 ;;
	*) echo "debug-kernel: unknown option $1" >&2; exit 2 ;;
	esac
done
pkg=linux-source-$series
if [ -n "$root" ]; then
	cache=$root/var/cache/xpmem-debug-kernel
else
	cache=${XPMEM_CACHE:-/var/cache/xpmem-dev}/debug-kernel
fi
tarball=$root/usr/src/linux-source-$series.tar.xz

# The configuration on top of x86_64_defconfig.  NAME=y/n, NAME="string", NAME=number.
# HMM_MIRROR has no prompt: TEST_HMM (a test driver, built in) selects it and
# needs ZONE_DEVICE/DEVICE_PRIVATE.  page_owner needs page_owner=on at boot,
# hence the built-in command line (prepended to the rig's), which also asks
# KASAN to report every bad access rather than the first; a 2 MiB log buffer
# keeps every report for the rig's dmesg check.  The =n lines only trim the
# build (drivers the VM never uses).
fragment() {
	cat <<'EOF'
LOCALVERSION="-xpmem-debug"
LOCALVERSION_AUTO=n
MODULES=y
MODULE_UNLOAD=y
SERIAL_8250=y
SERIAL_8250_CONSOLE=y
BLK_DEV_INITRD=y
RD_GZIP=y
DEVTMPFS=y
DEVTMPFS_MOUNT=y
UNIX98_PTYS=y
SYSVIPC=y
POSIX_MQUEUE=y
FUTEX=y
NAMESPACES=y
USER_NS=y
NET=y
UNIX=y
INET=y
PCI=y
VIRTIO_MENU=y
VIRTIO=y
VIRTIO_PCI=y
VIRTIO_PCI_LEGACY=y
NETWORK_FILESYSTEMS=y
NET_9P=y
NET_9P_VIRTIO=y
9P_FS=y
9P_FS_POSIX_ACL=y
OVERLAY_FS=y
TMPFS=y
TMPFS_POSIX_ACL=y
DEBUG_FS=y
HUGETLBFS=y
HUGETLB_PAGE=y
TRANSPARENT_HUGEPAGE=y
SWAP=y
BLK_DEV=y
ZSMALLOC=y
CRYPTO_LZO=y
CRYPTO_ZSTD=y
ZRAM=y
KSM=y
NUMA=y
MIGRATION=y
COMPACTION=y
MEMCG=y
MEMORY_HOTPLUG=y
MEMORY_HOTREMOVE=y
ZONE_DEVICE=y
DEVICE_PRIVATE=y
TEST_HMM=y
HMM_MIRROR=y
MMU_NOTIFIER=y
CMDLINE_BOOL=y
CMDLINE="page_owner=on kasan_multi_shot"
LOG_BUF_SHIFT=21
DEBUG_KERNEL=y
KASAN=y
KASAN_GENERIC=y
KASAN_INLINE=y
KASAN_OUTLINE=n
KASAN_VMALLOC=y
PROVE_LOCKING=y
DEBUG_VM=y
DEBUG_VM_PGFLAGS=y
DEBUG_ATOMIC_SLEEP=y
DEBUG_KMEMLEAK=y
DEBUG_KMEMLEAK_AUTO_SCAN=y
DEBUG_KMEMLEAK_DEFAULT_OFF=n
DEBUG_KMEMLEAK_MEM_POOL_SIZE=40000
DEBUG_PAGEALLOC=y
DEBUG_PAGEALLOC_ENABLE_DEFAULT=y
PAGE_OWNER=y
PAGE_TABLE_CHECK=y
PAGE_TABLE_CHECK_ENFORCED=y
DEBUG_LIST=y
DEBUG_OBJECTS=y
DEBUG_OBJECTS_FREE=y
DEBUG_OBJECTS_TIMERS=y
DEBUG_OBJECTS_WORK=y
LOCKUP_DETECTOR=y
SOFTLOCKUP_DETECTOR=y
HARDLOCKUP_DETECTOR=y
DETECT_HUNG_TASK=y
DRM=n
AGP=n
SOUND=n
USB_SUPPORT=n
WIRELESS=n
WLAN=n
CFG80211=n
MAC80211=n
RFKILL=n
ETHERNET=n
NETFILTER=n
NET_SCHED=n
NETLABEL=n
PCCARD=n
ATA=n
SCSI=n
EOF
}

if [ "$print" = 1 ]; then fragment; exit 0; fi

log() { echo "debug-kernel: $*" >&2; }

# Runs a command on this machine, or inside the root (with /proc: objtool
# and kbuild read it).
if [ -n "$root" ]; then
	[ -x "$root/usr/bin/apt-get" ] || { log "FAIL: $root is not a Debian root (run kernel-root.sh)"; exit 1; }
	# Its own mount (stacked over any other), as build-kmod-in-root.sh does,
	# so either can finish first.
	mount -t proc proc "$root/proc"
	trap 'umount "$root/proc"' EXIT
	env_prefix=(chroot "$root" env LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin)
else
	env_prefix=(env)
fi
in_env() { "${env_prefix[@]}" DEBIAN_FRONTEND=noninteractive "$@"; }

# --- packages (from Debian's archive only; a newer series may be in backports)
need=()
for p in $pkg build-essential bc bison flex libelf-dev libssl-dev cpio kmod xz-utils python3; do
	in_env dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}${root:+ in $root}"
	in_env apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
		in_env apt-get install -y --no-install-recommends -t "$(in_env sh -c '. /etc/os-release; echo $VERSION_CODENAME')-backports" "${need[@]}" >&2
fi
[ -f "$tarball" ] || { log "$tarball missing after installing $pkg"; exit 1; }
srcver=$(in_env dpkg-query -W -f='${Version}' "$pkg")

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time

hash=$( { fragment; echo "$pkg $srcver"; } | sha256sum | cut -c1-16)
tree=$cache/linux-$srcver
image=$tree/arch/x86/boot/bzImage
envfile=$cache/env

if [ -f "$image" ] && [ -f "$tree/Module.symvers" ] && [ "$(cat "$tree/.xpmem-config-hash" 2>/dev/null)" = "$hash" ]; then
	log "cached: $image (config $hash)"
else
	# --- unpack (a different source version's tree is removed)
	if [ ! -f "$tree/Makefile" ]; then
		for old in "$cache"/linux-*; do [ -e "$old" ] && [ "$old" != "$tree" ] && rm -rf "$old"; done
		log "unpacking $tarball ($srcver)"
		rm -rf "$tree.tmp" && mkdir -p "$tree.tmp"
		tar -xJf "$tarball" -C "$tree.tmp"
		mv "$tree.tmp/linux-source-$series" "$tree" && rmdir "$tree.tmp"
	fi
	cd "$tree"
	rm -f .xpmem-config-hash
	# kmake: make in the tree, on this machine or inside the root.
	kmake() { nice -n 10 "${env_prefix[@]}" make -C "${tree#"$root"}" "$@"; }
	# --- configure
	kmake -s x86_64_defconfig
	args=()
	while IFS= read -r line; do
		name=${line%%=*} val=${line#*=}
		case "$val" in
		y) args+=(--enable "$name") ;;
		n) args+=(--disable "$name") ;;
		\"*\") val=${val#\"}; args+=(--set-str "$name" "${val%\"}") ;;
		*) args+=(--set-val "$name" "$val") ;;
		esac
	done < <(fragment)
	scripts/config "${args[@]}"
	kmake -s olddefconfig
	# Every requested option must have survived olddefconfig.
	missing=0
	while IFS= read -r line; do
		name=${line%%=*} val=${line#*=}
		case "$val" in
		n) grep -qx "CONFIG_$name=y" .config && { log "CONFIG_$name is still set"; missing=1; } ;;
		*) grep -qxF "CONFIG_$line" .config || {
			log "CONFIG_$name is not $val: $(grep -E "(^| )CONFIG_${name}[= ]" .config || echo absent)"
			missing=1
		} ;;
		esac
	done < <(fragment)
	[ "$missing" = 0 ] || { log "FAIL: the configuration above did not take (see $tree/.config)"; exit 1; }
	# --- build: the image, and the few modules for Module.symvers / modules_prepare
	log "building $(kmake -s kernelversion)$(sed -n 's/^CONFIG_LOCALVERSION="\(.*\)"$/\1/p' .config) in $tree with -j$jobs (log: $cache/build.log)"
	started=$(date +%s)
	if ! kmake -j"$jobs" bzImage modules </dev/null >"$cache/build.log" 2>&1; then
		tail -n 40 "$cache/build.log" >&2
		log "FAIL: build failed (see $cache/build.log)"
		exit 1
	fi
	kmake -j"$jobs" modules_prepare </dev/null >>"$cache/build.log" 2>&1
	log "built in $(($(date +%s) - started)) s"
	echo "$hash" >.xpmem-config-hash
fi

release=$(cat "$tree/include/config/kernel.release")
cat >"$envfile" <<EOF
KERNEL_IMAGE=$image
KERNEL_BUILD=$tree
KERNEL_RELEASE=$release
${root:+KERNEL_ROOT=$root}
EOF
log "KERNEL_IMAGE=$image"
log "KERNEL_BUILD=$tree"
log "KERNEL_RELEASE=$release"
echo "$envfile"
