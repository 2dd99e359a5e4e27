/* SPDX-License-Identifier: MIT */
/*
 * The rounds of precopy, and the path a page takes on the source: each round
 * syncs the dirty log, re-arms the provider's log chunk by chunk as its first
 * page is queued, fills batches of page numbers from the send maps, queues
 * them on the workers (multifd/send.c) under max-bandwidth, and closes the
 * round with SYNC on every channel and RAM_SYNC on the control channel. The
 * loop ends when what remains fits the downtime (src_estimate.c), or at
 * migration-timeout; auto-converge throttles a guest that does not converge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core_priv.h"
#include "source_priv.h"

/* The migration-timeout deadline (0: none), read again each time: live. */
uint64_t src_timeout_deadline(struct tern_session *s)
{
	uint64_t t = params_get(&s->params, PARAM_MIGRATION_TIMEOUT);

	return t ? s->start_ns + t * 1000000000ull : 0;
}

/*
 * Whether the round being sent should end now: downtime-limit changed (so
 * the switchover rule must be applied again, with what remains, at once) or
 * migration-timeout passed. The pages not queued stay in the send maps and
 * go in the next round.
 */
static bool round_must_end(struct tern_session *s, struct round_ctx *rc, uint64_t now)
{
	uint64_t dl;

	if (!rc->limit_ms)
		return false; /* switchover: the last round is never cut */
	if (src_postcopy_wanted(s))
		return true;
	if (params_get(&s->params, PARAM_DOWNTIME_LIMIT) != rc->limit_ms)
		return true;
	dl = src_timeout_deadline(s);
	return dl && now >= dl;
}

uint64_t src_wire_total(struct tern_session *s)
{
	struct mf_chan_stats t;

	mf_send_stats(s->mf_send, &t, NULL);
	return t.wire_bytes;
}

/*
 * The round's unthrottled tail. Under max-bandwidth the rounds say only
 * what the limit allows, yet the last round goes at full speed (the guest is
 * paused) and the switchover estimate must know what it will get
 * (src_switchover_rate()). So each round's last TAIL_BYTES go unthrottled,
 * and what they deliver up to the round's acknowledgement is learned
 * (src_estimate.c). The bytes still count against the bucket: the next
 * round pays them back, and max-bandwidth holds as an average; a burst is
 * at most TAIL_BYTES plus what the queues held. Not with
 * avail-switchover-bandwidth: the operator said what the path gives, and
 * perhaps that it must not see bursts. Returns whether the tail runs.
 */
#define TAIL_BYTES (4ull << 20)

static bool tail_unthrottled(struct tern_session *s, struct round_ctx *rc, uint64_t now,
			     uint64_t wire)
{
	uint64_t queued = rc->sent_pages - rc->round_sent0, left;

	if (rc->tail_ns)
		return true;
	if (params_get(&s->params, PARAM_AVAIL_SWITCHOVER_BANDWIDTH))
		return false;
	left = rc->round_pages > queued ? (rc->round_pages - queued) * s->page_size : 0;
	if (left > TAIL_BYTES)
		return false;
	rc->tail_ns = now;
	rc->tail_wire0 = wire;
	return true;
}

/*
 * Hold the sender back until the bytes written so far are within
 * max-bandwidth. One sleep covers at most one rate window, and the limit is
 * read again after each, so a change made meanwhile (or a cancel) is seen
 * within a window; the loop goes on until the bucket is out of debt, so a
 * 2 MiB batch on a slow limit waits as long as it must. Return: 0,
 * ROUND_CUT when the round should end now (round_must_end()), or a negative
 * errno.
 */
static int pace(struct tern_session *s, struct round_ctx *rc, struct tern_error *err)
{
	/* With the guest paused, every millisecond is downtime: the last round
	 * goes as fast as the link allows, as in QEMU's completion stage. */
	if (rc->final)
		return 0;
	for (;;) {
		uint64_t max = params_get(&s->params, PARAM_MAX_BANDWIDTH);
		uint64_t now = tern_now_ns(), wire = src_wire_total(s);
		uint64_t sleep_ns =
		    ratelimit_account(&rc->rl, now, wire, rc->sent_pages * s->page_size, max);
		struct timespec ts;
		int ret;

		__atomic_store_n(&s->bw_bps, rc->rl.bw_bps, __ATOMIC_RELAXED);
		__atomic_store_n(&s->ram_bps, rc->rl.ram_bps, __ATOMIC_RELAXED);
		if (round_must_end(s, rc, now))
			return ROUND_CUT;
		if (!sleep_ns || tail_unthrottled(s, rc, now, wire))
			return 0;
		rc->held = true;
		if (session_stopping(s) || mf_send_error(s->mf_send, NULL))
			return -ECANCELED;
		/* a slow max-bandwidth may hold the sender here for long */
		ret = src_ctl_keepalive_maybe(s, err);
		if (ret)
			return ret;
		ts.tv_sec = (time_t)(sleep_ns / 1000000000ull);
		ts.tv_nsec = (long)(sleep_ns % 1000000000ull);
		nanosleep(&ts, NULL);
	}
}

/*
 * Wait until every worker has sent its hello and bound guest RAM to its
 * channel: on rdma with rdma-pin-all, both sides register all of it now, and
 * that cost belongs to the setup time, not to the first round.
 */
int src_workers_ready(struct tern_session *s, struct tern_error *err)
{
	int ret;

	while ((ret = mf_send_flush(s->mf_send, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		ret = src_wait_tick(s, NULL, err);
		if (ret)
			return ret;
	}
	if (ret && mf_send_error(s->mf_send, err))
		return tern_error_prefix(err, "setting up the worker channels");
	return ret;
}

static int queue_batch(struct tern_session *s, struct round_ctx *rc, struct mf_batch **bp,
		       struct tern_error *err)
{
	struct mf_batch *b = *bp;
	int ret;

	*bp = NULL;
	/* src_send_round() took this page's word and every word before it off
	 * the send map and re-armed their chunks: tell verify-ram -- first
	 * which regions the worker will hash, then that they are armed, so
	 * the background never takes one of them cold */
	digest_track_queued(s->digest, b->block, b->pages, b->npages);
	digest_track_passed(s->digest, b->block, b->pages[b->npages - 1]);
	rc->sent_pages += b->npages;
	while ((ret = mf_send_batch_queue(s->mf_send, b, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		ret = src_wait_tick(s, rc, err);
		if (ret) {
			mf_send_batch_put(s->mf_send, b);
			return ret;
		}
	}
	if (ret)
		return ret;
	__atomic_store_n(&s->queued_pages, rc->sent_pages, __ATOMIC_RELAXED);
	ret = src_ctl_keepalive_maybe(s, err);
	return ret ? ret : pace(s, rc, err);
}

/*
 * Before round @round starts, with a method that may use XBZRLE: wait until
 * every worker drained what it was given of the round before.
 *
 * The XBZRLE cache holds, per page, the version the destination will have
 * once the packets arrive, and the destination applies packets in round
 * order (the sync barrier). Were a page of round n still waiting to be
 * encoded on one channel while another channel encodes its round-n+1 copy,
 * the cache would see the versions in the wrong order: the round-n packet,
 * applied first on the destination, would carry a delta against the
 * round-n+1 version. Draining makes the source's encode order the
 * destination's apply order. (With other codecs a page's bytes replace the
 * old ones whole, and no such order matters.)
 *
 * It is also the one moment the cache may be resized: xbzrle-cache-size is
 * live, and takes effect here. A size the cache refuses is logged and the
 * old one kept (a live tweak is no reason to fail the migration).
 */
static int xbzrle_round_barrier(struct tern_session *s, struct round_ctx *rc,
				struct tern_error *err)
{
	uint64_t want = params_get(&s->params, PARAM_XBZRLE_CACHE_SIZE);
	struct tern_error e2 = {0};
	int ret;

	if (!s->xbzrle)
		return 0;
	while ((ret = mf_send_flush(s->mf_send, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		ret = src_wait_tick(s, rc, err);
		if (ret)
			return ret;
	}
	if (ret || want == s->xbzrle_param)
		return ret;
	s->xbzrle_param = want;
	if (want < s->page_size)
		tern_error_set(&e2, -ERANGE, "less than one %u-byte page", s->page_size);
	else
		xbzrle_cache_resize(s->xbzrle, want, &e2);
	if (e2.code)
		tern_log_msg(&s->log, 4, "xbzrle-cache-size %" PRIu64 " not applied: %s", want,
			     e2.msg);
	__atomic_store_n(&s->xbzrle_size, xbzrle_cache_size(s->xbzrle), __ATOMIC_RELAXED);
	return 0;
}

/*
 * Send every page in the blocks' send maps, then close round @round on every
 * channel and on the control channel. A word of the send map (64 pages)
 * never straddles a clear chunk (the shift is at least 6), so the chunk's
 * provider log is re-armed before the first of its pages is queued -- and so
 * before any of them is read.
 */
int src_send_round(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool last,
		   struct tern_error *err)
{
	unsigned int shift = (unsigned int)params_get(&s->params, PARAM_CLEAR_BITMAP_SHIFT);
	struct mf_batch *batch = NULL;
	uint64_t clear_ns = 0, t0, first_ns, wire0 = 0;
	uint8_t sync[8];
	uint32_t bi;
	int ret;

	ret = xbzrle_round_barrier(s, rc, err);
	/* Placed pages land as they are sent: round n-1 must have landed (and
	 * its zero pages been cleared) on every channel first. */
	if (!ret && round > 1 && mf_send_places_pages(s->mf_send))
		ret = src_wait_acked(s, rc, round - 1, err);
	pthread_mutex_lock(&s->lock);
	s->sync_marks[round % 4].round = 0; /* not this round's until its RAM_SYNC */
	pthread_mutex_unlock(&s->lock);
	first_ns = 0;
	__atomic_store_n(&s->round_queued0, rc->sent_pages, __ATOMIC_RELAXED);
	rc->round_pages = __atomic_load_n(&s->remaining_pages, __ATOMIC_RELAXED);
	rc->round_sent0 = rc->sent_pages;
	rc->tail_ns = rc->tail_wire0 = 0;
	rc->held = false;
	for (bi = 0; bi < s->nblocks && !ret; bi++) {
		struct tern_ram_block *b = s->blocks[bi];
		uint64_t w, nwords = BITMAP_WORDS(b->npages);

		for (w = 0; w < nwords && !ret; w++) {
			uint64_t v = __atomic_load_n(&b->send[w], __ATOMIC_RELAXED);
			uint64_t chunk = (w * 64) >> shift;

			if (!v)
				continue;
			/* in postcopy the return path takes requested pages off
			 * the send maps too (src_pc_serve()) */
			v = __atomic_exchange_n(&b->send[w], 0, __ATOMIC_ACQ_REL);
			if (!v)
				continue;
			if (bitmap_test(b->clear_chunks, chunk)) {
				struct dirty_source *ds;
				uint64_t first = chunk << shift;
				uint64_t n = MIN(1ull << shift, b->npages - first);
				uint32_t i;

				bitmap_clear_bit(b->clear_chunks, chunk);
				t0 = tern_now_ns();
				for (i = 0; i < s->nsources && !ret; i++) {
					ds = &s->sources[i];
					if (ds->ops->clear)
						ret = ds->ops->clear(ds->opaque, b, first, n, err);
				}
				clear_ns += tern_now_ns() - t0;
				if (ret) {
					tern_error_set(err, ret, "clearing the dirty log failed");
					tern_error_prefix(err,
							  "block '%s' pages %" PRIu64 "..%" PRIu64,
							  b->name, first, first + n - 1);
					break;
				}
			}
			while (v) {
				if (!batch) {
					if (!first_ns) {
						first_ns = tern_now_ns();
						wire0 = src_wire_total(s);
					}
					batch = mf_send_batch_get(s->mf_send);
					if (!batch) {
						ret = mf_send_error(s->mf_send, err);
						ret = ret ? ret : -ECANCELED;
						break;
					}
					batch->block = bi;
					batch->round = round;
					batch->paused = last;
					batch->postcopy = rc->postcopy;
				}
				batch->pages[batch->npages++] =
				    w * 64 + (uint64_t)__builtin_ctzll(v);
				v &= v - 1;
				if (batch->npages == MF_BATCH_PAGES) {
					ret = queue_batch(s, rc, &batch, err);
					if (ret)
						break;
				}
			}
			/* cut short: the word's pages not queued wait for the next round */
			if (ret == ROUND_CUT)
				__atomic_fetch_or(&b->send[w], v, __ATOMIC_RELAXED);
		}
		if (!ret && batch)
			ret = queue_batch(s, rc, &batch, err);
		if (!ret)
			digest_track_passed(s->digest, bi, b->npages - 1); /* all of it */
	}
	if (batch)
		mf_send_batch_put(s->mf_send, batch);
	rc->cut = ret == ROUND_CUT;
	if (rc->cut) {
		ret = 0;
		tern_log_msg(&s->log, 6, "round %" PRIu64 " ended early: %s", round,
			     src_postcopy_wanted(s) ? "postcopy requested"
			     : params_get(&s->params, PARAM_DOWNTIME_LIMIT) != rc->limit_ms
				 ? "downtime-limit changed"
				 : "migration-timeout reached");
	}
	__atomic_store_n(&s->dirty_clear_ns, clear_ns, __ATOMIC_RELAXED);
	if (!ret && rc->postcopy)
		src_pc_round_done(s);
	while (!ret && (ret = mf_send_sync(s->mf_send, round, last, SRC_WAIT_TICK_MS)) == -EAGAIN)
		ret = src_wait_tick(s, rc, err);
	if (!ret) {
		uint64_t wire = src_wire_total(s);

		pthread_mutex_lock(&s->lock);
		s->sync_marks[round % 4].round = round;
		s->sync_marks[round % 4].wire0 = first_ns ? wire0 : wire;
		s->sync_marks[round % 4].wire = wire;
		s->sync_marks[round % 4].first_ns = first_ns ? first_ns : tern_now_ns();
		s->sync_marks[round % 4].ack_ns = 0;
		s->sync_marks[round % 4].sent_ns = tern_now_ns();
		s->sync_marks[round % 4].tail_ns = rc->tail_ns;
		s->sync_marks[round % 4].tail_wire0 = rc->tail_wire0;
		pthread_mutex_unlock(&s->lock);
		put_be64(sync, round);
		ret = ctl_send(s->ctl, CTL_RAM_SYNC, sync, sizeof(sync));
		__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(sync), __ATOMIC_RELAXED);
		if (ret == -ETIMEDOUT)
			src_ctl_write_error(s, ret, "RAM_SYNC", err);
	}
	ratelimit_idle(&rc->rl, tern_now_ns(), src_wire_total(s), rc->sent_pages * s->page_size,
		       params_get(&s->params, PARAM_MAX_BANDWIDTH));
	__atomic_store_n(&s->bw_bps, rc->rl.bw_bps, __ATOMIC_RELAXED);
	if (ret && !err->code) {
		struct tern_error e2 = {0};

		if (mf_send_error(s->mf_send, &e2))
			tern_error_set(err, e2.code, "%s", e2.msg);
		else if (ret != -ECANCELED)
			tern_error_set(err, ret, "round %" PRIu64 ": %s", round, strerror(-ret));
	}
	return ret;
}

/* What the last sync left to send (ram_sync() counted it). */
uint64_t src_synced_bytes(struct tern_session *s)
{
	return __atomic_load_n(&s->remaining_pages, __ATOMIC_RELAXED) * s->page_size;
}

/*
 * A dirty-log sync. @paused_ns: when the guest was paused (the switchover's
 * sync), 0 while it runs: the time since is not guest run time for the
 * dirty rate (dirty_rate.c).
 */
int src_sync_dirty(struct tern_session *s, struct round_ctx *rc, uint64_t paused_ns,
		   struct tern_error *err)
{
	uint64_t t0 = tern_now_ns(), newly = 0, t1;
	int ret;

	ret = ram_sync(s, &newly, err);
	if (ret)
		return ret;
	t1 = tern_now_ns();
	digest_track_synced(s->digest);
	if (dirty_rate_sync(&rc->dr, t0, newly, paused_ns && t0 > paused_ns ? t0 - paused_ns : 0)) {
		__atomic_store_n(&s->dirty_pages_rate, rc->dr.rate, __ATOMIC_RELAXED);
		__atomic_store_n(&s->dirty_rate_win_ns, rc->dr.rate_win_ns, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&s->dirty_sync_ns, t1 - t0, __ATOMIC_RELAXED);
	/* the management server's "round" event (a no-op without a server),
	 * with the estimate for what this sync left */
	if (!rc->final)
		src_estimate_downtime_us(s, rc, src_synced_bytes(s));
	observers_round(s, __atomic_add_fetch(&s->rounds, 1, __ATOMIC_RELAXED), newly);
	return 0;
}

/* Tell the VMM the throttle (auto-converge); 0 lifts it. */
void src_throttle_set(struct tern_session *s, uint32_t pct)
{
	if (pct == __atomic_load_n(&s->throttle_pct, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&s->throttle_pct, pct, __ATOMIC_RELAXED);
	tern_log_msg(&s->log, 6, "auto-converge: vCPU throttle %u%%", pct);
	if (s->vmm.throttle)
		s->vmm.throttle(s->vmm_opaque, pct);
}

/*
 * auto-converge: a round that was sent whole and still left at least 90% of
 * what it started with to send again did not converge: the guest dirties
 * about as fast as the link carries. Throttle its vCPUs (first
 * cpu-throttle-initial, then cpu-throttle-increment more per such round, up
 * to max-cpu-throttle), so each round leaves less.
 */
static void auto_converge(struct tern_session *s, uint64_t prev_pending, uint64_t pending)
{
	uint64_t pct = __atomic_load_n(&s->throttle_pct, __ATOMIC_RELAXED);
	uint64_t max = params_get(&s->params, PARAM_MAX_CPU_THROTTLE);

	if (!caps_get(&s->params, CAP_AUTO_CONVERGE) || !prev_pending ||
	    (double)pending < (double)prev_pending * 0.9)
		return;
	pct = pct ? pct + params_get(&s->params, PARAM_CPU_THROTTLE_INCREMENT)
		  : params_get(&s->params, PARAM_CPU_THROTTLE_INITIAL);
	src_throttle_set(s, (uint32_t)MIN(pct, max));
}

/*
 * migration-timeout passed before the switchover. Policy force: switch over
 * now (return 0). Policy cancel: end the migration `cancelled`, the guest
 * running on here, and tell the destination why.
 */
int src_timeout_reached(struct tern_session *s, uint64_t pending, struct tern_error *err)
{
	uint64_t t = params_get(&s->params, PARAM_MIGRATION_TIMEOUT);
	struct tern_conn *ctl;

	if (params_get(&s->params, PARAM_MIGRATION_TIMEOUT_POLICY) == TIMEOUT_POLICY_POSTCOPY + 1 &&
	    caps_get(&s->params, CAP_POSTCOPY_RAM)) {
		tern_log_msg(&s->log, 4,
			     "migration-timeout of %" PRIu64 " s reached with %" PRIu64
			     " bytes pending: switching to postcopy (policy postcopy)",
			     t, pending);
		__atomic_store_n(&s->postcopy_req, true, __ATOMIC_RELEASE);
		return 0;
	}
	if (params_get(&s->params, PARAM_MIGRATION_TIMEOUT_POLICY) == TIMEOUT_POLICY_FORCE + 1) {
		tern_log_msg(&s->log, 4,
			     "migration-timeout of %" PRIu64 " s reached with %" PRIu64
			     " bytes pending: switching over anyway (policy force)",
			     t, pending);
		return 0;
	}
	tern_error_set(err, -ECANCELED,
		       "migration-timeout of %" PRIu64 " s reached with %" PRIu64
		       " bytes still to send (policy cancel)",
		       t, pending);
	pthread_mutex_lock(&s->lock);
	tern_error_set(&s->err, err->code, "%s", err->msg);
	s->cancel = true;
	ctl = s->ctl;
	pthread_mutex_unlock(&s->lock);
	ctl_send_error(ctl, err->code, err->msg);
	return -ECANCELED;
}

/*
 * verify-ram: before the pause, let each side's background digest catch up
 * with what the rounds sent (the guest runs meanwhile), so that the pause
 * pays for the last round's regions only. We cannot see the destination's
 * backlog: it digests what landed -- once the round is acknowledged, all of
 * it -- about as much as we digest what we sent, in the same time; ours
 * stands for both.
 */
static int src_wait_digest(struct tern_session *s, struct round_ctx *rc, struct tern_error *err)
{
	uint64_t t0 = tern_now_ns();
	int ret;

	while ((ret = digest_track_wait(s->digest, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		if (session_stopping(s))
			return -ECANCELED;
		ret = src_wait_tick(s, rc, err);
		if (ret)
			return ret;
	}
	if (s->digest)
		tern_log_msg(&s->log, 6,
			     "verify-ram: %" PRIu64
			     " us for the digest to catch up (guest running)",
			     (tern_now_ns() - t0) / 1000);
	return ret;
}

/*
 * Rounds until what remains fits the downtime. On return, round *@ret_round
 * was synced but not sent: the switchover sends it with the guest paused.
 *
 * What remains is not only the dirty pages: the last round's pages may still
 * sit in queues and socket buffers (tens of MiB on a fast link). So when the
 * dirty pages fit, first wait -- guest running -- (with verify-ram, until our
 * digest caught up, then) until the destination acknowledges that round,
 * then sync again and decide on what is truly left.
 */
/*
 * Whether to wait for the last round's acknowledgement before deciding:
 * max-bandwidth held it back, its unthrottled tail is in flight, and no tail
 * was learned yet (src_estimate.c). Only its tail and what the queues held
 * are still travelling, at full speed: milliseconds, against a whole round
 * at the limit's rate if the decision went on without it.
 */
static bool tail_worth_waiting(struct tern_session *s, struct round_ctx *rc)
{
	uint64_t tail;

	if (!rc->held || !rc->tail_ns || params_get(&s->params, PARAM_AVAIL_SWITCHOVER_BANDWIDTH))
		return false;
	pthread_mutex_lock(&s->lock);
	tail = s->tail_bps;
	pthread_mutex_unlock(&s->lock);
	return !tail;
}

/*
 * Whether no rate at all is known yet: no window closed (a bulk round that
 * went out within one, its bucket's credit and unthrottled tail covering
 * all of it) and no round was acknowledged. Then the next round waits for
 * the last one's acknowledgement, which gives the acknowledged-round bound
 * (src_estimate.c). Without it a guest that dirties a page or two between
 * syncs runs rounds of a few KiB faster than the destination's barrier
 * acknowledges them: the acknowledgements fall further and further behind,
 * no estimate is ever made, and no switchover (seen: an 8 MiB guest at
 * max-bandwidth 32 MiB/s behind a proxy, 30 s and more).
 */
static bool rate_unknown(struct tern_session *s)
{
	/* what the estimate at this round's sync priced the RAM at */
	return !__atomic_load_n(&s->sw_rate_bps, __ATOMIC_RELAXED);
}

int src_precopy(struct tern_session *s, struct round_ctx *rc, uint64_t *ret_round,
		struct tern_error *err)
{
	uint64_t round = 0, pending, prev_pending = 0, dl;
	int ret;

	for (;;) {
		round++;
		if (src_postcopy_wanted(s)) {
			rc->postcopy = true; /* src_postcopy() takes it from here */
			break;
		}
		ret = src_sync_dirty(s, rc, 0, err);
		if (!ret) /* a large guest's sync is a long step */
			ret = src_ctl_keepalive_maybe(s, err);
		if (!ret && round > 1 && (tail_worth_waiting(s, rc) || rate_unknown(s)))
			ret = src_wait_acked(s, rc, round - 1, err);
		if (ret)
			return ret;
		pending = src_synced_bytes(s);
		if (src_fits_downtime(s, rc, round, pending)) {
			/* the digest first: what the guest writes while we wait
			 * goes in the last round, so the wait right before the
			 * sync should be the short one */
			ret = src_wait_digest(s, rc, err);
			if (!ret)
				ret = src_wait_acked(s, rc, round - 1, err);
			if (!ret)
				ret = src_sync_dirty(s, rc, 0, err);
			if (ret)
				return ret;
			pending = src_synced_bytes(s);
			if (src_fits_downtime(s, rc, round, pending))
				break;
		}
		dl = src_timeout_deadline(s);
		if (dl && tern_now_ns() >= dl) {
			ret = src_timeout_reached(s, pending, err);
			if (ret)
				return ret;
			rc->postcopy = src_postcopy_wanted(s); /* policy postcopy */
			break;
		}
		/* a round cut short says nothing about convergence */
		if (round > 1 && !rc->cut)
			auto_converge(s, prev_pending, pending);
		prev_pending = pending;
		rc->limit_ms = params_get(&s->params, PARAM_DOWNTIME_LIMIT);
		ret = src_send_round(s, rc, round, false, err);
		if (ret)
			return ret;
		dirty_rate_bulk_sent(&rc->dr);
	}
	rc->limit_ms = 0; /* the switchover's round is never cut */
	rc->final = true;
	*ret_round = round;
	return 0;
}
