// SPDX-License-Identifier: GPL-2.0
/*
 * The /dev/xpmem misc device: registration on open, ioctl dispatch,
 * teardown on release, module parameters.
 */
#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>

#include "compat.h"
#include "xpmem_internal.h"

#ifndef CONFIG_MMU_NOTIFIER
#error "xpmem needs CONFIG_MMU_NOTIFIER"
#endif

unsigned int xpmem_fault_around_pages = 64;
module_param_named(fault_around_pages, xpmem_fault_around_pages, uint, 0644);
MODULE_PARM_DESC(fault_around_pages,
		 "Pages one fault maps around the faulting address when present in the exporter (rounded down to a power of two, 1..512, default 64)");

#ifdef XPMEM_HAVE_PTE_BATCH
bool xpmem_batch_ptes = true;
module_param_named(batch_ptes, xpmem_batch_ptes, bool, 0644);
MODULE_PARM_DESC(batch_ptes,
		 "Install a fault's PTEs in one locked walk of their page table (default on; off inserts them one at a time)");
#endif

#ifdef XPMEM_HAVE_HUGE_PFNMAP
bool xpmem_huge_mappings = true;
module_param_named(huge_mappings, xpmem_huge_mappings, bool, 0644);
MODULE_PARM_DESC(huge_mappings,
		 "Map 2 MiB of the exporter's huge pages with one PMD where the attachment allows (default on; off maps 4 KiB PTEs only)");
#endif

/*
 * Like SysV's shmmni, but per user: enough for every rank of a large node
 * to export twice (Open MPI and UCX each make one segment) and hold a
 * permit for every peer, far from what fills a node's memory.
 */
unsigned int xpmem_max_segments_per_user = 16384;
module_param_named(max_segments_per_user, xpmem_max_segments_per_user, uint,
		   0644);
MODULE_PARM_DESC(max_segments_per_user,
		 "Segments one user may hold at once; xpmem_make() fails with ENOSPC beyond (default 16384)");

unsigned int xpmem_max_permits_per_user = 262144;
module_param_named(max_permits_per_user, xpmem_max_permits_per_user, uint,
		   0644);
MODULE_PARM_DESC(max_permits_per_user,
		 "Access permits one user may hold at once; xpmem_get() fails with ENOSPC beyond (default 262144)");

static int xpmem_open(struct inode *inode, struct file *file)
{
	struct xpmem_proc *proc;

	if (!current->mm)
		return -EINVAL;
	proc = kzalloc(sizeof(*proc), GFP_KERNEL_ACCOUNT);
	if (!proc)
		return -ENOMEM;
	mutex_init(&proc->lock);
	INIT_LIST_HEAD(&proc->segs);
	INIT_LIST_HEAD(&proc->permits);
	mmgrab(current->mm);
	proc->mm = current->mm;
	proc->tgid = get_pid(task_tgid(current));
	file->private_data = proc;
	xpmem_stat_inc(XPMEM_STAT_PROCS);
	return 0;
}

/*
 * close() of any descriptor of the file, or the exit of a process holding
 * one.  When the process that opened the device closes it or exits,
 * everything it made goes, even if a forked child still holds a copy of
 * the descriptor: what README promises, and what the exporter expects when
 * it closes the device to revoke its segments.
 */
static int xpmem_fd_is(const void *file, struct file *candidate,
		       unsigned int fd)
{
	return candidate == file;
}

static int xpmem_flush(struct file *file, fl_owner_t id)
{
	struct xpmem_proc *proc = file->private_data;

	if (task_tgid(current) != proc->tgid)
		return 0;
	/*
	 * Closing one of several descriptors of the file (a dup) is not
	 * closing the device.  At exit current->files is already gone.
	 */
	if (current->files && iterate_fd(current->files, 0, xpmem_fd_is, file))
		return 0;
	xpmem_proc_teardown(proc);
	return 0;
}

/*
 * The last reference to the open file is gone.  This may run in any task
 * (the owner at exit, a forked child that inherited the fd, a delayed fput
 * worker), so it only tears down objects, never signals or touches a task.
 */
static int xpmem_release_file(struct inode *inode, struct file *file)
{
	struct xpmem_proc *proc = file->private_data;

	xpmem_proc_teardown(proc);
	put_pid(proc->tgid);
	mmdrop(proc->mm);
	kfree(proc);
	xpmem_stat_dec(XPMEM_STAT_PROCS);
	return 0;
}

static long xpmem_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct xpmem_proc *proc = file->private_data;
	void __user *uarg = (void __user *)arg;

	if (cmd == XPMEM_CMD_VERSION)
		return XPMEM_ABI_VERSION;
	/* A forked child must open the device itself (libxpmem does so). */
	if (proc->mm != current->mm)
		return -XPMEM_ABI_ERRNO_NOPROC;

	switch (cmd) {
	case XPMEM_CMD_MAKE:
		return xpmem_make(proc, uarg);
	case XPMEM_CMD_REMOVE:
		return xpmem_remove(proc, uarg);
	case XPMEM_CMD_GET:
		return xpmem_get(proc, uarg);
	case XPMEM_CMD_RELEASE:
		return xpmem_release(proc, uarg);
	case XPMEM_CMD_ATTACH:
		return xpmem_attach(proc, uarg);
	case XPMEM_CMD_DETACH:
		return xpmem_detach(proc, uarg);
	default:
		/* Including FORK_BEGIN/END: attachments need no fork recall. */
		return -ENOTTY;
	}
}

static const struct file_operations xpmem_fops = {
	.owner = THIS_MODULE,
	.open = xpmem_open,
	.flush = xpmem_flush,
	.release = xpmem_release_file,
	.unlocked_ioctl = xpmem_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice xpmem_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "xpmem",
	.fops = &xpmem_fops,
	.mode = 0666,
};

static int __init xpmem_init(void)
{
	int ret;

	ret = xpmem_ids_init();
	if (ret)
		return ret;
	ret = xpmem_att_init();
	if (ret)
		goto err_ids;
	xpmem_stats_init();
	ret = misc_register(&xpmem_misc);
	if (ret)
		goto err_stats;
	pr_info("xpmem: ABI %d.%d.%d loaded\n", XPMEM_ABI_VERSION >> 16,
		(XPMEM_ABI_VERSION >> 12) & 0xf, XPMEM_ABI_VERSION & 0xfff);
	return 0;

err_stats:
	xpmem_stats_exit();
	xpmem_att_exit();
err_ids:
	xpmem_ids_exit();
	return ret;
}

static void __exit xpmem_exit(void)
{
	misc_deregister(&xpmem_misc);
	xpmem_stats_exit();
	xpmem_att_exit();
	xpmem_ids_exit();
}

module_init(xpmem_init);
module_exit(xpmem_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Cross-process memory mapping (XPMEM) for single-copy MPI transports");
