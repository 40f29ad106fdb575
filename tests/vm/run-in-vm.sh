#!/usr/bin/env bash
# Boot a Debian kernel under QEMU/TCG, load xpmem.ko, run one command in a
# chroot of this machine's root filesystem, unload the module, and fail on a
# non-zero status, a failed unload, a timeout or any warning in the guest's
# kernel log.
#
#   run-in-vm.sh --module build/kmod/xpmem.ko [--kernel-release R]
#                [--timeout SECONDS] [--out DIR] [--smp N] [--mem SIZE] [--no-module]
#                [--prealloc] [--tsc-clock] [--kernel-image PATH] [--numa]
#                [--kernel-root DIR] [--append ARGS] -- command [args...]
#
# The host root is mounted read-only at the same paths inside the guest, so
# the command sees the build tree where it is; --out DIR (default: a fresh
# temporary directory) is mounted writable for results.  --prealloc backs
# all guest memory on the host before boot (benchmarks: a guest page first
# touched on the host costs far more than the copy being measured).
# --tsc-clock makes the guest keep time by the TSC, as real machines do:
# under TCG the kernel finds the vCPUs' TSCs "unsynchronized" and falls back
# to the HPET, and every clock_gettime() (Open MPI's progress loop reads the
# clock every 8th call) then becomes a system call and an emulated device
# access under QEMU's global lock, which other vCPUs wait on (benchmarks).
# --numa splits the guest's memory and vCPUs into two NUMA nodes, so tests
# can migrate pages between nodes.
# --kernel-root DIR takes the kernel (DIR/boot/vmlinuz-R) and its modules
# (DIR/lib/modules/R) from another root, the one kernel-root.sh builds for
# newer kernels; the guest sees them at /lib/modules/R, so modprobe works,
# while the command still runs in this machine's root.
# --append ARGS adds to the kernel command line (e.g. page_table_check=0).
# --kernel-image PATH boots that bzImage (e.g. the debug kernel from
# debug-kernel.sh) instead of /boot/vmlinuz-R; it must have everything the
# rig needs built in, as /lib/modules/R is not needed then.  When the guest
# kernel has kmemleak, the rig scans after the command and fails on any
# suspected leak whose backtrace mentions xpmem.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=""
krel=""
timeout_s=1200
outdir=""
smp=2
mem=4G
load_module=1
prealloc=""
kernel_args=""
kernel_image=""
numa=""
kroot=""

while [ $# -gt 0 ]; do
	case "$1" in
	--module) module=$(realpath "$2"); shift 2 ;;
	--kernel-release) krel=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--out) outdir=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--no-module) load_module=0; shift ;;
	--prealloc) prealloc=1; shift ;;
	--tsc-clock) kernel_args="${kernel_args:+$kernel_args }clocksource=tsc tsc=reliable"; shift ;;
	--append) kernel_args="${kernel_args:+$kernel_args }$2"; shift 2 ;;
	--kernel-image) kernel_image=$(realpath "$2"); shift 2 ;;
	--numa) numa=1; shift ;;
	--kernel-root) kroot=$(realpath "$2"); shift 2 ;;
	--) shift; break ;;
	*) echo "run-in-vm: unknown option $1" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || { echo "run-in-vm: no command given" >&2; exit 2; }
if [ -z "$krel" ]; then
	if [ -n "$module" ]; then
		krel=$(modinfo -F vermagic "$module" | awk '{print $1}')
	elif [ -n "$kernel_image" ]; then
		# The release string of a bzImage: at 0x200 + the 16-bit offset at 0x20e.
		off=$(od -An -tu2 -j $((0x20e)) -N2 "$kernel_image" | tr -d ' ')
		krel=$(dd if="$kernel_image" bs=1 skip=$((off + 0x200)) count=128 status=none | tr '\0' ' ' | awk '{print $1}')
	else
		krel=$(ls "$kroot/lib/modules" | sort -V | tail -n 1)
	fi
fi
if [ -n "$kernel_image" ]; then
	kernel=$kernel_image
	[ -f "$kernel" ] || { echo "run-in-vm: kernel image $kernel missing" >&2; exit 2; }
else
	kernel=$kroot/boot/vmlinuz-$krel
	moddir=$kroot/lib/modules/$krel
	for f in "$kernel" "$moddir/modules.dep"; do
		[ -e "$f" ] || { echo "run-in-vm: $f missing (install linux-image-$krel)" >&2; exit 2; }
	done
fi
[ "$load_module" = 0 ] || [ -f "$module" ] || { echo "run-in-vm: module '$module' not found" >&2; exit 2; }

work=$(mktemp -d /tmp/xpmem-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The guest mounts tmpfs over /run and /dev/shm: results go elsewhere.
if [ -z "$outdir" ]; then outdir=$(mktemp -d /var/tmp/xpmem-vm-out.XXXXXX); fi
mkdir -p "$outdir"
outdir=$(realpath "$outdir")
case "$outdir/" in
/run/* | /dev/shm/*) echo "run-in-vm: --out must not be under /run or /dev/shm" >&2; exit 2 ;;
esac

# --- initramfs: busybox and the modules needed to mount the host over 9p.
root=$work/initramfs
mkdir -p "$root"/{bin,dev,proc,sys,host,modules}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \
	netfs fscache 9pnet 9pnet_virtio 9p overlay; do
	path=$(modinfo ${kroot:+-b "$kroot"} -k "$krel" -n "$m" 2>/dev/null || true)
	case "$path" in
	"" | "(builtin)") continue ;; # built into this kernel
	*.ko) cp "$path" "$root/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$path" >"$root/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$path" >"$root/modules/$m.ko" ;;
	*.ko.gz) gzip -dc "$path" >"$root/modules/$m.ko" ;;
	esac
	echo "$m" >>"$root/modules/order"
done
touch "$root/modules/order" # empty when all are built in (--kernel-image)

quote() { printf '%q ' "$@"; }
cat >"$root/job.sh" <<JOB
cd $(printf '%q' "$PWD") || exit 97
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
export XPMEM_IN_VM=1 XPMEM_VM_OUT=$(printf '%q' "$outdir")
$(quote "$@")
JOB
cat >"$root/init" <<INIT
#!/bin/sh
echo "XPMEM-VM-INIT"
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in \$(cat /modules/order); do insmod /modules/\$m.ko || echo "VM: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || echo "VM: 9p mount failed"
if [ -n "$kroot" ]; then
	mount -t overlay overlay -o lowerdir=/host/lib/modules:/host$kroot/lib/modules /host/lib/modules ||
		echo "VM: overlay on /lib/modules failed"
fi
# /tmp: the host's files (a checkout may live there) under a writable tmpfs.
mkdir -p /upper && mount -t tmpfs tmpfs /upper && mkdir -p /upper/tmp /upper/work && chmod 1777 /upper/tmp
mount -t overlay overlay -o lowerdir=/host/tmp,upperdir=/upper/tmp,workdir=/upper/work /host/tmp || echo "VM: overlay on /tmp failed"
mount -t tmpfs -o mode=1777 tmpfs /host/run
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 outdir /host$outdir || echo "VM: results mount failed"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/shm && mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mkdir -p /host/dev/pts && mount -t devpts devpts /host/dev/pts
mount -t debugfs debugfs /host/sys/kernel/debug
ip link set lo up
hostname xpmem-vm # Open MPI rejects the default "(none)"
cp /job.sh /host/tmp/xpmem-job.sh
mod_rc=0
if [ $load_module = 1 ]; then insmod /host$module; mod_rc=\$?; fi
rc=99
if [ \$mod_rc = 0 ]; then
	chroot /host /bin/sh /tmp/xpmem-job.sh
	rc=\$?
fi
# A debug kernel with kmemleak: scan twice (objects younger than 5 s are not
# reported) while the module is loaded, so its backtraces keep their symbols.
if [ -e /host/sys/kernel/debug/kmemleak ]; then
	echo scan >/host/sys/kernel/debug/kmemleak; sleep 6; echo scan >/host/sys/kernel/debug/kmemleak
	echo "XPMEM-VM-KMEMLEAK-BEGIN"
	cat /host/sys/kernel/debug/kmemleak
	echo "XPMEM-VM-KMEMLEAK-END"
fi
rmmod_rc=0
if [ $load_module = 1 ] && [ \$mod_rc = 0 ]; then
	sync
	sed 's/^/XPMEM-VM-STAT /' /host/sys/kernel/debug/xpmem/stats
	rmmod xpmem; rmmod_rc=\$?
fi
echo "XPMEM-VM-DMESG-BEGIN"
dmesg
echo "XPMEM-VM-DMESG-END"
echo "XPMEM-VM-RESULT insmod=\$mod_rc job=\$rc rmmod=\$rmmod_rc"
sync
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initramfs.gz"

# --- boot
numa_args=()
smp_spec=$smp
if [ -n "$numa" ]; then
	# One socket per vCPU: a shared cache across nodes makes the kernel warn.
	smp_spec="$smp,sockets=$smp,cores=1,threads=1"
	half=$(($(numfmt --from=iec "$mem") / 2 / 1048576))M
	for n in 0 1; do
		numa_args+=(-object "memory-backend-ram,id=mem$n,size=$half"
			-numa "node,nodeid=$n,cpus=$((n % smp)),memdev=mem$n")
	done
fi
log=$outdir/vm-console.log
# A kernel that dies while booting, before init (the first line of which
# says XPMEM-VM-INIT) has run, has run none of our code: 7.x under TCG rarely
# hits an int3 Oops while it patches its own text.  That boot is repeated,
# once, and said so; any failure after init started counts.
boot() {
	started=$(date +%s)
	set +e
	timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
	-accel tcg,thread=multi -cpu max -smp "$smp_spec" -m "$mem" ${prealloc:+-mem-prealloc} "${numa_args[@]}" \
	-kernel "$kernel" -initrd "$work/initramfs.gz" \
	-append "console=ttyS0 panic=-1 oops=panic quiet loglevel=4${kernel_args:+ $kernel_args}" \
	-display none -monitor none -serial stdio -no-reboot \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$outdir",mount_tag=outdir,security_model=none,multidevs=remap \
	</dev/null | tee "$log" |
	sed -e '/XPMEM-VM-DMESG-BEGIN/,/XPMEM-VM-DMESG-END/d' -e '/XPMEM-VM-KMEMLEAK-BEGIN/,/XPMEM-VM-KMEMLEAK-END/d'
	qemu_rc=${PIPESTATUS[0]}
	set -e
	echo "run-in-vm: guest ran $(($(date +%s) - started)) s (kernel $krel)"
}
boot
if ! grep -aq 'XPMEM-VM-INIT' "$log" && grep -aqE 'Oops|BUG:|Kernel panic' "$log"; then
	mv "$log" "$outdir/vm-console-failed-boot.log"
	echo "run-in-vm: the kernel crashed while booting, before init ran (log kept in" \
		"$outdir/vm-console-failed-boot.log); booting again, once" >&2
	boot
fi

if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
	echo "run-in-vm: FAIL: timed out after $timeout_s s" >&2
	exit 1
fi
result=$(grep -a 'XPMEM-VM-RESULT' "$log" | tail -n 1 || true)
if [ -z "$result" ]; then
	echo "run-in-vm: FAIL: the guest did not finish (qemu status $qemu_rc; see $log)" >&2
	exit 1
fi
bad=$(sed -n '/XPMEM-VM-DMESG-BEGIN/,/XPMEM-VM-DMESG-END/p' "$log" |
	grep -aE 'WARNING:|BUG:|Oops|general protection|Call Trace|lockdep|refcount_t|possible recursive locking|circular locking|blocked for more than|UBSAN|KASAN|kernel BUG' |
	grep -av 'rcu: .*RCU lockdep checking is enabled' || true) # a lockdep kernel's boot banner
if [ -n "$bad" ]; then
	echo "run-in-vm: FAIL: the guest kernel log has warnings:" >&2
	echo "$bad" >&2
	exit 1
fi
leaked=$(grep -aE '^XPMEM-VM-STAT (registrations|segments|permits|attachments) [1-9]' "$log" || true)
if [ -n "$leaked" ]; then
	echo "run-in-vm: FAIL: objects still live after the job:" >&2
	echo "$leaked" >&2
	exit 1
fi
if grep -aq 'XPMEM-VM-KMEMLEAK-BEGIN' "$log"; then
	# One record per "unreferenced object" line; keep those whose backtrace mentions xpmem.
	leaks=$(sed -n '/XPMEM-VM-KMEMLEAK-BEGIN/,/XPMEM-VM-KMEMLEAK-END/p' "$log" | tr -d '\r' | awk '
		/XPMEM-VM-KMEMLEAK-(BEGIN|END)/ { next }
		/^unreferenced object/ { if (hit) print rec; rec = $0; hit = 0; bt = 0; next }
		rec != "" { rec = rec "\n" $0; if ($0 ~ /backtrace:/) bt = 1; else if (bt && $0 ~ /xpmem/) hit = 1 }
		END { if (hit) print rec }')
	total=$(sed -n '/XPMEM-VM-KMEMLEAK-BEGIN/,/XPMEM-VM-KMEMLEAK-END/p' "$log" | grep -ac '^unreferenced object' || true)
	if [ -n "$leaks" ]; then
		echo "run-in-vm: FAIL: kmemleak reports leaks from xpmem:" >&2
		echo "$leaks" >&2
		exit 1
	fi
	echo "run-in-vm: kmemleak: no leak from xpmem ($total other suspected leaks in $log)"
fi
echo "run-in-vm: $result"
case "$result" in
*"insmod=0 job=0 rmmod=0"*) exit 0 ;;
*) echo "run-in-vm: FAIL: $result" >&2; exit 1 ;;
esac
