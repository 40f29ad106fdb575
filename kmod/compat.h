/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-API difference the module depends on lives here, so the
 * rest of the code is written against one set of helpers.  Each #if names
 * the release that made it necessary.
 */
#ifndef _XPMEM_COMPAT_H
#define _XPMEM_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>

/* 6.3 made vma->vm_flags const behind vm_flags_set()/vm_flags_clear(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void xpmem_vma_flags_set(struct vm_area_struct *vma,
				       unsigned long flags)
{
	vma->vm_flags |= flags;
}

static inline void xpmem_vma_flags_clear(struct vm_area_struct *vma,
					 unsigned long flags)
{
	vma->vm_flags &= ~flags;
}
#else
static inline void xpmem_vma_flags_set(struct vm_area_struct *vma,
				       unsigned long flags)
{
	vm_flags_set(vma, flags);
}

static inline void xpmem_vma_flags_clear(struct vm_area_struct *vma,
					 unsigned long flags)
{
	vm_flags_clear(vma, flags);
}
#endif

/*
 * Which lock a fault handler was entered with.  Per-VMA-lock faults came
 * in 6.4 (FAULT_FLAG_VMA_LOCK), for anonymous VMAs only; 6.6 added
 * release_fault_lock() and from 6.7 shared and file VMAs may fault under
 * the VMA lock too, but ->fault and ->pfn_mkwrite only where the VMA has
 * ->map_pages (vmf_can_call_fault()), which ours has not.  So ours run
 * under mmap_lock on every kernel so far; the fault path depends on that
 * (it walks the exporter's mm when that is its own), so should a kernel
 * ever call it under the VMA lock, it is sent back for mmap_lock.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
static inline void xpmem_release_fault_lock(struct vm_fault *vmf)
{
	mmap_read_unlock(vmf->vma->vm_mm);
}

static inline vm_fault_t xpmem_fault_check_lock(struct vm_fault *vmf)
{
	return 0;
}
#else
static inline void xpmem_release_fault_lock(struct vm_fault *vmf)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 6, 0)
	/* release_fault_lock() came with 6.6's per-VMA-lock swap faults. */
	if (vmf->flags & FAULT_FLAG_VMA_LOCK)
		vma_end_read(vmf->vma);
	else
		mmap_read_unlock(vmf->vma->vm_mm);
#else
	release_fault_lock(vmf);
#endif
}

static inline vm_fault_t xpmem_fault_check_lock(struct vm_fault *vmf)
{
	if (!(vmf->flags & FAULT_FLAG_VMA_LOCK))
		return 0;
	xpmem_release_fault_lock(vmf);
	return VM_FAULT_RETRY;
}
#endif

/*
 * ->mmap_prepare (6.16, c84bf6dd2b83) describes a mapping before its VMA
 * exists and is meant to replace ->mmap.  We use it from 7.0, where the
 * description's flags are only the vma_flags_t bitmap, set and cleared with
 * vma_desc_set_flags()/vma_desc_clear_flags() (53f1d9364451, bae0ba7c7c0a);
 * 6.16-6.19 had other flag fields for it and still take ->mmap, so they keep
 * ->mmap.  7.1 renamed vma_desc_test_flags() to vma_desc_test_any()
 * (e650bb30ca53).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 0, 0)
#define XPMEM_HAVE_MMAP_PREPARE 1

static inline bool xpmem_desc_shared(const struct vm_area_desc *desc)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 1, 0)
	return vma_desc_test_any(desc, VMA_SHARED_BIT);
#else
	return vma_desc_test_flags(desc, VMA_SHARED_BIT);
#endif
}
#endif

/*
 * Huge PFN mappings: from 6.12 (Peter Xu's huge-pfnmap series) a PMD leaf
 * inserted into a VM_PFNMAP VMA is marked special, so GUP-fast and the
 * other walkers that would take it for a THP of their own leave it alone;
 * before, the module maps 4 KiB PTEs only.  6.17 took pfn_t out of
 * vmf_insert_pfn_pmd() (21aa65bf82a7).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0) && \
	defined(CONFIG_TRANSPARENT_HUGEPAGE) && \
	defined(CONFIG_ARCH_SUPPORTS_PMD_PFNMAP)
#define XPMEM_HAVE_HUGE_PFNMAP 1
#include <linux/huge_mm.h>
#include <linux/page_table_check.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#include <linux/pfn_t.h>
#endif

/*
 * CONFIG_PAGE_TABLE_CHECK (a debugging option, off in Debian's kernels;
 * page_table_check=on turns it on) counts every user mapping of a page and
 * BUGs on a second writable mapping of an anonymous page.  It leaves
 * special PTEs out of its counts but, through 7.3 at least, not special
 * PMDs (__page_table_check_pmds_set()), so while it runs, anonymous memory
 * is mapped with PTEs only.
 */
static inline bool xpmem_page_table_check_on(void)
{
#ifdef CONFIG_PAGE_TABLE_CHECK
	return !static_branch_likely(&page_table_check_disabled);
#else
	return false;
#endif
}

static inline vm_fault_t xpmem_insert_pfn_pmd(struct vm_fault *vmf,
					      unsigned long pfn, bool write)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
#else
	return vmf_insert_pfn_pmd(vmf, pfn, write);
#endif
}
#endif

/*
 * A fault's run of PTEs is installed in one walk of its page table,
 * setting special PTEs the way insert_pfn() does for vmf_insert_pfn_prot();
 * "special" is what tells vm_normal_page() and GUP-fast that these pages
 * are not ours to refcount, so without pte_special (an architecture
 * property, not a release) every page goes through vmf_insert_pfn_prot().
 */
#ifdef CONFIG_ARCH_HAS_PTE_SPECIAL
#define XPMEM_HAVE_PTE_BATCH 1
#endif

#endif /* _XPMEM_COMPAT_H */
