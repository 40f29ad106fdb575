/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every kernel-API difference the module depends on lives here, so the
 * rest of the code is written against one set of helpers.
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
 * Drop whatever lock the fault handler was entered with before returning
 * VM_FAULT_RETRY.  Up to 6.7 a ->fault of a VMA without ->map_pages always
 * runs under mmap_lock; later kernels may use the per-VMA lock.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
static inline void xpmem_release_fault_lock(struct vm_fault *vmf)
{
	mmap_read_unlock(vmf->vma->vm_mm);
}
#else
static inline void xpmem_release_fault_lock(struct vm_fault *vmf)
{
	release_fault_lock(vmf);
}
#endif

#endif /* _XPMEM_COMPAT_H */
