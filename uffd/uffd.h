/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd for postcopy: destination guest RAM whose pages have not
 * arrived yet faults, and the faults are read here instead of being served
 * with zero pages by the kernel.
 *
 * The mechanism only: register a range in MISSING mode, read the faults,
 * place pages atomically (a page appears whole and the threads waiting on
 * it wake), interrupt a reader for shutdown. Which page to ask for, from
 * whom, and when the migration is over is core/'s business.
 *
 * Threads: one reader calls uffd_read_faults() at a time; placing,
 * waking and interrupting may be called from any thread, concurrently.
 */
#ifndef TERN_UFFD_H
#define TERN_UFFD_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

struct uffd;

struct uffd_fault {
	uint64_t addr; /* the faulting address, rounded down to its host page */
	uint32_t tid;  /* the thread that faulted (0: the kernel did not say) */
	bool write;    /* it faulted on a write */
};

/*
 * Open a userfaultfd that also serves faults taken inside the kernel (a KVM
 * vCPU's access goes through get_user_pages, not a user-mode fault): the
 * syscall, or /dev/userfaultfd where the syscall is refused to us.
 */
int uffd_open(struct uffd **ret, struct tern_error *err);
void uffd_close(struct uffd *u); /* NULL is a no-op; unregisters nothing */

/* The host page size the ranges below must be aligned to. */
uint64_t uffd_page_size(const struct uffd *u);

/*
 * Register [addr, addr + len) for missing-page faults. The range must be
 * page-aligned private anonymous memory. From here on a thread touching a
 * page that was never populated blocks until the page is placed.
 */
int uffd_register(struct uffd *u, void *addr, uint64_t len, struct tern_error *err);
int uffd_unregister(struct uffd *u, void *addr, uint64_t len, struct tern_error *err);

/*
 * Place [dst, dst + len) from @src atomically, page by page, and wake the
 * threads waiting on those pages. A page already present is left as it is
 * (its content is newer or the same) and counted in *@present (may be NULL).
 * 0 on success, a negative errno with @err set otherwise.
 */
int uffd_copy(struct uffd *u, void *dst, const void *src, uint64_t len, uint64_t *present,
	      struct tern_error *err);
/* The same with zero pages, without reading or allocating a source. */
int uffd_zero(struct uffd *u, void *dst, uint64_t len, uint64_t *present, struct tern_error *err);
/* Wake the threads waiting on [addr, addr + len) without placing anything. */
int uffd_wake(struct uffd *u, void *addr, uint64_t len, struct tern_error *err);

/*
 * Read up to @max faults, waiting at most @timeout_ms (-1: no bound) for the
 * first. Returns how many were read (0: the wait ran out), -ECANCELED once
 * uffd_interrupt() was called, or another negative errno with @err set.
 */
int uffd_read_faults(struct uffd *u, struct uffd_fault *f, unsigned int max, int timeout_ms,
		     struct tern_error *err);
/* Make every uffd_read_faults(), now and later, return -ECANCELED. */
void uffd_interrupt(struct uffd *u);

#endif
