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
#include <linux/rhashtable.h>
#include <linux/mm.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "xpmem_internal.h"

#define XPMEM_ID_MASK ((1ULL << 62) - 1)
#define XPMEM_USER_HASH_BITS 6

/*
 * Ids are looked up under RCU in tables that grow with their contents and
 * lock per bucket, so one user's many objects slow nobody else's lookups.
 */
static const struct rhashtable_params xpmem_seg_params = {
	.key_len = sizeof(s64),
	.key_offset = offsetof(struct xpmem_seg, id),
	.head_offset = offsetof(struct xpmem_seg, id_node),
	.automatic_shrinking = true,
};

static const struct rhashtable_params xpmem_permit_params = {
	.key_len = sizeof(s64),
	.key_offset = offsetof(struct xpmem_permit, id),
	.head_offset = offsetof(struct xpmem_permit, id_node),
	.automatic_shrinking = true,
};

static struct rhashtable xpmem_seg_ids;
static struct rhashtable xpmem_permit_ids;

/*
 * What one user (effective uid) holds, bounded like SysV's shmmni so that
 * no user can fill the kernel's memory or tables for everyone else.
 */
struct xpmem_user {
	struct hlist_node node; /* in xpmem_users, under xpmem_users_lock */
	kuid_t uid;
	refcount_t ref; /* one per segment and permit */
	atomic_t segments;
	atomic_t permits;
};

static DEFINE_SPINLOCK(xpmem_users_lock);
static DEFINE_HASHTABLE(xpmem_users, XPMEM_USER_HASH_BITS);

int xpmem_ids_init(void)
{
	int ret;

	ret = rhashtable_init(&xpmem_seg_ids, &xpmem_seg_params);
	if (ret)
		return ret;
	ret = rhashtable_init(&xpmem_permit_ids, &xpmem_permit_params);
	if (ret)
		rhashtable_destroy(&xpmem_seg_ids);
	return ret;
}

/* Every object is gone: the module cannot unload while a file is open. */
void xpmem_ids_exit(void)
{
	rhashtable_destroy(&xpmem_permit_ids);
	rhashtable_destroy(&xpmem_seg_ids);
}

static struct xpmem_user *xpmem_user_find_locked(kuid_t uid)
{
	struct xpmem_user *user;

	hash_for_each_possible(xpmem_users, user, node, __kuid_val(uid))
		if (uid_eq(user->uid, uid))
			return user;
	return NULL;
}

/* The calling user's record, referenced; NULL when out of memory. */
static struct xpmem_user *xpmem_user_get(void)
{
	kuid_t uid = current_euid();
	struct xpmem_user *user, *fresh;

	spin_lock(&xpmem_users_lock);
	user = xpmem_user_find_locked(uid);
	if (user)
		refcount_inc(&user->ref);
	spin_unlock(&xpmem_users_lock);
	if (user)
		return user;

	fresh = kzalloc(sizeof(*fresh), GFP_KERNEL);
	if (!fresh)
		return NULL;
	fresh->uid = uid;
	refcount_set(&fresh->ref, 1);
	spin_lock(&xpmem_users_lock);
	user = xpmem_user_find_locked(uid);
	if (user) {
		refcount_inc(&user->ref);
	} else {
		hash_add(xpmem_users, &fresh->node, __kuid_val(uid));
		user = fresh;
		fresh = NULL;
	}
	spin_unlock(&xpmem_users_lock);
	kfree(fresh);
	return user;
}

static void xpmem_user_put(struct xpmem_user *user)
{
	if (!refcount_dec_and_lock(&user->ref, &xpmem_users_lock))
		return;
	hash_del(&user->node);
	spin_unlock(&xpmem_users_lock);
	kfree(user);
}

/* Count one more object against @limit, or fail with -ENOSPC. */
static int xpmem_user_charge(atomic_t *count, unsigned int limit)
{
	if (atomic_inc_return(count) <= (int)min_t(unsigned int, limit, INT_MAX))
		return 0;
	atomic_dec(count);
	return -ENOSPC;
}

static s64 xpmem_random_id(void)
{
	s64 id;

	do {
		id = (s64)(get_random_u64() & XPMEM_ID_MASK);
	} while (id <= 0);
	return id;
}

/* Give @seg a fresh id and make it visible to lookups. */
static int xpmem_seg_publish(struct xpmem_seg *seg)
{
	int ret;

	do {
		seg->id = xpmem_random_id();
		ret = rhashtable_lookup_insert_fast(&xpmem_seg_ids,
						    &seg->id_node,
						    xpmem_seg_params);
	} while (ret == -EEXIST);
	return ret;
}

static int xpmem_permit_publish(struct xpmem_permit *permit)
{
	int ret;

	do {
		permit->id = xpmem_random_id();
		ret = rhashtable_lookup_insert_fast(&xpmem_permit_ids,
						    &permit->id_node,
						    xpmem_permit_params);
	} while (ret == -EEXIST);
	return ret;
}

static void xpmem_seg_free(struct kref *ref)
{
	struct xpmem_seg *seg = container_of(ref, struct xpmem_seg, ref);

	mmdrop(seg->mm);
	put_user_ns(seg->user_ns);
	atomic_dec(&seg->user->segments);
	xpmem_user_put(seg->user);
	kfree_rcu(seg, rcu); /* a lookup may still be looking at it */
	xpmem_stat_dec(XPMEM_STAT_SEGMENTS);
}

static void xpmem_seg_put(struct xpmem_seg *seg)
{
	kref_put(&seg->ref, xpmem_seg_free);
}

static struct xpmem_seg *xpmem_seg_lookup(s64 segid)
{
	struct xpmem_seg *seg;

	rcu_read_lock();
	seg = rhashtable_lookup(&xpmem_seg_ids, &segid, xpmem_seg_params);
	if (seg && !kref_get_unless_zero(&seg->ref))
		seg = NULL;
	rcu_read_unlock();
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

	rcu_read_lock();
	permit = rhashtable_lookup(&xpmem_permit_ids, &apid,
				   xpmem_permit_params);
	if (permit && !kref_get_unless_zero(&permit->ref))
		permit = NULL;
	rcu_read_unlock();
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
	atomic_dec(&permit->user->permits);
	xpmem_user_put(permit->user);
	kfree_rcu(permit, rcu); /* a lookup may still be looking at it */
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
	rhashtable_remove_fast(&xpmem_seg_ids, &seg->id_node,
			       xpmem_seg_params);

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
	rhashtable_remove_fast(&xpmem_permit_ids, &permit->id_node,
			       xpmem_permit_params);

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
	struct xpmem_user *user;
	struct xpmem_seg *seg;
	int ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.permit_type != XPMEM_ABI_PERMIT_MODE ||
	    cmd.permit_value & ~(u64)0777)
		return -EINVAL;

	user = xpmem_user_get();
	if (!user)
		return -ENOMEM;
	ret = xpmem_user_charge(&user->segments,
				READ_ONCE(xpmem_max_segments_per_user));
	if (ret)
		goto err_put_user;
	ret = -ENOMEM;
	seg = kzalloc(sizeof(*seg), GFP_KERNEL_ACCOUNT);
	if (!seg)
		goto err_uncharge;
	ret = xpmem_make_range(cmd.vaddr, cmd.size, &seg->vaddr, &seg->size);
	if (ret) {
		kfree(seg);
		goto err_uncharge;
	}
	kref_init(&seg->ref);
	mutex_init(&seg->lock);
	INIT_LIST_HEAD(&seg->permits);
	seg->owner = proc;
	seg->user = user; /* the segment now owns the charge */
	seg->mode = cmd.permit_value;
	seg->uid = current_euid();
	seg->gid = current_egid();
	seg->user_ns = get_user_ns(current_user_ns());
	mmgrab(proc->mm);
	seg->mm = proc->mm;
	xpmem_stat_inc(XPMEM_STAT_SEGMENTS);

	mutex_lock(&proc->lock);
	list_add_tail(&seg->owner_link, &proc->segs);
	ret = xpmem_seg_publish(seg);
	if (ret) {
		xpmem_seg_destroy(seg);
		mutex_unlock(&proc->lock);
		return ret;
	}
	kref_get(&seg->ref);
	mutex_unlock(&proc->lock);

	/* Not under proc->lock: a userfaultfd page could stall the copy. */
	if (put_user(seg->id, &uarg->segid)) {
		mutex_lock(&proc->lock);
		if (!list_empty(&seg->owner_link))
			xpmem_seg_destroy(seg);
		mutex_unlock(&proc->lock);
		ret = -EFAULT;
	}
	xpmem_seg_put(seg);
	return ret;

err_uncharge:
	atomic_dec(&user->segments);
err_put_user:
	xpmem_user_put(user);
	return ret;
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
	struct xpmem_user *user;
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
	user = xpmem_user_get();
	if (!user)
		goto out_put_seg;
	ret = xpmem_user_charge(&user->permits,
				READ_ONCE(xpmem_max_permits_per_user));
	if (ret)
		goto out_put_user;
	ret = -ENOMEM;
	permit = kzalloc(sizeof(*permit), GFP_KERNEL_ACCOUNT);
	if (!permit)
		goto out_uncharge;
	kref_init(&permit->ref);
	mutex_init(&permit->lock);
	INIT_LIST_HEAD(&permit->atts);
	permit->owner = proc;
	permit->user = user; /* the permit now owns the charge */
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
	ret = xpmem_permit_publish(permit);
	if (ret) {
		xpmem_permit_destroy(permit);
		mutex_unlock(&proc->lock);
		return ret;
	}
	kref_get(&permit->ref);
	mutex_unlock(&proc->lock);

	/* Not under proc->lock: a userfaultfd page could stall the copy. */
	if (put_user(permit->id, &uarg->apid)) {
		mutex_lock(&proc->lock);
		if (!list_empty(&permit->owner_link))
			xpmem_permit_destroy(permit);
		mutex_unlock(&proc->lock);
		ret = -EFAULT;
	}
	xpmem_permit_put(permit);
	return ret;

out_uncharge:
	atomic_dec(&user->permits);
out_put_user:
	xpmem_user_put(user);
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
