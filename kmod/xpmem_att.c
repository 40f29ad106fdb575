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
 * notifier has our PTEs zapped with unmap_mapping_range() on the
 * attachment's own address_space, which is safe without the attacher's
 * mmap_lock.  No page is pinned: a mapped page stays valid only until the
 * exporter's next invalidation of it, which removes it from every attacher
 * first.
 *
 * Zapping our PTEs is itself an invalidation of the attacher's mm, so doing
 * it inside the notifier would nest invalidate_range_start (lockdep reports
 * that as recursive locking) and, when the attacher's mm is mirrored by an
 * attachment whose window covers this one (a process attaching its own
 * attachment, two processes attaching each other's, a chain), recurse
 * without end.  So every zap runs in a worker, which the caller waits for.
 * Nested notifications raised by a worker's zap are skipped: they only ever
 * cover attachment VMAs, and no attachment can map pages from one
 * (hmm_range_fault() refuses VM_PFNMAP ranges), so there is nothing to zap.
 * The recursion depth is therefore one, whatever the graph of windows.
 *
 * Writes never get lost: a page is mapped writable only on a write fault,
 * and it is marked dirty (and accessed) in the exporter's page cache or
 * anonymous page while the notifier sequence proves that the exporter still
 * maps it.  Any later cleaning of the page (writeback, MADV_FREE, reclaim)
 * goes through the exporter's mappings, hence through our notifier, which
 * removes the writable PTE first.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hmm.h>
#include <linux/huge_mm.h>
#include <linux/mman.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pseudo_fs.h>
#include <linux/swap.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>

#include "compat.h"
#include "xpmem_internal.h"

#define XPMEM_FS_MAGIC 0x78706d6d /* "xpmm" */
/*
 * Lookups a fault repeats (the exporter kept invalidating) before the
 * kernel retries it from the start.
 */
#define XPMEM_FAULT_ATTEMPTS 4
/* Trylocks of the exporter's mmap_lock by a fault that cannot be retried. */
#define XPMEM_NORETRY_LOCK_TRIES 3
/* The most pages one fault maps (fault_around_pages is clamped to it). */
#define XPMEM_FAULT_WINDOW_MAX 512

static struct vfsmount *xpmem_mnt;
/* Runs the zaps the notifier asks for; may run in reclaim, so it has a rescuer. */
static struct workqueue_struct *xpmem_zap_wq;

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
	xpmem_zap_wq = alloc_workqueue("xpmem_zap", WQ_UNBOUND | WQ_MEM_RECLAIM,
				       0);
	if (!xpmem_zap_wq)
		return -ENOMEM;
	xpmem_mnt = kern_mount(&xpmem_fs_type);
	if (IS_ERR(xpmem_mnt)) {
		destroy_workqueue(xpmem_zap_wq);
		return PTR_ERR(xpmem_mnt);
	}
	return 0;
}

void xpmem_att_exit(void)
{
	kern_unmount(xpmem_mnt);
	destroy_workqueue(xpmem_zap_wq);
}

struct xpmem_zap_request {
	struct work_struct work;
	struct completion done;
	struct address_space *mapping;
	const struct mm_struct *mm; /* the attacher's, identity only */
	unsigned long start; /* offset into the attachment */
	unsigned long len;
};

static void xpmem_zap_work(struct work_struct *work)
{
	struct xpmem_zap_request *req =
		container_of(work, struct xpmem_zap_request, work);
	/*
	 * Reclaim would run notifiers in this worker that are not the nested
	 * ones xpmem_zap_nested() may skip.
	 */
	unsigned int noreclaim = memalloc_noreclaim_save();

	unmap_mapping_range(req->mapping, req->start, req->len, 1);
	memalloc_noreclaim_restore(noreclaim);
	complete(&req->done);
}

/*
 * @range is the attacher's invalidation raised by a zap that
 * xpmem_zap_work() is doing: it covers an attachment VMA, of which no
 * attachment maps pages (see the top of this file).
 */
static bool xpmem_zap_nested(const struct mmu_notifier_range *range)
{
	struct work_struct *work = current_work();

	return work && work->func == xpmem_zap_work &&
	       container_of(work, struct xpmem_zap_request, work)->mm ==
		       range->mm;
}

/*
 * Zap [start, start + len) of the attachment in the attacher's mm.  Every
 * zap runs in a worker, never in the caller: from the notifier so that the
 * attacher's invalidation does not nest in the exporter's, and from
 * everywhere else so that whoever holds the attachment's i_mmap_rwsem
 * while zapping is a worker, which waits for nothing (its own nested
 * notifications are skipped), and a waiter never holds what a worker
 * needs.  The wait cannot be interrupted: the exporter may free the pages
 * as soon as the notifier returns.
 */
static void xpmem_att_zap(struct xpmem_att *att, unsigned long start,
			  unsigned long len)
{
	struct xpmem_zap_request req = {
		.mapping = att->mapping,
		.mm = READ_ONCE(att->attacher_mm),
		.start = start,
		.len = len,
	};

	INIT_WORK_ONSTACK(&req.work, xpmem_zap_work);
	init_completion(&req.done);
	queue_work(xpmem_zap_wq, &req.work);
	wait_for_completion(&req.done);
	destroy_work_on_stack(&req.work);
}

/**
 * xpmem_att_kill() - make an attachment fault SIGBUS from now on.
 * @att: the attachment; its permit's lock is held by the caller.
 *
 * Marks it dead under att->lock, so no fault can install a PTE afterwards,
 * then removes the PTEs already installed.  The span of mapped offsets is
 * emptied only after the zap: until then a concurrent invalidation must
 * still see, and zap, what is mapped.
 */
void xpmem_att_kill(struct xpmem_att *att)
{
	mutex_lock(&att->lock);
	att->dead = true;
	mutex_unlock(&att->lock);
	xpmem_att_zap(att, 0, att->size);
	mutex_lock(&att->lock);
	att->mapped_start = att->size;
	att->mapped_end = 0;
	mutex_unlock(&att->lock);
}

static bool xpmem_att_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	struct xpmem_att *att = container_of(mni, struct xpmem_att, notifier);
	unsigned long start, end;

	/* Doing nothing here is what bounds the recursion. */
	if (xpmem_zap_nested(range))
		return true;
	/* Zapping waits for a worker; the OOM reaper must skip this mm. */
	if (!mmu_notifier_range_blockable(range))
		return false;
	xpmem_stat_inc(XPMEM_STAT_INVALIDATIONS);

	/* The part of the range we map, as offsets into the attachment. */
	start = max(range->start, att->src_start) - att->src_start;
	end = min(range->end, att->src_start + att->size) - att->src_start;

	mutex_lock(&att->lock);
	mmu_interval_set_seq(mni, cur_seq);
	start = max(start, att->mapped_start);
	end = min(end, att->mapped_end);
	mutex_unlock(&att->lock);
	if (start >= end)
		return true;

	/*
	 * Any fault that installs a PTE after this point re-checks the
	 * sequence under att->lock and retries; any installed before it is
	 * removed here, before the exporter can free or reuse the page.
	 */
	xpmem_att_zap(att, start, end - start);

	/*
	 * Nothing was installed since the sequence was set (faults retry
	 * until the invalidation ends), so if the zap covered the whole span
	 * nothing is mapped any more.
	 */
	mutex_lock(&att->lock);
	if (start <= att->mapped_start && end >= att->mapped_end) {
		att->mapped_start = att->size;
		att->mapped_end = 0;
	}
	mutex_unlock(&att->lock);
	return true;
}

static const struct mmu_interval_notifier_ops xpmem_att_notifier_ops = {
	.invalidate = xpmem_att_invalidate,
};

/*
 * Take the exporter's mmap_lock for reading while the attacher's is held.
 * Never wait for it: two processes faulting on each other's attachments
 * while writers queue on both locks would deadlock.  On contention, a
 * fault that may be retried (@flags) drops its own lock, waits (killably)
 * for the exporter's and retries; one that may not (fixup_user_fault()
 * from futex ops, robust-list cleanup at exit) tries a few times and then
 * fails, which its caller reports as -EFAULT.
 *
 * Return: 0 with @src_mm locked, or a fault code with it unlocked.
 */
static vm_fault_t xpmem_lock_exporter(struct vm_fault *vmf, unsigned int flags,
				      struct mm_struct *src_mm)
{
	int tries;

	if (src_mm == vmf->vma->vm_mm)
		return 0; /* held already: compat.h checks it is mmap_lock */
	if (!(flags & FAULT_FLAG_ALLOW_RETRY)) {
		for (tries = 0; tries < XPMEM_NORETRY_LOCK_TRIES; tries++) {
			if (mmap_read_trylock(src_mm))
				return 0;
			cond_resched();
		}
		xpmem_stat_inc(XPMEM_STAT_FAULT_LOCK_FAILURES);
		return VM_FAULT_SIGBUS;
	}
	if (mmap_read_trylock(src_mm))
		return 0;
	xpmem_stat_inc(XPMEM_STAT_FAULT_RETRIES);
	/* May retry but not drop the lock: the caller comes back later. */
	if (flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;
	xpmem_release_fault_lock(vmf);
	if (!mmap_read_lock_killable(src_mm))
		mmap_read_unlock(src_mm);
	return VM_FAULT_RETRY;
}

static void xpmem_unlock_exporter(struct vm_fault *vmf,
				  struct mm_struct *src_mm)
{
	if (src_mm != vmf->vma->vm_mm)
		mmap_read_unlock(src_mm);
}

/*
 * Stop trying: hand the fault back to the kernel, which handles pending
 * signals (a fatal one included) and retries.  Returning VM_FAULT_NOPAGE
 * instead would send a kernel-mode access (copy_from_user() in read(), a
 * futex op) straight back into this fault, forever.
 */
static vm_fault_t xpmem_give_up(struct vm_fault *vmf, unsigned int flags)
{
	if (!(flags & FAULT_FLAG_ALLOW_RETRY))
		return VM_FAULT_SIGBUS;
	if (!(flags & FAULT_FLAG_RETRY_NOWAIT))
		xpmem_release_fault_lock(vmf);
	return VM_FAULT_RETRY;
}

/*
 * The window of pages one fault maps: the whole VMA when it is no larger
 * than fault_around_pages (a small attachment, as MPI makes for each fresh
 * buffer, takes one fault wherever it was placed), else the aligned block
 * of that size around the fault; always inside the faulting PMD, so that
 * it lies in one page table.
 */
static void xpmem_fault_window(struct vm_fault *vmf, unsigned long *start,
			       unsigned long *end)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned int want = clamp(READ_ONCE(xpmem_fault_around_pages), 1U,
				  (unsigned int)XPMEM_FAULT_WINDOW_MAX);
	unsigned long win = rounddown_pow_of_two(want) << PAGE_SHIFT;
	unsigned long base = vmf->address & ~(win - 1);
	unsigned long pmd_base = vmf->address & PMD_MASK;

	if (vma->vm_end - vma->vm_start <= win) {
		*start = max(vma->vm_start, pmd_base);
		*end = min(vma->vm_end, pmd_base + PMD_SIZE);
		return;
	}
	*start = max3(base, vma->vm_start, pmd_base);
	*end = min3(base + win, vma->vm_end, pmd_base + PMD_SIZE);
}

/* Offset into the attachment (and its file) of @addr in @vma. */
static unsigned long xpmem_att_offset(const struct vm_area_struct *vma,
				      unsigned long addr)
{
	return (vma->vm_pgoff << PAGE_SHIFT) + (addr - vma->vm_start);
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
 * Snapshot the exporter's pages in @range, the one at @fault_idx made
 * present (and writable on a write fault), the others taken only if
 * present.  On success att->lock is held and the snapshot is still
 * current: every page in it is mapped by the exporter until the lock is
 * dropped.  An exporter that keeps invalidating does not hold us: a fatal
 * signal, or a few attempts when the fault may be retried, give up.
 *
 * Return: 0 with att->lock held, or a fault code with nothing held.
 */
static vm_fault_t xpmem_snapshot_locked(struct vm_fault *vmf,
					unsigned int flags,
					struct xpmem_att *att,
					struct mm_struct *src_mm,
					struct hmm_range *range,
					unsigned long fault_idx)
{
	unsigned long npages = (range->end - range->start) >> PAGE_SHIFT;
	unsigned int attempts = 0;
	vm_fault_t ret;
	int err;

	for (;;) {
		if (fatal_signal_pending(current) ||
		    (attempts++ >= XPMEM_FAULT_ATTEMPTS &&
		     (flags & FAULT_FLAG_ALLOW_RETRY)))
			return xpmem_give_up(vmf, flags);
		memset(range->hmm_pfns, 0, npages * sizeof(*range->hmm_pfns));
		range->hmm_pfns[fault_idx] = HMM_PFN_REQ_FAULT;
		if (flags & FAULT_FLAG_WRITE)
			range->hmm_pfns[fault_idx] |= HMM_PFN_REQ_WRITE;
		range->notifier_seq = mmu_interval_read_begin(&att->notifier);

		ret = xpmem_lock_exporter(vmf, flags, src_mm);
		if (ret)
			return ret;
		err = hmm_range_fault(range);
		xpmem_unlock_exporter(vmf, src_mm);
		if (err == -EBUSY)
			continue;
		if (err)
			return xpmem_hmm_error(err);

		mutex_lock(&att->lock);
		if (att->dead) {
			mutex_unlock(&att->lock);
			return VM_FAULT_SIGBUS;
		}
		if (!mmu_interval_read_retry(&att->notifier,
					     range->notifier_seq))
			return 0;
		mutex_unlock(&att->lock);
	}
}

static int xpmem_pte_noop(pte_t *pte, unsigned long addr, void *data)
{
	return 0;
}

/*
 * Allocate the page tables of [start, end) here, charged to the attacher's
 * memory cgroup, rather than in vmf_insert_pfn_prot() under att->lock,
 * where reclaim could call our own notifier.  The attacher's mmap_lock
 * keeps them until we install.  Where huge mappings exist, a new table and
 * a PMD leaf must not race for the same PMD, so both are made under
 * pt_lock; should a huge fault have mapped the PMD since the kernel chose
 * this path, the access is retried and finds the huge mapping.
 */
static vm_fault_t xpmem_prealloc_ptes(struct vm_fault *vmf,
				      struct xpmem_att *att,
				      unsigned long start, unsigned long end)
{
	int err;
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	pmd_t pmd = pmdp_get_lockless(vmf->pmd);

	if (!pmd_none(pmd) && !pmd_leaf(pmd))
		return 0; /* the table exists and stays */
	if (mutex_lock_killable(&att->pt_lock))
		return xpmem_give_up(vmf, vmf->flags);
	if (pmd_leaf(pmdp_get_lockless(vmf->pmd))) {
		mutex_unlock(&att->pt_lock);
		return VM_FAULT_NOPAGE;
	}
#endif
	err = apply_to_page_range(vmf->vma->vm_mm, start, end - start,
				  xpmem_pte_noop, NULL);
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	mutex_unlock(&att->pt_lock);
#endif
	return err ? xpmem_hmm_error(err) : 0;
}

/* One fault's installation: the snapshot and what became of it. */
struct xpmem_install_state {
	struct vm_area_struct *vma;
	const unsigned long *pfns; /* hmm pfns of the window from start */
	unsigned long start;
	unsigned long npages;
	unsigned long fault_addr;
	bool may_write; /* a write fault with a writable permit */
	pgprot_t prot_ro;
	pgprot_t prot_rw;
	/* Pages the walk maps: decided once, before it (see xpmem_batch_plan()). */
	DECLARE_BITMAP(batched, XPMEM_FAULT_WINDOW_MAX);
	/* Pages given a PTE by this fault. */
	DECLARE_BITMAP(installed, XPMEM_FAULT_WINDOW_MAX);
	vm_fault_t fault_ret; /* for the faulting page */
};

static bool xpmem_install_writable(const struct xpmem_install_state *st,
				   unsigned long addr, unsigned long hpfn)
{
	return addr == st->fault_addr && st->may_write &&
	       (hpfn & HMM_PFN_WRITE);
}

/*
 * Whether @folio is ordinary memory, which the fast paths map without the
 * per-page memory-type lookup vmf_insert_pfn_prot() does (on x86, PAT: the
 * page's memtype bits, after a walk of the resource tree) and which a huge
 * mapping may cover: anonymous pages, page-cache pages on the LRU and
 * hugetlb pages, all write-back, the cache mode of vm_page_prot.  A RAM
 * page gets another memtype only from a driver (set_memory_wc() and the
 * like), which then maps it to user space only through VM_PFNMAP or VM_IO
 * VMAs, which hmm_range_fault() refuses; still, nothing that may be a
 * driver's is taken here (ZONE_DEVICE, a page with a ->mapping of its own
 * that is not on the LRU), and neither are the zero pages, which the
 * caller decides about.
 */
static inline bool xpmem_ordinary_folio(struct folio *folio)
{
	if (folio_is_zone_device(folio))
		return false;
	if (folio_test_anon(folio) || folio_test_hugetlb(folio))
		return true;
	return READ_ONCE(folio->mapping) && folio_test_lru(folio);
}

#ifdef XPMEM_HAVE_PTE_BATCH
/*
 * Whether @page may be mapped by xpmem_install_pte(): ordinary memory or
 * the (write-back) zero page.  Anything else, the huge zero page included,
 * goes through vmf_insert_pfn_prot().
 */
static bool xpmem_pte_batchable(struct page *page)
{
	return xpmem_ordinary_folio(page_folio(page)) ||
	       is_zero_pfn(page_to_pfn(page));
}

/*
 * Which valid pages of the snapshot the walk maps, decided once, so that a
 * page is never left to both paths or to neither; none if batch_ptes is
 * off (read once per fault for the same reason).
 */
static void xpmem_batch_plan(struct xpmem_install_state *st)
{
	unsigned long i;

	if (!READ_ONCE(xpmem_batch_ptes))
		return;
	for (i = 0; i < st->npages; i++)
		if ((st->pfns[i] & HMM_PFN_VALID) &&
		    xpmem_pte_batchable(hmm_pfn_to_page(st->pfns[i])))
			__set_bit(i, st->batched);
}

/*
 * apply_to_page_range() callback, under the page table's lock: map one
 * planned page unless something is mapped there already, with the PTE
 * insert_pfn() makes for vmf_insert_pfn_prot().
 */
static int xpmem_install_pte(pte_t *pte, unsigned long addr, void *data)
{
	struct xpmem_install_state *st = data;
	unsigned long i = (addr - st->start) >> PAGE_SHIFT;
	unsigned long hpfn = st->pfns[i];
	pgprot_t prot;

	if (!test_bit(i, st->batched) || !pte_none(ptep_get(pte)))
		return 0;
	prot = xpmem_install_writable(st, addr, hpfn) ? st->prot_rw :
							st->prot_ro;
	set_pte_at(st->vma->vm_mm, addr, pte,
		   pte_mkspecial(pfn_pte(page_to_pfn(hmm_pfn_to_page(hpfn)),
					 prot)));
	update_mmu_cache(st->vma, addr, pte);
	__set_bit(i, st->installed);
	return 0;
}

/*
 * Map the planned pages in one locked walk of the page table: the window
 * lies within one PMD (xpmem_fault_window()), whose table exists
 * (xpmem_prealloc_ptes()) and stays a table (the kernel calls ->fault only
 * for a PMD that is a table or none, pt_lock keeps a huge fault from
 * filling it since, and nothing frees a table under the attacher's
 * mmap_lock), so nothing is allocated here.  Should the walk fail anyway,
 * the pages it did not map are left to vmf_insert_pfn_prot().
 */
static void xpmem_install_batch(struct xpmem_install_state *st)
{
	int err;

	if (bitmap_empty(st->batched, st->npages))
		return;
	err = apply_to_page_range(st->vma->vm_mm, st->start,
				  st->npages << PAGE_SHIFT, xpmem_install_pte,
				  st);
	xpmem_stat_inc(XPMEM_STAT_PTE_TABLE_LOCKS);
	if (err)
		bitmap_zero(st->batched, st->npages);
}
#else
static void xpmem_batch_plan(struct xpmem_install_state *st)
{
}

static void xpmem_install_batch(struct xpmem_install_state *st)
{
}
#endif

/*
 * Install the snapshot in @pfns.  Called with att->lock held and the
 * snapshot known to be current, so every page is still mapped by the
 * exporter.  Only the faulting page of a write fault is mapped writable,
 * and only where the exporter's own PTE is writable (never a read-only,
 * COW-shared or zero page); it is marked dirty before its PTE appears, so
 * no write through it can be lost to reclaim or MADV_FREE.  Neighbours
 * are mapped read-only, so that pages nobody writes are never dirtied; a
 * later write to one goes through xpmem_pfn_mkwrite().  Ordinary memory is
 * mapped in one walk of the page table; anything else one page at a time.
 */
static vm_fault_t xpmem_install(struct vm_fault *vmf, struct xpmem_att *att,
				const unsigned long *pfns, unsigned long start,
				unsigned long npages)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_install_state st = {
		.vma = vma,
		.pfns = pfns,
		.start = start,
		.npages = npages,
		.fault_addr = vmf->address & PAGE_MASK,
		.may_write = att->writable && (vmf->flags & FAULT_FLAG_WRITE),
		.prot_ro = vma->vm_page_prot,
		.prot_rw = vm_get_page_prot(vma->vm_flags),
		.fault_ret = VM_FAULT_NOPAGE,
	};
	unsigned long fault_hpfn = pfns[(st.fault_addr - start) >> PAGE_SHIFT];
	unsigned long i, first, last, installed;

	if (WARN_ON_ONCE(npages > XPMEM_FAULT_WINDOW_MAX))
		return VM_FAULT_SIGBUS;
	if ((fault_hpfn & HMM_PFN_VALID) &&
	    xpmem_install_writable(&st, st.fault_addr, fault_hpfn))
		folio_mark_dirty(page_folio(hmm_pfn_to_page(fault_hpfn)));
	xpmem_batch_plan(&st);
	xpmem_install_batch(&st);

	for (i = 0; i < npages; i++) {
		unsigned long addr = start + (i << PAGE_SHIFT);
		unsigned long hpfn = pfns[i];
		vm_fault_t r;

		if (!(hpfn & HMM_PFN_VALID) || test_bit(i, st.batched))
			continue;
		r = vmf_insert_pfn_prot(vma, addr,
					page_to_pfn(hmm_pfn_to_page(hpfn)),
					xpmem_install_writable(&st, addr, hpfn) ?
						st.prot_rw :
						st.prot_ro);
		xpmem_stat_inc(XPMEM_STAT_PTE_TABLE_LOCKS);
		if (r & VM_FAULT_ERROR) {
			if (addr == st.fault_addr)
				st.fault_ret = r;
			if (r & VM_FAULT_OOM)
				break;
			continue;
		}
		__set_bit(i, st.installed);
	}

	/*
	 * Outside the page table's lock: this may drain LRU batches.  The
	 * zero page has no LRU state to keep.
	 */
	for_each_set_bit(i, st.installed, npages) {
		struct page *page = hmm_pfn_to_page(pfns[i]);

		if (!is_zero_pfn(page_to_pfn(page)))
			folio_mark_accessed(page_folio(page));
	}
	installed = bitmap_weight(st.installed, npages);
	if (installed) {
		first = find_first_bit(st.installed, npages);
		last = find_last_bit(st.installed, npages);
		att->mapped_start = min(att->mapped_start,
					xpmem_att_offset(vma, start) +
						(first << PAGE_SHIFT));
		att->mapped_end = max(att->mapped_end,
				      xpmem_att_offset(vma, start) +
					      ((last + 1) << PAGE_SHIFT));
	}
	xpmem_stat_add(XPMEM_STAT_PTES_INSTALLED, installed);
	return st.fault_ret;
}

static vm_fault_t xpmem_fault(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_att *att = vma->vm_file->private_data;
	struct mm_struct *src_mm = att->permit->seg->mm;
	unsigned long start, end, npages;
	struct hmm_range range = {};
	unsigned int noreclaim;
	unsigned long *pfns;
	vm_fault_t ret;

	xpmem_stat_inc(XPMEM_STAT_FAULTS);
	ret = xpmem_fault_check_lock(vmf);
	if (ret)
		return ret;
	if (READ_ONCE(att->dead) || !mmget_not_zero(src_mm))
		return VM_FAULT_SIGBUS;

	xpmem_fault_window(vmf, &start, &end);
	npages = (end - start) >> PAGE_SHIFT;
	pfns = kmalloc_array(npages, sizeof(*pfns), GFP_KERNEL);
	if (!pfns) {
		ret = VM_FAULT_OOM;
		goto out_mmput;
	}
	ret = xpmem_prealloc_ptes(vmf, att, start, end);
	if (ret)
		goto out_free;

	range.notifier = &att->notifier;
	range.start = att->src_start + xpmem_att_offset(vma, start);
	range.end = range.start + (end - start);
	range.hmm_pfns = pfns;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	ret = xpmem_snapshot_locked(vmf, vmf->flags, att, src_mm, &range,
				    (vmf->address - start) >> PAGE_SHIFT);
	if (ret)
		goto out_free;
	/*
	 * The page tables exist, so nothing below allocates; should a future
	 * kernel allocate anyway, it must not reclaim into our notifier.
	 */
	noreclaim = memalloc_noreclaim_save();
	ret = xpmem_install(vmf, att, pfns, start, npages);
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
 * A write hit a PTE we installed read-only: a neighbour mapped by fault-
 * around or by a read fault, or a page the exporter had read-only.  Ask the
 * exporter's mm for the page writable; if it is still the page our PTE
 * maps, mark it dirty under the valid sequence and let the kernel make our
 * PTE writable (it re-checks that the PTE is unchanged).  Otherwise, or if
 * that cannot be done without dropping the attacher's lock (returning
 * VM_FAULT_RETRY from here is not allowed), drop our PTE and let the write
 * fault again through xpmem_fault(), which maps the right page or fails.
 */
static vm_fault_t xpmem_pfn_mkwrite(struct vm_fault *vmf)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_att *att = vma->vm_file->private_data;
	struct mm_struct *src_mm = att->permit->seg->mm;
	unsigned long addr = vmf->address & PAGE_MASK;
	struct hmm_range range = {};
	unsigned long hpfn = 0;
	bool same = false;

	if (READ_ONCE(att->dead) || !mmget_not_zero(src_mm))
		return VM_FAULT_SIGBUS;
	range.notifier = &att->notifier;
	range.start = att->src_start + xpmem_att_offset(vma, addr);
	range.end = range.start + PAGE_SIZE;
	range.hmm_pfns = &hpfn;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	if (!xpmem_snapshot_locked(vmf,
				   vmf->flags & ~FAULT_FLAG_ALLOW_RETRY, att,
				   src_mm, &range, 0)) {
		struct page *page = hmm_pfn_to_page(hpfn);

		same = (hpfn & HMM_PFN_WRITE) &&
		       page_to_pfn(page) == pte_pfn(vmf->orig_pte);
		if (same)
			folio_mark_dirty(page_folio(page));
		mutex_unlock(&att->lock);
	}
	mmput_async(src_mm);
	if (same)
		return 0;
	xpmem_att_zap(att, xpmem_att_offset(vma, addr), PAGE_SIZE);
	return VM_FAULT_NOPAGE;
}

#ifdef XPMEM_HAVE_HUGE_PFNMAP
/*
 * Map a whole PMD where the exporter maps the same 2 MiB with one PMD (a
 * THP or part of a hugetlbfs page) and the attachment lies congruent to it
 * modulo 2 MiB, as xpmem_att_get_unmapped_area() places it.  Only the
 * faulting page is looked up: that the exporter maps it with a PMD
 * (hmm_pfn_to_map_order()) says the aligned 2 MiB around it is one folio,
 * and the notifier sequence, whose interval covers it, says it still is
 * when we insert.  Anything else falls back to ->fault and 4 KiB PTEs.  As
 * for PTEs, only a write fault maps it writable, after marking the folio
 * dirty; a write to a read-only PMD comes back here.  An invalidation of
 * any part of the PMD zaps all of it.
 */
static vm_fault_t xpmem_huge_fault(struct vm_fault *vmf, unsigned int order)
{
	struct vm_area_struct *vma = vmf->vma;
	struct xpmem_att *att = vma->vm_file->private_data;
	struct mm_struct *src_mm = att->permit->seg->mm;
	unsigned long haddr = vmf->address & PMD_MASK;
	unsigned long offset = xpmem_att_offset(vma, haddr);
	unsigned long idx = (vmf->address - haddr) >> PAGE_SHIFT;
	struct hmm_range range = {};
	unsigned long hpfn = 0, pfn;
	unsigned int noreclaim;
	struct folio *folio;
	vm_fault_t ret;
	pmd_t pmd;
	bool write;

	if (order != PMD_ORDER || !READ_ONCE(xpmem_huge_mappings) ||
	    haddr < vma->vm_start || haddr + PMD_SIZE > vma->vm_end ||
	    !IS_ALIGNED(att->src_start + offset, PMD_SIZE))
		return VM_FAULT_FALLBACK;
	ret = xpmem_fault_check_lock(vmf);
	if (ret)
		return ret;
	if (READ_ONCE(att->dead) || !mmget_not_zero(src_mm))
		return VM_FAULT_SIGBUS;

	range.notifier = &att->notifier;
	range.start = att->src_start + offset + (idx << PAGE_SHIFT);
	range.end = range.start + PAGE_SIZE;
	range.hmm_pfns = &hpfn;
	range.pfn_flags_mask = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
	ret = xpmem_snapshot_locked(vmf, vmf->flags, att, src_mm, &range, 0);
	if (ret)
		goto out_mmput;
	pfn = page_to_pfn(hmm_pfn_to_page(hpfn)) - idx;
	folio = page_folio(hmm_pfn_to_page(hpfn));
	if (hmm_pfn_to_map_order(hpfn) < PMD_ORDER ||
	    !IS_ALIGNED(pfn, HPAGE_PMD_NR)) {
		ret = VM_FAULT_FALLBACK; /* the exporter maps 4 KiB pages here */
		goto out_unlock;
	}
	/*
	 * Ordinary memory only.  Never the huge zero page (an exporter's
	 * untouched THP memory, read): the kernel takes a PMD of its pfn for
	 * one with a deposited page table (has_deposited_pgtable() in 7.x),
	 * which ours has not, and zapping it would withdraw a NULL table.
	 * Its 4 KiB PTEs are safe.  Anonymous memory gets PTEs too while
	 * the page-table checker runs (see compat.h).
	 */
	if (!xpmem_ordinary_folio(folio) ||
	    (folio_test_anon(folio) && xpmem_page_table_check_on())) {
		ret = VM_FAULT_FALLBACK;
		goto out_unlock;
	}
	/*
	 * pt_lock comes before att->lock: wait for it only after dropping
	 * att->lock, then check the snapshot again.  If it went stale, the
	 * access is retried rather than sent to the 4 KiB path for good.
	 */
	if (!mutex_trylock(&att->pt_lock)) {
		mutex_unlock(&att->lock);
		if (mutex_lock_killable(&att->pt_lock)) {
			ret = xpmem_give_up(vmf, vmf->flags);
			goto out_mmput;
		}
		mutex_lock(&att->lock);
		if (att->dead) {
			ret = VM_FAULT_SIGBUS;
			goto out_unlock_pt;
		}
		if (mmu_interval_read_retry(&att->notifier,
					    range.notifier_seq)) {
			ret = VM_FAULT_NOPAGE;
			goto out_unlock_pt;
		}
	}
	/* A fault of ours has given this PMD a page table meanwhile. */
	pmd = pmdp_get_lockless(vmf->pmd);
	if (!pmd_none(pmd) && !pmd_leaf(pmd)) {
		ret = VM_FAULT_FALLBACK;
		goto out_unlock_pt;
	}

	write = att->writable && (vmf->flags & FAULT_FLAG_WRITE) &&
		(hpfn & HMM_PFN_WRITE);
	if (write)
		folio_mark_dirty(folio);
	/* No page table to allocate on x86; elsewhere none may reclaim. */
	noreclaim = memalloc_noreclaim_save();
	ret = xpmem_insert_pfn_pmd(vmf, pfn, write);
	memalloc_noreclaim_restore(noreclaim);
	if (!(ret & VM_FAULT_ERROR)) {
		folio_mark_accessed(folio);
		att->mapped_start = min(att->mapped_start, offset);
		att->mapped_end = max(att->mapped_end, offset + PMD_SIZE);
		/* Counted once per new PMD, not when a write upgrades one. */
		if (pmd_none(pmd))
			xpmem_stat_inc(XPMEM_STAT_PMDS_INSTALLED);
	}
out_unlock_pt:
	mutex_unlock(&att->pt_lock);
out_unlock:
	mutex_unlock(&att->lock);
out_mmput:
	mmput_async(src_mm);
	/* A fallback is counted by ->fault. */
	if (ret != VM_FAULT_FALLBACK)
		xpmem_stat_inc(XPMEM_STAT_FAULTS);
	return ret;
}

/*
 * Place an attachment with no requested address congruent to its source
 * modulo 2 MiB, so that huge source pages can be mapped huge:
 * thp_get_unmapped_area() aligns to the file offset it is given, and it is
 * given the source's offset within its PMD instead of ours (always 0).
 */
static unsigned long xpmem_att_get_unmapped_area(struct file *file,
						 unsigned long addr,
						 unsigned long len,
						 unsigned long pgoff,
						 unsigned long flags)
{
	struct xpmem_att *att = file->private_data;

	return thp_get_unmapped_area(file, addr, len,
				     (att->src_start & ~PMD_MASK) >> PAGE_SHIFT,
				     flags);
}
#endif

/* Detach works on whole attachments, so they cannot be split. */
static int xpmem_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	return -EINVAL;
}

static const struct vm_operations_struct xpmem_att_vm_ops = {
	.fault = xpmem_fault,
	.pfn_mkwrite = xpmem_pfn_mkwrite,
	.may_split = xpmem_may_split,
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	.huge_fault = xpmem_huge_fault,
#endif
};

/* Only attach maps the file, once, exactly over the attachment. */
static bool xpmem_att_map_allowed(const struct xpmem_att *att, bool shared,
				  unsigned long pgoff, unsigned long len)
{
	return shared && !pgoff && len == att->size && !att->attacher_mm;
}

/*
 * The attachment's VMA: VM_PFNMAP (no struct page behind our PTEs for the
 * kernel to take references on), never expanded, dumped or inherited, and
 * never executable (PROT_EXEC only arrives through READ_IMPLIES_EXEC): an
 * executable view of writable memory would bypass W^X policies.
 */
#ifdef XPMEM_HAVE_MMAP_PREPARE
static int xpmem_att_mmap_prepare(struct vm_area_desc *desc)
{
	struct xpmem_att *att = desc->file->private_data;

	if (!xpmem_att_map_allowed(att, xpmem_desc_shared(desc), desc->pgoff,
				   desc->end - desc->start))
		return -EINVAL;
	desc->vm_ops = &xpmem_att_vm_ops;
	vma_desc_set_flags(desc, VMA_PFNMAP_BIT, VMA_IO_BIT, VMA_DONTEXPAND_BIT,
			   VMA_DONTDUMP_BIT, VMA_DONTCOPY_BIT);
	vma_desc_clear_flags(desc, VMA_EXEC_BIT, VMA_MAYEXEC_BIT);
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	/*
	 * Huge faults come through THP's "always" or "madvise" setting on
	 * 6.12-6.x; 7.x gives them to a VM_PFNMAP VMA with ->huge_fault
	 * whatever the setting.  huge_mappings turns them off on both.
	 */
	if (READ_ONCE(xpmem_huge_mappings))
		vma_desc_set_flags(desc, VMA_HUGEPAGE_BIT);
#endif
	if (!att->writable)
		vma_desc_clear_flags(desc, VMA_MAYWRITE_BIT);
	WRITE_ONCE(att->attacher_mm, desc->mm);
	return 0;
}
#else
static int xpmem_att_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct xpmem_att *att = file->private_data;

	if (!xpmem_att_map_allowed(att, vma->vm_flags & VM_SHARED,
				   vma->vm_pgoff, vma->vm_end - vma->vm_start))
		return -EINVAL;
	vma->vm_ops = &xpmem_att_vm_ops;
	xpmem_vma_flags_set(vma, VM_PFNMAP | VM_IO | VM_DONTEXPAND |
					 VM_DONTDUMP | VM_DONTCOPY);
	xpmem_vma_flags_clear(vma, VM_EXEC | VM_MAYEXEC);
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	/*
	 * Huge faults come through THP's "always" or "madvise" setting on
	 * 6.12-6.x; 7.x gives them to a VM_PFNMAP VMA with ->huge_fault
	 * whatever the setting.  huge_mappings turns them off on both.
	 */
	if (READ_ONCE(xpmem_huge_mappings))
		xpmem_vma_flags_set(vma, VM_HUGEPAGE);
#endif
	if (!att->writable)
		xpmem_vma_flags_clear(vma, VM_MAYWRITE);
	WRITE_ONCE(att->attacher_mm, vma->vm_mm);
	return 0;
}
#endif

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
#ifdef XPMEM_HAVE_MMAP_PREPARE
	.mmap_prepare = xpmem_att_mmap_prepare,
#else
	.mmap = xpmem_att_mmap,
#endif
#ifdef XPMEM_HAVE_HUGE_PFNMAP
	.get_unmapped_area = xpmem_att_get_unmapped_area,
#endif
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
	mutex_init(&att->pt_lock);
	att->permit = permit;
	att->src_start = seg->vaddr + offset;
	att->size = size;
	att->mapped_start = size; /* nothing mapped yet */
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
	/*
	 * The mapping stays even if the address cannot be reported: by now
	 * another thread may have unmapped it and mapped something else
	 * there, which an unmap from here would destroy.  It goes at detach
	 * (its address is in /proc/self/maps) or exit.
	 */
	ret = put_user((u64)addr, &uarg->vaddr) ? -EFAULT : 0;
out_put:
	xpmem_permit_put(permit);
	return ret;
}

/*
 * The VMA is looked up and unmapped under two holds of mmap_lock, because
 * the only unmap a module may call, vm_munmap(), takes the lock itself.  If
 * another thread unmaps this same attachment in between and maps something
 * else at its address, that mapping is unmapped instead: the same outcome
 * as the process calling munmap() twice on one range, which only the
 * process itself can cause.
 */
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
