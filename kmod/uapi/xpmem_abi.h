/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR LGPL-2.1 */
/*
 * The private ioctl ABI between libxpmem and the xpmem kernel module.
 *
 * Command numbers and argument layouts match the established XPMEM ABI so
 * that existing libxpmem binaries work with this module and this library
 * works with existing modules.  Only 64-bit callers are supported: the
 * layouts below are the x86_64 ones, spelled with fixed-width types and
 * explicit padding.
 */
#ifndef _UAPI_XPMEM_ABI_H
#define _UAPI_XPMEM_ABI_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define XPMEM_DEVICE_PATH "/dev/xpmem"

/* (major << 16) | (minor << 12) | patch, returned by XPMEM_CMD_VERSION. */
#define XPMEM_ABI_VERSION ((3 << 16) | (0 << 12) | 0)

/*
 * Returned (as a positive errno) when the calling process is not the one
 * that opened the device file, e.g. a forked child using an inherited fd.
 */
#define XPMEM_ABI_ERRNO_NOPROC 2004

#define XPMEM_ABI_RDONLY 0x1
#define XPMEM_ABI_RDWR 0x2
#define XPMEM_ABI_PERMIT_MODE 0x1

#define XPMEM_CMD_VERSION _IO('x', 0)
#define XPMEM_CMD_MAKE _IO('x', 1)
#define XPMEM_CMD_REMOVE _IO('x', 2)
#define XPMEM_CMD_GET _IO('x', 3)
#define XPMEM_CMD_RELEASE _IO('x', 4)
#define XPMEM_CMD_ATTACH _IO('x', 5)
#define XPMEM_CMD_DETACH _IO('x', 6)
#define XPMEM_CMD_FORK_BEGIN _IO('x', 7)
#define XPMEM_CMD_FORK_END _IO('x', 8)

struct xpmem_cmd_make {
	__u64 vaddr;
	__u64 size;
	__s32 permit_type;
	__u32 __pad;
	__u64 permit_value;
	__s64 segid; /* out */
};

struct xpmem_cmd_remove {
	__s64 segid;
};

struct xpmem_cmd_get {
	__s64 segid;
	__s32 flags;
	__s32 permit_type;
	__u64 permit_value;
	__s64 apid; /* out */
};

struct xpmem_cmd_release {
	__s64 apid;
};

struct xpmem_cmd_attach {
	__s64 apid;
	__s64 offset;
	__u64 size;
	__u64 vaddr; /* in: requested address or 0; out: mapped address */
	__s32 fd; /* unused, kept for layout compatibility */
	__s32 flags; /* unused, kept for layout compatibility */
};

struct xpmem_cmd_detach {
	__u64 vaddr;
};

#endif /* _UAPI_XPMEM_ABI_H */
