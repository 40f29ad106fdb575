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

#endif /* _XPMEM_COMPAT_H */
