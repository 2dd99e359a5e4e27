/* SPDX-License-Identifier: MIT */
/*
 * Postcopy, destination side: the guest runs here while some of its pages
 * are still on the source (issue 13; the wire protocol is in
 * docs/PROTOCOL.md, "Postcopy").
 *
 * At the switch the destination knows, per RAM block, which pages it must
 * not trust: the source's dirty pages at the moment it paused ("missing").
 * pc_dest_arm() registers the blocks with userfaultfd and drops any stale
 * copy of a missing page, so that touching it faults. Every other page is
 * valid as it is -- received in precopy, or never touched and so zero --
 * and a fault on it (an absent zero page) is answered here with a zero
 * page, without asking anyone.
 *
 * A fault on a missing page is turned into a request (the ops' request
 * hook, on the fault thread), once per page however many threads fault on
 * it. The page then comes from the source, on the urgent channel or in the
 * bulk stream, whichever is first; pc_dest_place() puts it in place
 * atomically and wakes the faulting threads; later copies of the same page
 * are dropped (the source's copy no longer changes: its guest is paused for
 * good). When no page is missing any more, the migration's RAM is done.
 *
 * The per-page path (pc_dest_place() from the receive workers) takes no
 * lock: a missing bit is taken with one atomic and-not, and only a page
 * that was requested looks up its request time for the latency figures.
 *
 * Failure: a missing page stays missing and a thread touching it waits,
 * as postcopy demands (the source holds the only copy; recovery reconnects,
 * sends the missing map and asks again for what was requested, and goes
 * on). A request the ops could not send is not a failure: the page stays
 * requested and missing. pc_dest_free() is for the end: every page placed,
 * or the guest given up by the VMM; threads still waiting then see zero
 * pages.
 */
#ifndef TERN_CORE_POSTCOPY_H
#define TERN_CORE_POSTCOPY_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct pc_dest;

struct pc_dest_block {
	uint8_t *host; /* page-aligned private anonymous memory */
	uint64_t npages;
};

struct pc_dest_ops {
	/*
	 * Ask the source for page @page of block @block, on the fault thread.
	 * A non-zero return fails the migration's postcopy with @err; the
	 * page stays missing.
	 */
	int (*request)(void *opaque, uint32_t block, uint64_t page, struct tern_error *err);
	/* The fault thread failed (or a request did): @err says why. */
	void (*failed)(void *opaque, const struct tern_error *err);
};

struct pc_dest_cfg {
	uint32_t page_size; /* the migration's page; a multiple of the host's */
	uint32_t nblocks;
	const struct pc_dest_block *blocks;
	const struct pc_dest_ops *ops;
	void *opaque;
	struct cpu_acct *cpu; /* the fault thread's CPU goes to "recv"; may be NULL */
};

/* Fault-to-placed latency and counts; every field is a snapshot. */
struct pc_dest_stats {
	uint64_t missing_at_switch; /* pages */
	uint64_t missing;	    /* pages still missing now */
	uint64_t faults;	    /* faults read (several may name one page) */
	uint64_t zero_faults;	    /* faults on absent zero pages, answered here */
	uint64_t requested;	    /* pages asked for */
	uint64_t placed;	    /* pages placed (data or zero) */
	uint64_t duplicates;	    /* copies of pages placed already, dropped */
	uint64_t latency_p50_us, latency_p99_us, latency_max_us; /* requested pages */
	uint64_t latency_count;
};

int pc_dest_new(const struct pc_dest_cfg *cfg, struct pc_dest **ret, struct tern_error *err);
/*
 * Register every block and take @missing (a bitmap per block, one bit per
 * page; copied) as the pages to fetch; their stale copies are dropped.
 * Call once, with nothing touching RAM (the guest is paused), then
 * pc_dest_start().
 */
int pc_dest_arm(struct pc_dest *pc, const uint64_t *const *missing, struct tern_error *err);
/* Start the fault thread: the guest may run from here on. */
int pc_dest_start(struct pc_dest *pc, struct tern_error *err);

/*
 * Place @n pages from @data at @page of @block (NULL @data: zero pages).
 * Pages that are not missing are dropped. Any thread; no lock.
 */
int pc_dest_place(struct pc_dest *pc, uint32_t block, uint64_t page, uint32_t n, const void *data,
		  struct tern_error *err);
/* Whether @page of @block is missing still (bounds unchecked). */
bool pc_dest_is_missing(struct pc_dest *pc, uint32_t block, uint64_t page);
/* Pages still missing (0: postcopy's RAM is complete). */
uint64_t pc_dest_missing(struct pc_dest *pc);
/* Wait until nothing is missing or @timeout_ms passed: 0 or -ETIMEDOUT. */
int pc_dest_wait_complete(struct pc_dest *pc, int timeout_ms);
void pc_dest_stats(struct pc_dest *pc, struct pc_dest_stats *st);
/*
 * Recovery. pc_dest_missing_map(): block @block's missing bitmap, to tell
 * the source which pages are still to come (read it while nothing places
 * pages: no receive channel runs). pc_dest_rerequest(): ask again, through
 * the ops, for every page requested and still missing (a request lost with
 * the connection); the number asked.
 */
const uint64_t *pc_dest_missing_map(struct pc_dest *pc, uint32_t block);
uint64_t pc_dest_rerequest(struct pc_dest *pc);
/* Stop the fault thread, unregister, free. NULL is a no-op. */
void pc_dest_free(struct pc_dest *pc);

#endif
