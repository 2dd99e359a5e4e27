/* SPDX-License-Identifier: MIT */
/*
 * Postcopy on the destination's load thread (the picture is in
 * src_postcopy.c; the missing pages, faults and placement are pc_dest.c's).
 *
 * POSTCOPY_DISCARD frames name, per block, the pages the source still
 * holds dirty: our copies of them are stale or absent. They are collected
 * until POSTCOPY_RUN, which comes after every precopy page landed (the
 * RAM_SYNC barrier of the last round came first) and after the device
 * sections. At RUN:
 *   1. the prefault threads stop: populating a page after we dropped it
 *      would make it a present zero page, read by the guest as its content;
 *      and so does verify-ram's background hashing, which would wait on a
 *      missing page (the final digest takes what it left, every page in);
 *   2. the blocks are registered with userfaultfd, the discarded pages
 *      dropped (pc_dest_arm()), the receive workers told to place every
 *      postcopy packet through pc_dest_place(), the fault thread started;
 *   3. the guest starts, and POSTCOPY_RUNNING tells the source what that
 *      took.
 * From RUN on, a failure cannot be undone: the guest runs here and some of
 * its pages exist only on the source. The engine then stays as it is --
 * a vCPU touching a missing page waits -- until the session is freed, and
 * the failure says so.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"
#include "postcopy.h"

static int pc_request(void *opaque, uint32_t block, uint64_t page, struct tern_error *err)
{
	struct tern_session *s = opaque;
	uint8_t req[12];
	int ret;

	put_be32(req, block);
	put_be64(req + 4, page);
	pthread_mutex_lock(&s->ctl_wlock);
	ret = s->ctl ? ctl_send(s->ctl, CTL_PAGE_REQ, req, sizeof(req)) : -ENOTCONN;
	pthread_mutex_unlock(&s->ctl_wlock);
	/* Not a failure: without a connection (paused, or breaking) the page
	 * stays requested and missing, and the recovery asks for it again. */
	if (ret)
		tern_log_msg(&s->log, 7, "postcopy: block %u page %" PRIu64 " asked for later: %s",
			     block, page, strerror(-ret));
	return 0;
}

/* The engine itself failed (userfaultfd): no recovery brings that back. */
static void pc_failed(void *opaque, const struct tern_error *err)
{
	struct tern_session *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->pc_fatal = true;
	pthread_mutex_unlock(&s->lock);
	session_fail(s, err);
}

static const struct pc_dest_ops pc_ops = {.request = pc_request, .failed = pc_failed};

static int pc_place(void *opaque, uint32_t block, uint64_t page, uint32_t n, const void *data,
		    struct tern_error *err)
{
	return pc_dest_place(opaque, block, page, n, data, err);
}

void dest_pc_attach(struct tern_session *s, struct mf_recv *r)
{
	if (s->pc)
		mf_recv_set_placer(r, pc_place, s->pc);
}

int dest_pc_discard(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err)
{
	if (!(s->peer_caps & CAP_BIT(CAP_POSTCOPY_RAM)))
		return tern_error_set(err, -EPROTO, "POSTCOPY_DISCARD without postcopy-ram");
	if (s->postcopy_run)
		return tern_error_set(err, -EPROTO, "POSTCOPY_DISCARD after POSTCOPY_RUN");
	if (!s->pc_missing) {
		s->pc_missing = calloc(s->nblocks, sizeof(*s->pc_missing));
		if (!s->pc_missing)
			return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
	}
	return pc_runs_take(s, p, len, CTL_POSTCOPY_DISCARD, s->pc_missing, err);
}

/* Every block's missing pages (an empty map where DISCARD named none). */
static int missing_maps(struct tern_session *s, uint64_t *ret_pages, struct tern_error *err)
{
	uint32_t i;

	*ret_pages = 0;
	if (!s->pc_missing)
		s->pc_missing = calloc(s->nblocks, sizeof(*s->pc_missing));
	for (i = 0; s->pc_missing && i < s->nblocks; i++) {
		if (!s->pc_missing[i])
			s->pc_missing[i] = bitmap_new(s->blocks[i]->npages);
		if (!s->pc_missing[i])
			break;
		*ret_pages += bitmap_count(s->pc_missing[i], s->blocks[i]->npages);
	}
	if (!s->pc_missing || i < s->nblocks)
		return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
	return 0;
}

int dest_pc_run(struct tern_session *s, const uint8_t *p, uint32_t len, uint64_t last_round,
		struct tern_error *err)
{
	struct pc_dest_block blocks[MAX_BLOCKS];
	struct pc_dest_cfg cfg = {
	    .page_size = s->page_size,
	    .nblocks = s->nblocks,
	    .blocks = blocks,
	    .ops = &pc_ops,
	    .opaque = s,
	    .cpu = &s->cpu,
	};
	uint64_t round, pages, missing, t0;
	struct mf_chan_stats wire;
	uint8_t running[8];
	struct pc_dest *pc;
	uint32_t i;
	int ret;

	if (!(s->peer_caps & CAP_BIT(CAP_POSTCOPY_RAM)))
		return tern_error_set(err, -EPROTO, "POSTCOPY_RUN without postcopy-ram");
	if (len != 16 || s->postcopy_run)
		return tern_error_set(err, -EPROTO, "POSTCOPY_RUN: %s",
				      s->postcopy_run ? "a second one" : "malformed");
	round = get_be64(p);
	pages = get_be64(p + 8);
	if (round != last_round + 1)
		return tern_error_set(err, -EPROTO,
				      "POSTCOPY_RUN for round %" PRIu64 " after round %" PRIu64,
				      round, last_round);
	ret = missing_maps(s, &missing, err);
	if (ret)
		return ret;
	if (missing != pages)
		return tern_error_set(
		    err, -EPROTO, "POSTCOPY_RUN: %" PRIu64 " pages to come, DISCARD named %" PRIu64,
		    pages, missing);
	hint_prefault_stop(s); /* see the top: before anything is dropped */
	/* its reads must not wait on missing pages (a lost source: forever) */
	digest_track_stop_background(s->digest);
	for (i = 0; i < s->nblocks; i++)
		blocks[i] = (struct pc_dest_block){.host = s->blocks[i]->host,
						   .npages = s->blocks[i]->npages};
	ret = pc_dest_new(&cfg, &pc, err);
	if (ret)
		return ret;
	ret = pc_dest_arm(pc, (const uint64_t *const *)s->pc_missing, err);
	if (!ret)
		ret = pc_dest_start(pc, err);
	if (ret) {
		/* nothing ran yet: the guest was never started here, and no
		 * worker was given the engine */
		pc_dest_free(pc);
		return ret;
	}
	mf_recv_set_placer(s->mf_recv, pc_place, pc);
	pthread_mutex_lock(&s->lock);
	s->pc = pc;
	pthread_mutex_unlock(&s->lock);
	mf_recv_stats(s->mf_recv, &wire, NULL);
	__atomic_store_n(&s->pc_wire0, wire.wire_bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pc_missing_pages, missing, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pc_start_ns, tern_now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->postcopy_run, true, __ATOMIC_RELEASE);
	if (!session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_POSTCOPY_ACTIVE))
		tern_log_msg(&s->log, 4, "postcopy: starting the guest while %s",
			     tern_status_name(session_status(s)));
	t0 = tern_now_ns();
	if (s->vmm.resume)
		s->vmm.resume(s->vmm_opaque);
	put_be64(running, tern_now_ns() - t0);
	pthread_mutex_lock(&s->ctl_wlock);
	ret = s->ctl ? ctl_send(s->ctl, CTL_POSTCOPY_RUNNING, running, sizeof(running)) : -ENOTCONN;
	pthread_mutex_unlock(&s->ctl_wlock);
	tern_log_msg(&s->log, 6, "postcopy: the guest runs; %" PRIu64 " pages to fetch", missing);
	if (ret)
		return tern_error_set(err, ret, "sending POSTCOPY_RUNNING: %s", strerror(-ret));
	return 0;
}

int dest_pc_finish(struct tern_session *s, struct tern_error *err)
{
	struct pc_dest_stats ps;
	struct pc_dest *pc;
	uint64_t left;

	/* every packet was read and placed: nothing can still be on its way */
	if (pc_dest_wait_complete(s->pc, 0)) {
		left = pc_dest_missing(s->pc);
		return tern_error_set(err, -EPROTO,
				      "postcopy: the source ended its stream with %" PRIu64
				      " pages never sent",
				      left);
	}
	__atomic_store_n(&s->pc_end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	/* every page is here: the guest no longer needs us between it and
	 * its memory (a first touch of a zero page would still come here) */
	pc_dest_stats(s->pc, &ps);
	pthread_mutex_lock(&s->lock);
	s->pc_final = ps;
	pc = s->pc;
	s->pc = NULL;
	pthread_mutex_unlock(&s->lock);
	pc_dest_free(pc);
	return 0;
}

void dest_pc_stats(struct tern_session *s, struct tern_stats *st)
{
	struct pc_dest_stats ps;

	pthread_mutex_lock(&s->lock);
	if (s->pc)
		pc_dest_stats(s->pc, &ps);
	else
		ps = s->pc_final;
	if (s->pc || __atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE)) {
		st->postcopy_remaining_pages = ps.missing;
		st->postcopy_faults = ps.faults;
		st->postcopy_requests = ps.requested;
		st->postcopy_latency_p50_us = ps.latency_p50_us;
		st->postcopy_latency_p99_us = ps.latency_p99_us;
		st->postcopy_latency_max_us = ps.latency_max_us;
	}
	pthread_mutex_unlock(&s->lock);
}

void dest_pc_free(struct tern_session *s)
{
	uint32_t i;

	pc_dest_free(s->pc);
	s->pc = NULL;
	for (i = 0; s->pc_missing && i < s->nblocks; i++)
		bitmap_free(s->pc_missing[i]);
	free(s->pc_missing);
	s->pc_missing = NULL;
}
