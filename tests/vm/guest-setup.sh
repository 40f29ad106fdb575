#!/bin/sh
# Run inside the VM as root before the kernel suite: reserve huge pages for
# the hugetlbfs tests and give the guest swap (zram), which the lost-write
# and memory-pressure tests need to push shared and anonymous pages out.
set -e
echo 16 >/proc/sys/vm/nr_hugepages
if ! grep -q '^/dev/zram0' /proc/swaps; then
	modprobe zram num_devices=1
	echo 512M >/sys/block/zram0/disksize
	mkswap /dev/zram0 >/dev/null
	swapon /dev/zram0
fi
