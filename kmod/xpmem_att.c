// SPDX-License-Identifier: GPL-2.0
/*
 * Attachments: attach, detach, the page-fault path and the invalidation
 * notifier.
 *
 * Every attachment is an anonymous inode on a private pseudo filesystem.
 * Its VMA (VM_PFNMAP, shared, never copied on fork) holds the file, so the
 * attachment lives exactly as long as some VMA maps it.  Faults look up the
 * exporter's pages with hmm_range_fault() under an mmu_interval_notifier
 * that covers the attached range; when the exporter's mapping changes, the
 * notifier zaps our PTEs with unmap_mapping_range() on the attachment's own
 * address_space, which is safe without the attacher's mmap_lock.  No page is
 * pinned: a mapped page stays valid only until the exporter's next
 * invalidation of it, which removes it from every attacher first.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hmm.h>
#include <linux/huge_mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "xpmem_internal.h"

#define XPMEM_FS_MAGIC 0x78706d6d /* "xpmm" */

static struct vfsmount *xpmem_mnt;

static int xpmem_fs_init_fs_context(struct fs_context *fc)
{
	return init_pseudo(fc, XPMEM_FS_MAGIC) ? 0 : -ENOMEM;
}

static struct file_system_type xpmem_fs_type = {
	.name = "xpmem_att",
	.init_fs_context = xpmem_fs_init_fs_context,
	.kill_sb = kill_anon_super,
};

int xpmem_att_init(void)
{
	xpmem_mnt = kern_mount(&xpmem_fs_type);
	return PTR_ERR_OR_ZERO(xpmem_mnt);
}

void xpmem_att_exit(void)
{
	kern_unmount(xpmem_mnt);
}

/**
 * xpmem_att_kill() - make an attachment fault SIGBUS from now on.
 * @att: the attachment; its permit's lock is held by the caller.
 *
 * Marks it dead under att->lock, so no fault can install a PTE afterwards,
 * then removes the PTEs already installed.
 */
void xpmem_att_kill(struct xpmem_att *att)
{
	mutex_lock(&att->lock);
	att->dead = true;
	mutex_unlock(&att->lock);
	unmap_mapping_range(att->mapping, 0, att->size, 1);
}

static bool xpmem_att_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	struct xpmem_att *att = container_of(mni, struct xpmem_att, notifier);
	unsigned long start = max(range->start, att->src_start);
	unsigned long end = min(range->end, att->src_start + att->size);

	/* Zapping takes i_mmap_rwsem; the OOM reaper must skip this mm. */
	if (!mmu_notifier_range_blockable(range))
		return false;

	mutex_lock(&att->lock);
	mmu_interval_set_seq(mni, cur_seq);
	mutex_unlock(&att->lock);

	/*
	 * Any fault that installs a PTE after this point re-checks the
	 * sequence under att->lock and retries; any installed before it is
	 * removed here, before the exporter can free or reuse the page.
	 */
	if (start < end)
		unmap_mapping_range(att->mapping, start - att->src_start,
				    end - start, 1);
	xpmem_stat_inc(XPMEM_STAT_INVALIDATIONS);
	return true;
}

static const struct mmu_interval_notifier_ops xpmem_att_notifier_ops = {
	.invalidate = xpmem_att_invalidate,
};

/*
 * Take the exporter's mmap_lock for reading while the attacher's is held.
 * Two processes faulting on each other's attachments would deadlock on a
 * blocking lock once writers queue on both, so only trylock here; on
 * contention drop our own lock, wait for theirs, and let the fault retry.
 *
 * Return: 0 with @src_mm locked, or VM_FAULT_RETRY with no lock held.
 */
static vm_fault_t xpmem_lock_exporter(struct vm_fault *vmf,
				      struct mm_struct *src_mm)
{
	if (src_mm == vmf->vma->vm_mm || mmap_read_trylock(src_mm))
		return 0;
	if ((vmf->flags & FAULT_FLAG_ALLOW_RETRY) &&
	    !(vmf->flags & FAULT_FLAG_RETRY_NOWAIT)) {
		xpmem_release_fault_lock(vmf);
		mmap_read_lock(src_mm);
		mmap_read_unlock(src_mm);
		xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
		return VM_FAULT_RETRY;
	}
	mmap_read_lock(src_mm);
	return 0;
}

static void xpmem_unlock_exporter(struct vm_fault *vmf,
				  struct mm_struct *src_mm)
{
	if (src_mm != vmf->vma->vm_mm)
		mmap_read_unlock(src_mm);
}

/* The window of pages one fault maps: aligned, inside the VMA. */
static void xpmem_fault_window(struct vm_fault *vmf, unsigned long *start,
			       unsigned long *end)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned int want = clamp(READ_ONCE(xpmem_fault_around_pages), 1U, 512U);
	unsigned long win = rounddown_pow_of_two(want) << PAGE_SHIFT;
	unsigned long base = vmf->address & ~(win - 1);

	*start = max(base, vma->vm_start);
	*end = min(base + win, vma->vm_end);
}

static unsigned long xpmem_src_addr(const struct xpmem_att *att,
				    const struct vm_area_struct *vma,
				    unsigned long addr)
{
	return att->src_start + ((vma->vm_pgoff << PAGE_SHIFT) +
				 (addr - vma->vm_start));
}

static vm_fault_t xpmem_hmm_error(int err)
{
	switch (err) {
	case -ENOMEM:
		return VM_FAULT_OOM;
	case -EPERM: /* write to a page the exporter cannot write */
		return VM_FAULT_SIGSEGV;
	default: /* a hole, a PFNMAP range, a poisoned page */
		return VM_FAULT_SIGBUS;
	}
}

/*
 * Install the snapshot in @pfns.  Called with att->lock held and the
 * snapshot known to be current.  A page is mapped writable only where the
 * exporter's own PTE is writable, so read-only, COW-shared and zero pages
 * are never written through an attachment; a later write to such a PTE
 * goes through xpmem_pfn_mkwrite().
 */
static vm_fault_t xpmem_install(struct vm_fault *vmf, struct xpmem_att *att,
				const unsigned long *pfns, unsigned long start,
				unsigned long npages)
{
	struct vm_area_struct *vma = vmf->vma;
	pgprot_t prot_ro = vma->vm_page_prot;
	pgprot_t prot_rw = vm_get_page_prot(vma->vm_flags);
	vm_fault_t ret = VM_FAULT_NOPAGE;
	unsigned long i, installed = 0;

	for (i = 0; i < npages; i++) {
		unsigned long addr = start + (i << PAGE_SHIFT);
		unsigned long hpfn = pfns[i];
		bool fault_page = addr == (vmf->address & PAGE_MASK);
		vm_fault_t r;

		if (!(hpfn & HMM_PFN_VALID))
			continue;
		r = vmf_insert_pfn_prot(vma, addr,
					page_to_pfn(hmm_pfn_to_page(hpfn)),
					(hpfn & HMM_PFN_WRITE) && att->writable ?
						prot_rw : prot_ro);
		if (r & VM_FAULT_ERROR) {
			if (fault_page)
				ret = r;
			if (r & VM_FAULT_OOM)
				break;
			continue;
		}
		installed++;
	}
	xpmem_stat_add(XPMEM_STAT_PTES_INSTALLED, installed);
	return ret;
}

static vm_fault_t xpmem_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_att *att = vma->vm_file->private_data;
	struct mm_struct *src_mm = att->permit->seg->mm;
	unsigned long start, end, npages, fault_idx;
	struct hmm_range range = {};
	unsigned int noreclaim;
	unsigned long *pfns;
	vm_fault_t ret;
	int err;

	xpmem_stat_inc(XPMEM_STAT_FAULTS);
	if (READ_ONCE(att->dead) || !mmget_not_zero(src_mm))
		return VM_FAULT_SIGBUS;

	xpmem_fault_window(vmf, &start, &end);
	npages = (end - start) >> PAGE_SHIFT;
	fault_idx = (vmf->address - start) >> PAGE_SHIFT;
	pfns = kmalloc_array(npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns) {
		ret = VM_FAULT_OOM;
		goto out_mmput;
	}

	range.notifier = &att->notifier;
	range.start = xpmem_src_addr(att, vma, start);
	range.end = range.start + (end - start);
	range.hmm_pfns = pfns;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;

again:
	if (fatal_signal_pending(current)) {
		ret = VM_FAULT_NOPAGE;
		goto out_free;
	}
	/* Neighbours are mapped only if present; the faulting page is made so. */
	memset(pfns, 0, npages * sizeof(*pfns));
	pfns[fault_idx] = HMM_PFN_REQ_FAULT;
	if (vmf->flags & FAULT_FLAG_WRITE)
		pfns[fault_idx] |= HMM_PFN_REQ_WRITE;
	range.notifier_seq = mmu_interval_read_begin(&att->notifier);

	ret = xpmem_lock_exporter(vmf, src_mm);
	if (ret)
		goto out_free;
	err = hmm_range_fault(&range);
	xpmem_unlock_exporter(vmf, src_mm);
	if (err == -EBUSY)
		goto again;
	if (err) {
		ret = xpmem_hmm_error(err);
		goto out_free;
	}

	/* No reclaim while holding att->lock: reclaim may call our notifier. */
	noreclaim = memalloc_noreclaim_save();
	mutex_lock(&att->lock);
	if (att->dead) {
		ret = VM_FAULT_SIGBUS;
	} else if (mmu_interval_read_retry(&att->notifier,
					   range.notifier_seq)) {
		mutex_unlock(&att->lock);
		memalloc_noreclaim_restore(noreclaim);
		goto again;
	} else {
		ret = xpmem_install(vmf, att, pfns, start, npages);
	}
	mutex_unlock(&att->lock);
	memalloc_noreclaim_restore(noreclaim);

out_free:
	kfree(pfns);
out_mmput:
	/* Never run the exporter's exit_mmap() from inside our fault. */
	mmput_async(src_mm);
	return ret;
}

/*
 * A write hit a PTE we installed read-only (the exporter's page was
 * read-only, shared copy-on-write or the zero page).  Drop the PTE and let
 * the access fault again as a write, which asks the exporter's mm for a
 * writable page or fails if there is none.
 */
static vm_fault_t xpmem_pfn_mkwrite(struct vm_fault *vmf)
{
	zap_vma_ptes(vmf->vma, vmf->address & PAGE_MASK, PAGE_SIZE);
	return VM_FAULT_NOPAGE;
}

/* Detach works on whole attachments, so they cannot be split. */
static int xpmem_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct xpmem_att_vm_ops = {
	.fault = xpmem_fault,
	.pfn_mkwrite = xpmem_pfn_mkwrite,
	.may_split = xpmem_may_split,
};

static int xpmem_att_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct xpmem_att *att = file->private_data;

	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	vma->vm_ops = &xpmem_att_vm_ops;
	xpmem_vma_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND |
					 VM_DONTDUMP | VM_DONTCOPY);
	if (!att->writable)
		xpmem_vma_flags_clear(vma, VM_MAYWRITE);
	return 0;
}

/* The last VMA of the attachment is gone (detach, munmap or exit). */
static int xpmem_att_release(struct inode *inode, struct file *file)
{
	struct xpmem_att *att = file->private_data;
	struct xpmem_permit *permit = att->permit;

	mutex_lock(&permit->lock);
	list_del(&att->permit_link);
	mutex_unlock(&permit->lock);
	mmu_interval_notifier_remove(&att->notifier);
	xpmem_permit_put(permit);
	kfree(att);
	xpmem_stat_dec(XPMEM_STAT_ATTACHMENTS);
	return 0;
}

static const struct file_operations xpmem_att_fops = {
	.owner = THIS_MODULE,
	.mmap = xpmem_att_mmap,
	.release = xpmem_att_release,
};

/*
 * Build the attachment and the file that carries it.  After this succeeds
 * the file owns everything: its release undoes it all.
 */
static struct file *xpmem_att_create(struct xpmem_permit *permit,
				     unsigned long offset, unsigned long size)
{
	struct xpmem_seg *seg = permit->seg;
	struct xpmem_att *att;
	struct inode *inode;
	struct file *file;
	int ret;

	att = kzalloc(sizeof(*att), GFP_KERNEL_ACCOUNT);
	if (!att)
		return ERR_PTR(-ENOMEM);
	mutex_init(&att->lock);
	att->permit = permit;
	att->src_start = seg->vaddr + offset;
	att->size = size;
	att->writable = permit->writable;

	ret = -ENODEV;
	if (!try_module_get(THIS_MODULE))
		goto err_free;
	inode = alloc_anon_inode(xpmem_mnt->mnt_sb);
	if (IS_ERR(inode)) {
		ret = PTR_ERR(inode);
		goto err_module;
	}
	/* The notifier may fire as soon as it is inserted: mapping first. */
	att->mapping = inode->i_mapping;

	ret = -ENOENT;
	if (!mmget_not_zero(seg->mm))
		goto err_inode;
	ret = mmu_interval_notifier_insert(&att->notifier, seg->mm,
					   att->src_start, size,
					   &xpmem_att_notifier_ops);
	mmput(seg->mm);
	if (ret)
		goto err_inode;

	file = alloc_file_pseudo(inode, xpmem_mnt, "[xpmem]", O_RDWR,
				 &xpmem_att_fops);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto err_notifier;
	}
	file->private_data = att;

	mutex_lock(&permit->lock);
	list_add_tail(&att->permit_link, &permit->atts);
	att->dead = permit->dead || READ_ONCE(seg->dead);
	mutex_unlock(&permit->lock);
	kref_get(&permit->ref);
	xpmem_stat_inc(XPMEM_STAT_ATTACHMENTS);
	if (att->dead) {
		fput(file);
		return ERR_PTR(-ENOENT);
	}
	return file;

err_notifier:
	mmu_interval_notifier_remove(&att->notifier);
err_inode:
	iput(inode);
err_module:
	module_put(THIS_MODULE);
err_free:
	kfree(att);
	return ERR_PTR(ret);
}

long xpmem_attach(struct xpmem_proc *proc,
		  struct xpmem_cmd_attach __user *uarg)
{
	struct xpmem_cmd_attach cmd;
	struct xpmem_permit *permit;
	unsigned long size, addr;
	struct file *file;
	long ret;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.apid <= 0 || cmd.offset < 0 || !PAGE_ALIGNED(cmd.offset) ||
	    !cmd.size || !PAGE_ALIGNED(cmd.vaddr) || cmd.vaddr >= TASK_SIZE)
		return -EINVAL;
	if (cmd.size > TASK_SIZE)
		return -EINVAL;
	size = PAGE_ALIGN(cmd.size);

	permit = xpmem_permit_lookup(cmd.apid);
	if (!permit)
		return -ENOENT;
	ret = -EACCES;
	if (permit->owner != proc)
		goto out_put;
	ret = -EINVAL;
	if (cmd.offset > permit->seg->size ||
	    size > permit->seg->size - cmd.offset)
		goto out_put;

	file = xpmem_att_create(permit, cmd.offset, size);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto out_put;
	}
	/* A requested address is honoured exactly but never replaces a mapping. */
	addr = vm_mmap(file, cmd.vaddr, size,
		       PROT_READ | (permit->writable ? PROT_WRITE : 0),
		       MAP_SHARED | (cmd.vaddr ? MAP_FIXED_NOREPLACE : 0), 0);
	fput(file); /* the VMA holds its own reference */
	if (IS_ERR_VALUE(addr)) {
		ret = (long)addr;
		goto out_put;
	}
	ret = 0;
	if (put_user((u64)addr, &uarg->vaddr)) {
		vm_munmap(addr, size);
		ret = -EFAULT;
	}
out_put:
	xpmem_permit_put(permit);
	return ret;
}

long xpmem_detach(struct xpmem_proc *proc,
		  struct xpmem_cmd_detach __user *uarg)
{
	struct mm_struct *mm = current->mm;
	struct xpmem_cmd_detach cmd;
	struct vm_area_struct *vma;
	unsigned long start = 0, len = 0;

	if (copy_from_user(&cmd, uarg, sizeof(cmd)))
		return -EFAULT;
	if (mmap_read_lock_killable(mm))
		return -EINTR;
	vma = vma_lookup(mm, cmd.vaddr);
	if (vma && vma->vm_ops == &xpmem_att_vm_ops) {
		start = vma->vm_start;
		len = vma->vm_end - vma->vm_start;
	}
	mmap_read_unlock(mm);
	if (!len)
		return -EINVAL;
	return vm_munmap(start, len);
}
