// SPDX-License-Identifier: GPL-2.0
/*
 * Counters in debugfs: <debugfs>/xpmem/stats.  Live-object counters
 * (procs, segments, permits, attachments) return to zero when nothing uses
 * the module; the others count events since load.  <debugfs>/xpmem/features
 * says which mappings this kernel lets the module make, so that tests and
 * admins need not guess from the release.
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "compat.h"
#include "xpmem_internal.h"

static atomic_long_t xpmem_stats[XPMEM_NR_STATS];
static struct dentry *xpmem_debugfs_dir;

static const char *const xpmem_stat_names[XPMEM_NR_STATS] = {
	[XPMEM_STAT_SEGMENTS] = "segments",
	[XPMEM_STAT_PERMITS] = "permits",
	[XPMEM_STAT_ATTACHMENTS] = "attachments",
	[XPMEM_STAT_PROCS] = "registrations",
	[XPMEM_STAT_FAULTS] = "faults",
	[XPMEM_STAT_PTES_INSTALLED] = "ptes_installed",
	[XPMEM_STAT_PMDS_INSTALLED] = "pmds_installed",
	[XPMEM_STAT_PTE_TABLE_LOCKS] = "pte_table_locks",
	[XPMEM_STAT_INVALIDATIONS] = "invalidations",
	[XPMEM_STAT_FAULT_RETRIES] = "fault_retries",
	[XPMEM_STAT_FAULT_LOCK_FAILURES] = "fault_lock_failures",
};

void xpmem_stat_add(enum xpmem_stat stat, long delta)
{
	atomic_long_add(delta, &xpmem_stats[stat]);
}

static int xpmem_stats_show(struct seq_file *m, void *unused)
{
	int i;

	for (i = 0; i < XPMEM_NR_STATS; i++)
		seq_printf(m, "%s %ld\n", xpmem_stat_names[i],
			   atomic_long_read(&xpmem_stats[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(xpmem_stats);

static int xpmem_features_show(struct seq_file *m, void *unused)
{
	bool huge = false, huge_anon = false, pte_batch = false;

#ifdef XPMEM_HAVE_HUGE_PFNMAP
	huge = true;
	huge_anon = !xpmem_page_table_check_on();
#endif
#ifdef XPMEM_HAVE_PTE_BATCH
	pte_batch = true;
#endif
	/* Parameters may still turn a feature off. */
	seq_printf(m, "huge_mappings %d\n", huge);
	seq_printf(m, "huge_mappings_anonymous %d\n", huge_anon);
	seq_printf(m, "batch_ptes %d\n", pte_batch);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(xpmem_features);

void xpmem_stats_init(void)
{
	xpmem_debugfs_dir = debugfs_create_dir("xpmem", NULL);
	debugfs_create_file("stats", 0444, xpmem_debugfs_dir, NULL,
			    &xpmem_stats_fops);
	debugfs_create_file("features", 0444, xpmem_debugfs_dir, NULL,
			    &xpmem_features_fops);
}

void xpmem_stats_exit(void)
{
	debugfs_remove_recursive(xpmem_debugfs_dir);
}
