/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Objects of the xpmem module and the functions one file calls in another.
 *
 * A process registers by opening /dev/xpmem (struct xpmem_proc, one per open
 * file).  It exports ranges of its address space as segments, other
 * processes obtain access permits to a segment, and map it through
 * attachments.  Each attachment is its own pseudo file whose VMA is a
 * VM_PFNMAP window onto the exporter's address space: pages are looked up
 * with hmm_range_fault() on demand and zapped through the file's
 * address_space when the exporter's mappings change, so no page is ever
 * pinned and no stale page stays reachable.
 *
 * Lock order (outermost first):
 *   proc->lock -> seg->lock -> permit->lock -> att->lock -> i_mmap_rwsem
 *   Ids are looked up under RCU; xpmem_users_lock (spinlock) nests inside
 *   any of the mutexes and never encloses anything that sleeps.
 *   In a fault: attacher mmap_lock -> exporter mmap_lock (trylock only;
 *   on contention the attacher's is dropped first) ; the exporter's
 *   mmap_lock is released before att->lock is taken.
 *   The notifier takes att->lock alone and waits, with no lock held, for
 *   a worker that takes the attachment's i_mmap_rwsem and the attacher's
 *   page-table locks, never an mmap_lock.
 */
#ifndef _XPMEM_INTERNAL_H
#define _XPMEM_INTERNAL_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/rhashtable-types.h>
#include <linux/types.h>
#include <linux/uidgid.h>

#include "uapi/xpmem_abi.h"

struct xpmem_proc {
	struct mm_struct *mm; /* grabbed; the registering address space */
	struct pid *tgid; /* referenced; the registering process */
	struct mutex lock; /* protects segs and permits */
	struct list_head segs;
	struct list_head permits;
};

struct xpmem_user;

struct xpmem_seg {
	s64 id;
	struct rhash_head id_node; /* in the id table, looked up under RCU */
	struct rcu_head rcu;
	struct kref ref;
	struct xpmem_user *user; /* referenced; charged for this segment */
	const struct xpmem_proc *owner; /* identity only, never dereferenced */
	struct mm_struct *mm; /* grabbed */
	unsigned long vaddr;
	unsigned long size;
	umode_t mode;
	kuid_t uid;
	kgid_t gid;
	struct user_namespace *user_ns; /* owner's, for CAP_IPC_OWNER */
	struct mutex lock; /* protects permits and dead */
	struct list_head permits;
	struct list_head owner_link; /* in owner->segs */
	bool dead;
};

struct xpmem_permit {
	s64 id;
	struct rhash_head id_node;
	struct rcu_head rcu;
	struct kref ref;
	struct xpmem_user *user; /* referenced; charged for this permit */
	const struct xpmem_proc *owner; /* identity only */
	struct xpmem_seg *seg; /* referenced */
	bool writable;
	struct mutex lock; /* protects atts and dead */
	struct list_head atts;
	struct list_head seg_link; /* in seg->permits */
	struct list_head owner_link; /* in owner->permits */
	bool dead;
};

struct xpmem_att {
	struct xpmem_permit *permit; /* referenced */
	struct mmu_interval_notifier notifier; /* on the exporter's mm */
	/*
	 * Serialises installing PTEs against invalidation: a fault installs
	 * only under this lock after mmu_interval_read_retry() said its
	 * snapshot is still valid, and the notifier bumps the sequence under
	 * it before zapping.
	 */
	struct mutex lock;
	/*
	 * Serialises changes to the attachment's page-table structure: the
	 * PTE tables a fault preallocates and the PMD leaves a huge fault
	 * installs, so neither finds the other's entry where it expects none.
	 * Never taken by the notifier; taken before lock.
	 */
	struct mutex pt_lock;
	struct address_space *mapping; /* of this attachment's inode */
	const struct mm_struct *attacher_mm; /* identity only, set at mmap */
	unsigned long src_start; /* exporter address of page 0 */
	unsigned long size;
	/* Under lock: offsets that may have PTEs, empty when start >= end. */
	unsigned long mapped_start;
	unsigned long mapped_end;
	bool writable;
	bool dead; /* under lock: segment removed, permit released */
	struct list_head permit_link; /* in permit->atts */
};

/* xpmem_seg.c */
int xpmem_ids_init(void);
void xpmem_ids_exit(void);
long xpmem_make(struct xpmem_proc *proc, struct xpmem_cmd_make __user *uarg);
long xpmem_remove(struct xpmem_proc *proc,
		  struct xpmem_cmd_remove __user *uarg);
long xpmem_get(struct xpmem_proc *proc, struct xpmem_cmd_get __user *uarg);
long xpmem_release(struct xpmem_proc *proc,
		   struct xpmem_cmd_release __user *uarg);
void xpmem_proc_teardown(struct xpmem_proc *proc);
struct xpmem_permit *xpmem_permit_lookup(s64 apid);
void xpmem_permit_put(struct xpmem_permit *permit);

/* xpmem_att.c */
int xpmem_att_init(void);
void xpmem_att_exit(void);
long xpmem_attach(struct xpmem_proc *proc,
		  struct xpmem_cmd_attach __user *uarg);
long xpmem_detach(struct xpmem_proc *proc,
		  struct xpmem_cmd_detach __user *uarg);
void xpmem_att_kill(struct xpmem_att *att);

/* xpmem_stats.c */
enum xpmem_stat {
	XPMEM_STAT_SEGMENTS,
	XPMEM_STAT_PERMITS,
	XPMEM_STAT_ATTACHMENTS,
	XPMEM_STAT_PROCS,
	XPMEM_STAT_FAULTS,
	XPMEM_STAT_PTES_INSTALLED,
	XPMEM_STAT_PMDS_INSTALLED,
	XPMEM_STAT_PTE_TABLE_LOCKS,
	XPMEM_STAT_INVALIDATIONS,
	XPMEM_STAT_FAULT_RETRIES,
	XPMEM_STAT_FAULT_LOCK_FAILURES,
	XPMEM_NR_STATS
};

void xpmem_stat_add(enum xpmem_stat stat, long delta);
static inline void xpmem_stat_inc(enum xpmem_stat stat)
{
	xpmem_stat_add(stat, 1);
}

static inline void xpmem_stat_dec(enum xpmem_stat stat)
{
	xpmem_stat_add(stat, -1);
}

void xpmem_stats_init(void);
void xpmem_stats_exit(void);

/* xpmem_main.c: tunables */
extern unsigned int xpmem_fault_around_pages;
#ifdef XPMEM_HAVE_PTE_BATCH
extern bool xpmem_batch_ptes;
#endif
#ifdef XPMEM_HAVE_HUGE_PFNMAP
extern bool xpmem_huge_mappings;
#endif
extern unsigned int xpmem_max_segments_per_user;
extern unsigned int xpmem_max_permits_per_user;

#endif /* _XPMEM_INTERNAL_H */
