// SPDX-License-Identifier: GPL-2.0
/*
 * Segments and access permits: make, remove, get, release, the id table
 * and the permission check.
 *
 * Ids are random 62-bit values so that they cannot be guessed and a stale
 * id never names a new object (nor a new process that reused a pid).
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/hashtable.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "xpmem_internal.h"

#define XPMEM_ID_HASH_BITS 10
#define XPMEM_ID_MASK ((1ULL << 62) - 1)

static DEFINE_SPINLOCK(xpmem_ids_lock);
static DEFINE_HASHTABLE(xpmem_seg_ids, XPMEM_ID_HASH_BITS);
static DEFINE_HASHTABLE(xpmem_permit_ids, XPMEM_ID_HASH_BITS);

int xpmem_ids_init(void)
{
	hash_init(xpmem_seg_ids);
	hash_init(xpmem_permit_ids);
	return 0;
}

static s64 xpmem_random_id(void)
{
	s64 id;

	do {
		id = (s64)(get_random_u64() & XPMEM_ID_MASK);
	} while (id <= 0);
	return id;
}

static struct xpmem_seg *xpmem_seg_find_locked(s64 id)
{
	struct xpmem_seg *seg;

	hash_for_each_possible(xpmem_seg_ids, seg, id_node, id)
		if (seg->id == id)
			return seg;
	return NULL;
}

static struct xpmem_permit *xpmem_permit_find_locked(s64 id)
{
	struct xpmem_permit *permit;

	hash_for_each_possible(xpmem_permit_ids, permit, id_node, id)
		if (permit->id == id)
			return permit;
	return NULL;
}

/* Give @seg a fresh id and make it visible to lookups. */
static void xpmem_seg_publish(struct xpmem_seg *seg)
{
	spin_lock(&xpmem_ids_lock);
	do {
		seg->id = xpmem_random_id();
	} while (xpmem_seg_find_locked(seg->id));
	hash_add(xpmem_seg_ids, &seg->id_node, seg->id);
	spin_unlock(&xpmem_ids_lock);
}

static void xpmem_permit_publish(struct xpmem_permit *permit)
{
	spin_lock(&xpmem_ids_lock);
	do {
		permit->id = xpmem_random_id();
	} while (xpmem_permit_find_locked(permit->id));
	hash_add(xpmem_permit_ids, &permit->id_node, permit->id);
	spin_unlock(&xpmem_ids_lock);
}

static void xpmem_seg_free(struct kref *ref)
{
	struct xpmem_seg *seg = container_of(ref, struct xpmem_seg, ref);

	mmdrop(seg->mm);
	put_user_ns(seg->user_ns);
	kfree(seg);
	xpmem_stat_dec(XPMEM_STAT_SEGMENTS);
}

static void xpmem_seg_put(struct xpmem_seg *seg)
{
	kref_put(&seg->ref, xpmem_seg_free);
}

static struct xpmem_seg *xpmem_seg_lookup(s64 segid)
{
	struct xpmem_seg *seg;

	spin_lock(&xpmem_ids_lock);
	seg = xpmem_seg_find_locked(segid);
	if (seg)
		kref_get(&seg->ref);
	spin_unlock(&xpmem_ids_lock);
	return seg;
}

/**
 * xpmem_permit_lookup() - find a live permit by id and take a reference.
 * @apid: the id handed out by get.
 *
 * Return: the permit, or NULL if no such id is published.
 */
struct xpmem_permit *xpmem_permit_lookup(s64 apid)
{
	struct xpmem_permit *permit;

	spin_lock(&xpmem_ids_lock);
	permit = xpmem_permit_find_locked(apid);
	if (permit)
		kref_get(&permit->ref);
	spin_unlock(&xpmem_ids_lock);
	return permit;
}

static void xpmem_permit_free(struct kref *ref)
{
	struct xpmem_permit *permit =
		container_of(ref, struct xpmem_permit, ref);
	struct xpmem_seg *seg = permit->seg;

	mutex_lock(&seg->lock);
	list_del(&permit->seg_link);
	mutex_unlock(&seg->lock);
	xpmem_seg_put(seg);
	kfree(permit);
	xpmem_stat_dec(XPMEM_STAT_PERMITS);
}

/**
 * xpmem_permit_put() - drop a permit reference.
 * @permit: the permit; its last reference unlinks it from its segment.
 *
 * Must not be called with the segment's lock held.
 */
void xpmem_permit_put(struct xpmem_permit *permit)
{
	kref_put(&permit->ref, xpmem_permit_free);
}

/* Invalidate every attachment made through @permit; they fault SIGBUS. */
static void xpmem_permit_kill_atts(struct xpmem_permit *permit)
{
	struct xpmem_att *att;

	mutex_lock(&permit->lock);
	permit->dead = true;
	list_for_each_entry(att, &permit->atts, permit_link)
		xpmem_att_kill(att);
	mutex_unlock(&permit->lock);
}

/* Called with owner->lock held; @seg is on owner->segs. */
static void xpmem_seg_destroy(struct xpmem_seg *seg)
{
	struct xpmem_permit *permit;

	list_del_init(&seg->owner_link);
	spin_lock(&xpmem_ids_lock);
	hash_del(&seg->id_node);
	spin_unlock(&xpmem_ids_lock);

	mutex_lock(&seg->lock);
	seg->dead = true;
	list_for_each_entry(permit, &seg->permits, seg_link)
		xpmem_permit_kill_atts(permit);
	mutex_unlock(&seg->lock);
	xpmem_seg_put(seg);
}

/* Called with owner->lock held; @permit is on owner->permits. */
static void xpmem_permit_destroy(struct xpmem_permit *permit)
{
	list_del_init(&permit->owner_link);
	spin_lock(&xpmem_ids_lock);
	hash_del(&permit->id_node);
	spin_unlock(&xpmem_ids_lock);

	xpmem_permit_kill_atts(permit);
	xpmem_permit_put(permit);
}

/*
 * Resolve the requested range.  XPMEM_MAXADDR_SIZE means "from vaddr to the
 * end of the address space", which is how MPI libraries export everything.
 */
static int xpmem_make_range(u64 vaddr, u64 size, unsigned long *start,
			    unsigned long *len)
{
	unsigned long limit = TASK_SIZE;

	if (vaddr >= limit || !PAGE_ALIGNED(vaddr))
		return -EINVAL;
	if (size == (u64)-1)
		size = (limit - vaddr) & PAGE_MASK;
	if (!size || !PAGE_ALIGNED(size) || size > limit - vaddr)
		return -EINVAL;
	*start = vaddr;
	*len = size;
	return 0;
}

long xpmem_make(struct xpmem_proc *proc, struct xpmem_cmd_make __user *uarg)
{
	struct xpmem_cmd_make cmd;
	struct xpmem_seg *seg;
	int ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.permit_type != XPMEM_ABI_PERMIT_MODE ||
	    cmd.permit_value & ~(u64)0777)
		return -EINVAL;

	seg = kzalloc(sizeof(*seg), GFP_KERNEL_ACCOUNT);
	if (!seg)
		return -ENOMEM;
	ret = xpmem_make_range(cmd.vaddr, cmd.size, &seg->vaddr, &seg->size);
	if (ret) {
		kfree(seg);
		return ret;
	}
	kref_init(&seg->ref);
	mutex_init(&seg->lock);
	INIT_LIST_HEAD(&seg->permits);
	seg->owner = proc;
	seg->mode = cmd.permit_value;
	seg->uid = current_euid();
	seg->gid = current_egid();
	seg->user_ns = get_user_ns(current_user_ns());
	mmgrab(proc->mm);
	seg->mm = proc->mm;
	xpmem_stat_inc(XPMEM_STAT_SEGMENTS);

	mutex_lock(&proc->lock);
	list_add_tail(&seg->owner_link, &proc->segs);
	xpmem_seg_publish(seg);
	if (put_user(seg->id, &uarg->segid)) {
		xpmem_seg_destroy(seg);
		mutex_unlock(&proc->lock);
		return -EFAULT;
	}
	mutex_unlock(&proc->lock);
	return 0;
}

long xpmem_remove(struct xpmem_proc *proc,
		  struct xpmem_cmd_remove __user *uarg)
{
	struct xpmem_cmd_remove cmd;
	struct xpmem_seg *seg;
	long ret = 0;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.segid <= 0)
		return -EINVAL;
	seg = xpmem_seg_lookup(cmd.segid);
	if (!seg)
		return -ENOENT;

	mutex_lock(&proc->lock);
	if (seg->owner != proc)
		ret = -EACCES;
	else if (list_empty(&seg->owner_link))
		ret = -ENOENT; /* lost a race with another remove */
	else
		xpmem_seg_destroy(seg);
	mutex_unlock(&proc->lock);
	xpmem_seg_put(seg);
	return ret;
}

/* SysV IPC style: owner, group (incl. supplementary), other. */
static int xpmem_check_access(const struct xpmem_seg *seg, bool writable)
{
	int want = writable ? 06 : 04;
	int granted;

	if (uid_eq(current_euid(), seg->uid))
		granted = seg->mode >> 6;
	else if (in_group_p(seg->gid))
		granted = seg->mode >> 3;
	else
		granted = seg->mode;
	if ((want & ~granted & 07) == 0)
		return 0;
	if (ns_capable(seg->user_ns, CAP_IPC_OWNER))
		return 0;
	return -EACCES;
}

/* The exporter's address space still exists (it has not exited). */
static bool xpmem_seg_alive(const struct xpmem_seg *seg)
{
	return !READ_ONCE(seg->dead) && atomic_read(&seg->mm->mm_users) > 0;
}

long xpmem_get(struct xpmem_proc *proc, struct xpmem_cmd_get __user *uarg)
{
	struct xpmem_cmd_get cmd;
	struct xpmem_permit *permit;
	struct xpmem_seg *seg;
	int ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.segid <= 0 || cmd.permit_type != XPMEM_ABI_PERMIT_MODE ||
	    cmd.permit_value != 0)
		return -EINVAL;
	if (cmd.flags != XPMEM_ABI_RDONLY && cmd.flags != XPMEM_ABI_RDWR)
		return -EINVAL;

	seg = xpmem_seg_lookup(cmd.segid);
	if (!seg)
		return -ENOENT;
	ret = -ENOENT;
	if (!xpmem_seg_alive(seg))
		goto out_put_seg;
	ret = xpmem_check_access(seg, cmd.flags == XPMEM_ABI_RDWR);
	if (ret)
		goto out_put_seg;

	ret = -ENOMEM;
	permit = kzalloc(sizeof(*permit), GFP_KERNEL_ACCOUNT);
	if (!permit)
		goto out_put_seg;
	kref_init(&permit->ref);
	mutex_init(&permit->lock);
	INIT_LIST_HEAD(&permit->atts);
	permit->owner = proc;
	permit->writable = cmd.flags == XPMEM_ABI_RDWR;
	permit->seg = seg; /* takes over the lookup reference */
	xpmem_stat_inc(XPMEM_STAT_PERMITS);

	mutex_lock(&seg->lock);
	if (seg->dead) {
		mutex_unlock(&seg->lock);
		INIT_LIST_HEAD(&permit->seg_link);
		xpmem_permit_put(permit);
		return -ENOENT;
	}
	list_add_tail(&permit->seg_link, &seg->permits);
	mutex_unlock(&seg->lock);

	mutex_lock(&proc->lock);
	list_add_tail(&permit->owner_link, &proc->permits);
	xpmem_permit_publish(permit);
	if (put_user(permit->id, &uarg->apid)) {
		xpmem_permit_destroy(permit);
		mutex_unlock(&proc->lock);
		return -EFAULT;
	}
	mutex_unlock(&proc->lock);
	return 0;

out_put_seg:
	xpmem_seg_put(seg);
	return ret;
}

long xpmem_release(struct xpmem_proc *proc,
		   struct xpmem_cmd_release __user *uarg)
{
	struct xpmem_cmd_release cmd;
	struct xpmem_permit *permit;
	long ret = 0;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.apid <= 0)
		return -EINVAL;
	permit = xpmem_permit_lookup(cmd.apid);
	if (!permit)
		return -ENOENT;

	mutex_lock(&proc->lock);
	if (permit->owner != proc)
		ret = -EACCES;
	else if (list_empty(&permit->owner_link))
		ret = -ENOENT;
	else
		xpmem_permit_destroy(permit);
	mutex_unlock(&proc->lock);
	xpmem_permit_put(permit);
	return ret;
}

/**
 * xpmem_proc_teardown() - remove everything a registration created.
 * @proc: the registration whose device file is being released.
 *
 * Runs in whatever task drops the last file reference; it touches no task
 * state, only the objects hanging off @proc.
 */
void xpmem_proc_teardown(struct xpmem_proc *proc)
{
	mutex_lock(&proc->lock);
	while (!list_empty(&proc->segs))
		xpmem_seg_destroy(list_first_entry(&proc->segs,
						   struct xpmem_seg,
						   owner_link));
	while (!list_empty(&proc->permits))
		xpmem_permit_destroy(list_first_entry(&proc->permits,
						      struct xpmem_permit,
						      owner_link));
	mutex_unlock(&proc->lock);
}
