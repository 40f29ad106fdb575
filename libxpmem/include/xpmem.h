/*
 * xpmem.h - the XPMEM user API.
 *
 * Names, types, values and prototypes are those existing software (Open MPI,
 * UCX, MPICH, OpenSHMEM) is written against; keep them source and binary
 * compatible.  A process exports part of its address space with
 * xpmem_make(), another process obtains an access permit with xpmem_get()
 * and maps the memory with xpmem_attach().
 */
#ifndef XPMEM_H
#define XPMEM_H

#include <linux/types.h>
#ifndef __KERNEL__
#include <sys/types.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef __s64 xpmem_segid_t; /* segment id; valid ids are > 0 */
typedef __s64 xpmem_apid_t; /* access permit id; valid ids are > 0 */

struct xpmem_addr {
	xpmem_apid_t apid; /* from xpmem_get() */
	off_t offset; /* byte offset into the segment, page aligned */
};

#define XPMEM_MAXADDR_SIZE ((size_t)(-1L)) /* with vaddr NULL: everything */

/* errno of a call made through a device file this process did not open
 * (a forked child); the library re-opens and retries transparently. */
#define XPMEM_ERRNO_NOPROC 2004

/* xpmem_get() flags */
#define XPMEM_RDONLY 0x1
#define XPMEM_RDWR 0x2

/* permit types; the value is a Unix mode (e.g. (void *)0600) */
enum { XPMEM_PERMIT_MODE = 0x1 };

#if !defined(__KERNEL__)
/* All functions return -1 (xpmem_attach: (void *)-1) and set errno on
 * failure. */
int xpmem_version(void);
xpmem_segid_t xpmem_make(void *vaddr, size_t size, int permit_type,
			 void *permit_value);
int xpmem_remove(xpmem_segid_t segid);
/* permit_value is ignored: access is decided by the exporter's mode. */
xpmem_apid_t xpmem_get(xpmem_segid_t segid, int flags, int permit_type,
		       void *permit_value);
int xpmem_release(xpmem_apid_t apid);
void *xpmem_attach(struct xpmem_addr addr, size_t size, void *vaddr);
int xpmem_detach(void *vaddr);

/* Not in the historical header but exported by every libxpmem. */
int xpmem_init(void);
int xpmem_ioctl(int cmd, void *arg);

/* NULL when /dev/xpmem can be used, otherwise one sentence saying why not. */
const char *xpmem_unavailable_reason(void);
#endif

#ifdef __cplusplus
}
#endif

#endif /* XPMEM_H */
