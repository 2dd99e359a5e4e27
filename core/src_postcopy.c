/* SPDX-License-Identifier: MIT */
/*
 * Postcopy on the source (issue 13; the protocol is in docs/PROTOCOL.md,
 * "Postcopy").
 *
 *   source                                         destination
 *   ------                                         -----------
 *   tern_postcopy_start(): the round being sent is cut, RAM_SYNC n closes it
 *   pause the guest, last dirty-log sync
 *   POSTCOPY_DISCARD x blocks (what is still dirty) ► drop those pages
 *   SECTION_FULL x sections ───────────────────────► load device state
 *   POSTCOPY_RUN (round n+1, pages) ──────────────► register with userfaultfd,
 *                                                   start the guest
 *            ◄──────────────────────── POSTCOPY_RUNNING (resume's cost)
 *   round n+1: the dirty pages on the workers  ───► placed atomically
 *            ◄──────────────────────── PAGE_REQ (a vCPU faulted on it)
 *   that page and its dirty neighbours, urgent ───► placed; the vCPU goes on
 *   SYNC n+1|LAST everywhere, RAM_SYNC, EOS ──────► every page in
 *            ◄──────────────── LOADED, COMPLETE (+ digest)
 *
 * The point of no return is POSTCOPY_RUN: from then on the destination may
 * run the guest, so ours never runs again (tern_cancel() is refused, a
 * failure leaves it paused). A RUN that could not be written at all, or
 * only in part, never reached the destination as a frame, so then we
 * still resume.
 *
 * The urgent channel: the last worker connection, never given bulk pages
 * (multifd/send.c). The return-path thread takes a requested page and up
 * to PC_NEIGHBOURS of the following pages still dirty off the send maps
 * (atomically: the migration thread's bulk loop takes whole words the same
 * way), and queues them there, raw. The page itself goes whether or not
 * the bulk loop took it already: bulk may hold it behind megabytes, and
 * the destination drops the later copy. Before the last SYNC closes the
 * urgent channel, the migration thread waits for every request being
 * served to be queued (pc_serving), so no page taken off the maps is lost.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"
#include "source_priv.h"

/* pages after a requested one sent with it, when they are still dirty:
 * a guest that faults on one page tends to touch the next */
#define PC_NEIGHBOURS 15
/* malformed page requests logged before the rest are only counted */
#define PC_BAD_LOGGED 8

bool src_postcopy_wanted(struct tern_session *s)
{
	return __atomic_load_n(&s->postcopy_req, __ATOMIC_ACQUIRE);
}

/* src_send_round(), the postcopy round's pages all queued: the urgent
 * channel is about to close, so wait for requests being served. */
void src_pc_round_done(struct tern_session *s)
{
	__atomic_store_n(&s->pc_closing, true, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&s->pc_serving, __ATOMIC_SEQ_CST))
		sched_yield();
}

static void bad_request(struct tern_session *s, const char *why)
{
	uint64_t n = __atomic_add_fetch(&s->pc_bad_reqs, 1, __ATOMIC_RELAXED);

	if (n <= PC_BAD_LOGGED)
		tern_log_msg(&s->log, 4, "postcopy: page request refused: %s%s", why,
			     n == PC_BAD_LOGGED ? " (further ones are only counted)" : "");
}

/* Take @page of @blk off the send map; whether it was there. */
static bool take_page(struct tern_ram_block *blk, uint64_t page)
{
	uint64_t bit = 1ull << (page % 64);

	return __atomic_fetch_and(&blk->send[page / 64], ~bit, __ATOMIC_ACQ_REL) & bit;
}

static void serve(struct tern_session *s, uint32_t block, uint64_t page)
{
	struct tern_ram_block *blk = s->blocks[block];
	struct mf_batch *b = mf_send_urgent_get(s->mf_send);
	uint64_t q;
	int ret;

	if (!b)
		return;	  /* failed, cancelled, or the channel closed */
	b->block = block; /* postcopy, raw and the round: mf_send_urgent_*() */
	b->paused = true;
	take_page(blk, page);
	b->pages[b->npages++] = page;
	for (q = page + 1; q < blk->npages && q <= page + PC_NEIGHBOURS; q++)
		if (take_page(blk, q))
			b->pages[b->npages++] = q;
	while ((ret = mf_send_urgent_queue(s->mf_send, b, SRC_WAIT_TICK_MS)) == -EAGAIN)
		if (session_stopping(s))
			break;
	if (ret == -EAGAIN)
		mf_send_urgent_put(s->mf_send, b); /* still ours: we gave up waiting */
	if (ret)
		return; /* otherwise the queue took it back (closed, failed) */
	__atomic_fetch_add(&s->pc_urgent_pages, b->npages, __ATOMIC_RELAXED);
}

void src_pc_serve(struct tern_session *s, const uint8_t *p, uint32_t len)
{
	char why[128];
	uint32_t block;
	uint64_t page;
	struct rd r;

	rd_init(&r, p, len);
	block = rd_u32(&r);
	page = rd_u64(&r);
	if (r.bad || rd_left(&r)) {
		snprintf(why, sizeof(why), "a frame of %u bytes, not 12", len);
		bad_request(s, why);
		return;
	}
	if (!__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE)) {
		snprintf(why, sizeof(why), "block %u page %" PRIu64 " before postcopy began", block,
			 page);
		bad_request(s, why);
		return;
	}
	if (block >= s->nblocks || page >= s->blocks[block]->npages) {
		snprintf(why, sizeof(why), "block %u page %" PRIu64 ": out of range", block, page);
		bad_request(s, why);
		return;
	}
	/* Dekker with src_pc_round_done(): either it sees us serving and waits,
	 * or we see it closing and leave the page to the bulk stream */
	__atomic_add_fetch(&s->pc_serving, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&s->pc_closing, __ATOMIC_SEQ_CST))
		serve(s, block, page);
	__atomic_sub_fetch(&s->pc_serving, 1, __ATOMIC_SEQ_CST);
}

/* The digests at the end: in postcopy only a report, never a failure. */
static void compare_digest(struct tern_session *s, const struct ram_digest *mine)
{
	uint64_t h0, h1;
	bool same;
	uint8_t has;
	struct rd r;

	pthread_mutex_lock(&s->lock);
	rd_init(&r, s->complete_payload, s->complete_len);
	has = rd_u8(&r);
	h0 = rd_u64(&r);
	h1 = rd_u64(&r);
	same = !r.bad && has && h0 == mine->h[0] && h1 == mine->h[1];
	s->verified = same;
	pthread_mutex_unlock(&s->lock);
	if (!same)
		tern_log_msg(&s->log, 4,
			     "verify-ram: the destination's RAM differs from ours at the switch: "
			     "in postcopy its digest is taken at the end, after its guest ran, "
			     "so it matches only when the guest wrote nothing meanwhile");
}

/* What the data plane carried when it started: its EOS counts from there. */
struct plane_base {
	uint64_t sent, urgent;
};

static void plane_base_now(struct tern_session *s, struct round_ctx *rc, struct plane_base *b)
{
	b->sent = rc->sent_pages;
	b->urgent = __atomic_load_n(&s->pc_urgent_pages, __ATOMIC_RELAXED);
}

/*
 * After RUN, or after a resume: the pages the send maps hold in @round,
 * EOS with the pages this data plane carried (since @base: a resume's new
 * channels count from zero on the destination), LOADED, our digest
 * (@mine, once: the guest is paused, RAM does not change), COMPLETE.
 */
static int send_rest(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		     const struct plane_base *base, struct ram_digest *mine, bool *digested,
		     struct tern_error *err)
{
	uint8_t eos[16];
	int ret;

	rc->postcopy = true;
	ret = src_send_round(s, rc, round, true, err);
	if (ret)
		return ret;
	put_be64(eos, round);
	/* the destination counts the urgent channel's pages too: all of them
	 * were queued before its last SYNC (src_pc_round_done()) */
	put_be64(eos + 8, rc->sent_pages - base->sent +
			      __atomic_load_n(&s->pc_urgent_pages, __ATOMIC_RELAXED) -
			      base->urgent);
	ret = ctl_send(s->ctl, CTL_EOS, eos, sizeof(eos));
	if (ret)
		return src_ctl_write_error(s, ret, "EOS", err);
	__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(eos), __ATOMIC_RELAXED);
	ret = src_wait_peer(s, rc, &s->got_loaded, 0, "LOADED", err);
	if (!ret && mine && !*digested) {
		ret = digest_track_final(s->digest, mine, src_digest_keepalive, err);
		*digested = !ret;
	}
	if (!ret)
		ret = src_wait_peer(s, rc, &s->got_complete, 0, "COMPLETE", err);
	return ret;
}

int src_postcopy(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool *paused,
		 struct tern_error *err)
{
	bool verify = caps_get(&s->params, CAP_VERIFY_RAM);
	struct ram_digest mine = {{0}};
	uint64_t pause_ns, missing = 0, section_bytes = 0, running_ns, bytes = 0;
	uint64_t *maps[MAX_BLOCKS];
	struct plane_base base = {0}; /* the first data plane: from the start */
	bool digested = false;
	uint8_t run[16];
	uint32_t i;
	int ret;

	if (!session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_POSTCOPY_ACTIVE))
		return -ECANCELED;
	tern_log_msg(&s->log, 6, "postcopy: switching in round %" PRIu64, round);
	rc->limit_ms = 0;
	rc->final = true; /* unthrottled from here on: the guest waits on us */
	pause_ns = tern_now_ns();
	ret = s->vmm.pause ? s->vmm.pause(s->vmm_opaque, err) : 0;
	if (ret)
		return tern_error_set(err, ret, "the VMM failed to pause the guest");
	*paused = true;
	ret = src_sync_dirty(s, rc, tern_now_ns(), err);
	if (ret)
		return ret;
	digest_track_paused(s->digest);
	for (i = 0; i < s->nblocks; i++)
		maps[i] = s->blocks[i]->send; /* what the last sync left dirty */
	ret = pc_runs_send(s, s->ctl, CTL_POSTCOPY_DISCARD, maps, &missing, &bytes, err);
	__atomic_fetch_add(&s->ctl_bytes, bytes, __ATOMIC_RELAXED);
	if (!ret) {
		ret = sections_save_all(s, s->ctl, &section_bytes, err);
		__atomic_fetch_add(&s->ctl_bytes, section_bytes, __ATOMIC_RELAXED);
	}
	if (ret)
		return ret;

	/* the point of no return (see the top) */
	pthread_mutex_lock(&s->lock);
	ret = s->cancel ? -ECANCELED : 0;
	if (!ret)
		__atomic_store_n(&s->postcopy_run, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return ret;
	put_be64(run, round);
	put_be64(run + 8, missing);
	__atomic_store_n(&s->pc_missing_pages, missing, __ATOMIC_RELAXED);
	__atomic_store_n(&s->pc_wire0, src_wire_total(s), __ATOMIC_RELAXED);
	__atomic_store_n(&s->pc_start_ns, tern_now_ns(), __ATOMIC_RELAXED);
	ret = ctl_send(s->ctl, CTL_POSTCOPY_RUN, run, sizeof(run));
	if (ret) {
		/* no whole RUN frame left here: the destination cannot run it */
		__atomic_store_n(&s->postcopy_run, false, __ATOMIC_RELEASE);
		return src_ctl_write_error(s, ret, "POSTCOPY_RUN", err);
	}
	__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(run), __ATOMIC_RELAXED);
	tern_log_msg(&s->log, 6,
		     "postcopy: the guest runs on the destination; %" PRIu64 " pages to fetch",
		     missing);

	/* the rest; a broken connection pauses, and a resume goes on */
	while ((ret = send_rest(s, rc, round, &base, verify ? &mine : NULL, &digested, err)) &&
	       src_pc_pausable(s)) {
		ret = src_pc_recover(s, &round, err);
		if (ret)
			break;
		plane_base_now(s, rc, &base);
	}
	if (ret)
		return ret;
	if (verify)
		compare_digest(s, &mine);
	__atomic_store_n(&s->pc_end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	/* the guest's pause: from ours until it ran there */
	pthread_mutex_lock(&s->lock);
	running_ns = s->got_pc_running ? s->pc_running_ns : 0;
	pthread_mutex_unlock(&s->lock);
	if (running_ns > pause_ns)
		__atomic_store_n(&s->downtime_ms, (running_ns - pause_ns) / 1000000,
				 __ATOMIC_RELAXED);
	return 0;
}
