/* SPDX-License-Identifier: MIT */
/*
 * The source side: the migration thread and the return-path thread.
 *
 *   source                                         destination
 *   ------                                         -----------
 *   control: stream header, HELLO  ───────────────► checks layout, caps
 *            ◄────────────────── stream header, HELLO_ACK (or ERROR)
 *   N worker channels: hello ─────────────────────► joined by uuid + index
 *   round 1..n: sync dirty log, pages on workers ──► land in place
 *               SYNC n on every worker, RAM_SYNC n ► barrier: all of n in
 *   switchover: pause, last sync, last pages,
 *               SYNC|LAST, RAM_SYNC, sections, EOS ► load sections
 *            ◄────────────────────────────── LOADED
 *            ◄────────────────── COMPLETE (+ RAM digest with verify-ram)
 *   compare digests; COMMIT ──────────────────────► resume the guest there
 *
 * The destination starts the guest only on COMMIT, which the source sends
 * only once it has itself given up its copy: so a cancel or a failure at any
 * point before leaves exactly one guest to run, the source's.
 *
 * Switchover rule: after each sync, if what remains fits in what the link
 * moves in downtime-limit (bandwidth measured over 100 ms windows of
 * sending), pause the guest and finish.
 *
 * No wait on the destination is unbounded (io-timeout, "no progress"):
 *   - every write, on the control channel and on each worker channel, fails
 *     after io-timeout without a byte accepted (the connections' send
 *     timeout; TCP also gets keepalive and TCP_USER_TIMEOUT from it);
 *   - the migration thread's waits for a worker slot, a sync's place or a
 *     flush end once no worker took or finished anything for twice
 *     io-timeout (multifd/send.c; a backstop behind the workers' own bound);
 *   - its waits for RAM_SYNC_ACK, LOADED and COMPLETE end after io-timeout
 *     in which neither the workers wrote a byte nor a round was
 *     acknowledged: an answer queues behind the pages sent before it, so
 *     a slow link that still moves is waited for, a silent peer is not.
 * The destination in turn bounds its wait for our next control frame by
 * its io-timeout, so while it waits -- and once per batch -- the migration
 * thread sends KEEPALIVE when the control channel was quiet for io-timeout
 * / 3 (ctl_keepalive_maybe()).
 * Each of these waits wakes every SRC_WAIT_TICK_MS to look at
 * migration-timeout (before switchover), and a cancel wakes them at once
 * and shuts the channels, which kicks every thread out of its syscall. A
 * stall fails the migration naming the channel and what it waited for; the
 * guest runs on (resumed if it was paused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core_priv.h"
#include "tcp/tcp.h"

#define HANDSHAKE_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define RP_GRACE_MS 1000
/* how often the migration thread's waits look at migration-timeout */
#define SRC_WAIT_TICK_MS 100
#define RESUMED_WAIT_MS 5000

static int io_timeout_ms(struct tern_session *s)
{
	return (int)params_get(&s->params, PARAM_IO_TIMEOUT);
}

/* @what could not be written on the control channel: a stall says so. */
static int ctl_write_error(struct tern_session *s, int code, const char *what,
			   struct tern_error *err)
{
	if (code == -ETIMEDOUT)
		return tern_error_set(err, code,
				      "control channel: could not write %s for %d ms (peer not "
				      "reading)",
				      what, io_timeout_ms(s));
	return tern_error_set(err, code, "sending %s: %s", what, strerror(-code));
}

/*
 * The destination bounds its wait for our next control frame by its
 * io-timeout (dest.c): a source that is alive but has nothing to say -- a
 * long round on the workers, pre-switchover, a digest -- says KEEPALIVE
 * once it sent nothing on the control channel for io-timeout / 3, so a
 * destination with the same io-timeout never takes it for a stopped one.
 * Cheap enough for every batch: a clock read and a counter, and a send only
 * when one is due. Only the migration thread writes the control channel
 * (the return-path thread only reads it), so no lock.
 */
static int ctl_keepalive_maybe(struct tern_session *s, struct tern_error *err);

/* Between the digest's chunks: a failed send shows in the wait that follows. */
static void digest_keepalive(struct tern_session *s)
{
	struct tern_error ignored = {0};

	ctl_keepalive_maybe(s, &ignored);
}

static int ctl_keepalive_maybe(struct tern_session *s, struct tern_error *err)
{
	uint64_t now = tern_now_ns(), bytes = __atomic_load_n(&s->ctl_bytes, __ATOMIC_RELAXED);
	int ret;

	if (bytes != s->ka_bytes || !s->ka_ns) {
		s->ka_bytes = bytes;
		s->ka_ns = now;
		return 0;
	}
	if (now - s->ka_ns < (uint64_t)io_timeout_ms(s) * 1000000 / 3)
		return 0;
	ret = ctl_send(s->ctl, CTL_KEEPALIVE, NULL, 0);
	if (ret)
		return ctl_write_error(s, ret, "KEEPALIVE", err);
	s->ka_bytes = __atomic_add_fetch(&s->ctl_bytes, CTL_HDR_SIZE, __ATOMIC_RELAXED);
	s->ka_ns = now;
	return 0;
}

/* ---- return path --------------------------------------------------------- */

/* Rounds this small say little about the rate (latency dominates). */
#define DELIVERED_MIN_BYTES (4ull << 20)

/*
 * Round @round was acknowledged at @now (under ->lock): every byte written
 * up to its RAM_SYNC has landed. If the round before was acknowledged only
 * after this round's first page was queued, the channels were never idle in
 * between, so the bytes between the two RAM_SYNCs over the time between the
 * two acknowledgements is what the path delivers end to end -- headers,
 * queues and the destination included. That is the rate the paused guest's
 * last pages will see.
 */
static void delivered_learn(struct tern_session *s, uint64_t round, uint64_t now)
{
	typeof(s->sync_marks[0]) *cur = &s->sync_marks[round % 4], *prev;
	uint64_t bytes, ns, bps;

	if (cur->round != round)
		return;
	cur->ack_ns = now;
	/* RAM_SYNC -> RAM_SYNC_ACK is a round trip plus the landing of what was
	 * still in flight: the quickest one is the best round trip we see */
	if (now - cur->sent_ns < __atomic_load_n(&s->rtt_ns, __ATOMIC_RELAXED))
		__atomic_store_n(&s->rtt_ns, now - cur->sent_ns, __ATOMIC_RELAXED);
	prev = &s->sync_marks[(round - 1) % 4];
	if (round < 2 || prev->round != round - 1 || !prev->ack_ns || cur->first_ns > prev->ack_ns)
		return;
	bytes = cur->wire - prev->wire;
	ns = now - prev->ack_ns;
	if (bytes < DELIVERED_MIN_BYTES || !ns)
		return;
	bps = (uint64_t)((double)bytes * 1e9 / ns);
	s->delivered_bps = s->delivered_bps ? (s->delivered_bps + bps) / 2 : bps;
}

static void *rp_thread(void *arg)
{
	struct tern_session *s = arg;
	struct tern_error err = {0};
	uint16_t type;
	uint8_t *p;
	uint32_t len;
	int ret;

	ret = ctl_recv_stream_hdr(s->ctl, CTL_RP_MAGIC, "return path", &err);
	while (!ret) {
		ret = ctl_recv(s->ctl, "return path", &type, &p, &len, &err);
		if (ret)
			break;
		pthread_mutex_lock(&s->lock);
		switch (type) {
		case CTL_HELLO_ACK:
			s->got_ack = true;
			break;
		case CTL_LOADED:
			if (len != 8) {
				ret = tern_error_set(&err, -EPROTO,
						     "return path: LOADED of %u bytes, not 8", len);
				break;
			}
			s->peer_sections_ns = get_be64(p);
			s->got_loaded = true;
			s->loaded_ns = tern_now_ns();
			break;
		case CTL_RESUMED:
			if (!s->got_complete) {
				ret = tern_error_set(&err, -EPROTO,
						     "return path: RESUMED before COMPLETE");
				break;
			}
			/* after COMMIT: the guest runs there whatever this says */
			if (len == 8)
				s->peer_resume_ns = get_be64(p);
			else
				tern_log_msg(&s->log, 4, "return path: RESUMED of %u bytes ignored",
					     len);
			s->got_resumed = len == 8;
			break;
		case CTL_COMPLETE:
			memcpy(s->complete_payload, p, len);
			s->complete_len = len;
			s->got_complete = true;
			break;
		case CTL_RAM_SYNC_ACK: {
			uint64_t round = len == 8 ? get_be64(p) : 0;

			if (len != 8 || round != s->acked_round + 1) {
				ret = tern_error_set(&err, -EPROTO,
						     "return path: RAM_SYNC_ACK for round %" PRIu64
						     " after round %" PRIu64,
						     round, s->acked_round);
				break;
			}
			s->acked_round = round;
			delivered_learn(s, round, tern_now_ns());
			break;
		}
		case CTL_ERROR:
			ctl_decode_error(p, len, "destination", &s->peer_err);
			ret = s->peer_err.code;
			tern_error_set(&err, ret, "%s", s->peer_err.msg);
			break;
		default:
			ret = tern_error_set(
			    &err, -EPROTO, "return path: unexpected %s frame from the destination",
			    ctl_type_name(type));
		}
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		free(p);
	}
	pthread_mutex_lock(&s->lock);
	/* After COMPLETE the destination closing its end is the normal end. */
	if (s->got_complete && !s->peer_err.code)
		ret = 0;
	s->rp_ended = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (ret)
		session_fail(s, &err);
	return NULL;
}

/* Wait for *@flag (under ->lock) set by the return path. */
static int wait_reply(struct tern_session *s, bool *flag, const char *what, int timeout_ms,
		      struct tern_error *err)
{
	struct timespec deadline = tern_deadline_ms((uint64_t)timeout_ms);
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	while (!*flag && !s->err.code && !s->cancel && !ret)
		ret = pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
	if (*flag)
		ret = 0;
	else if (s->cancel)
		ret = -ECANCELED;
	else if (s->err.code)
		ret = tern_error_set(err, s->err.code, "%s", s->err.msg);
	else
		ret = tern_error_set(err, -ETIMEDOUT, "no %s from the destination in %d s", what,
				     timeout_ms / 1000);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * After COMMIT: wait a little for the destination's RESUMED, which says what
 * its resume callback cost (the last part of the downtime). The migration is
 * complete either way; without it, that part is missing from the figures.
 */
static void wait_resumed(struct tern_session *s)
{
	struct timespec deadline = tern_deadline_ms(RESUMED_WAIT_MS);
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	while (!s->got_resumed && !s->rp_ended && !ret)
		ret = pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
	if (!s->got_resumed)
		tern_log_msg(&s->log, 5,
			     "no RESUMED from the destination: its resume time is not counted");
	pthread_mutex_unlock(&s->lock);
}

/* ---- setup --------------------------------------------------------------- */

static void mf_failed(void *opaque)
{
	struct tern_session *s = opaque;

	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static int src_setup(struct tern_session *s, const char *addr, struct tern_error *err)
{
	struct tern_conn *conns[TERN_MAX_CHANNELS] = {0};
	struct tern_conn *ctl = NULL;
	struct mf_config cfg;
	struct mf_send *mf;
	struct buf hello;
	uint64_t t0;
	uint32_t i;
	int ret;

	ret = s->tp->connect(addr, CONNECT_TIMEOUT_MS, &ctl, err);
	if (ret)
		return ret;
	ret = session_set_ctl(s, ctl);
	if (ret)
		return ret;
	ret = conn_set_io_timeout(ctl, io_timeout_ms(s));
	if (ret)
		return tern_error_set(err, ret, "control channel to %s: setting io-timeout: %s",
				      ctl->peer, strerror(-ret));

	buf_init(&hello);
	hello_encode(s, &hello);
	t0 = tern_now_ns();
	ret = hello.oom ? -ENOMEM : ctl_send_stream_hdr(ctl, CTL_MAGIC);
	if (!ret)
		ret = ctl_send(ctl, CTL_HELLO, hello.data, hello.len);
	__atomic_fetch_add(&s->ctl_bytes, CTL_STREAM_HDR_SIZE + CTL_HDR_SIZE + hello.len,
			   __ATOMIC_RELAXED);
	buf_fini(&hello);
	if (ret)
		return tern_error_set(err, ret, "control channel to %s: sending HELLO: %s",
				      ctl->peer, strerror(-ret));

	ret = -pthread_create(&s->rp_thread, NULL, rp_thread, s);
	if (ret)
		return tern_error_set(err, ret, "starting the return-path thread: %s",
				      strerror(-ret));
	s->rp_started = true;
	ret = wait_reply(s, &s->got_ack, "HELLO_ACK",
			 (int)params_get(&s->params, PARAM_HANDSHAKE_TIMEOUT), err);
	if (ret)
		return ret;
	/* one control-channel round trip (and the destination's checks): what
	 * each request-and-answer of the switchover will cost at least, until a
	 * quicker RAM_SYNC -> RAM_SYNC_ACK is seen */
	__atomic_store_n(&s->rtt_ns, tern_now_ns() - t0, __ATOMIC_RELAXED);

	for (i = 0; i < s->nchannels; i++) {
		ret = s->tp->connect(addr, CONNECT_TIMEOUT_MS, &conns[i], err);
		if (!ret) {
			ret = conn_set_io_timeout(conns[i], io_timeout_ms(s));
			if (ret)
				tern_error_set(err, ret, "setting io-timeout: %s", strerror(-ret));
		}
		/* refused rather than silently copied: see caps_check_source() */
		if (!ret && caps_get(&s->params, CAP_ZERO_COPY_SEND)) {
			ret = conn_set_zerocopy(conns[i]);
			if (ret)
				tern_error_set(
				    err, ret,
				    "zero-copy-send: SO_ZEROCOPY refused (%s): this "
				    "kernel cannot send zero-copy; turn the capability off",
				    strerror(-ret));
		}
		if (ret) {
			tern_error_prefix(err, "worker channel %u", i);
			conn_close(conns[i]); /* NULL when the connect failed */
			while (i--)
				conn_close(conns[i]);
			return ret;
		}
	}
	if (mf_method_codecs(s->method) >> TERN_CODEC_XBZRLE & 1) {
		uint64_t size = params_get(&s->params, PARAM_XBZRLE_CACHE_SIZE);

		ret = size < s->page_size ? tern_error_set(err, -ERANGE,
							   "xbzrle-cache-size: %" PRIu64
							   " bytes is less than one %u-byte page",
							   size, s->page_size)
					  : xbzrle_cache_new(size, s->page_size, &s->xbzrle, err);
		if (ret) {
			for (i = 0; i < s->nchannels; i++)
				conn_close(conns[i]);
			return ret;
		}
		s->xbzrle_param = size;
		__atomic_store_n(&s->xbzrle_size, xbzrle_cache_size(s->xbzrle), __ATOMIC_RELAXED);
	}
	/* before the workers start: they bind the blocks as this fills them in */
	ret = ram_prepare_source(s, err);
	if (ret) {
		for (i = 0; i < s->nchannels; i++)
			conn_close(conns[i]);
		return ret;
	}
	cfg = session_mf_config(s, mf_failed);
	cfg.io_timeout_ms = io_timeout_ms(s);
	ret = mf_send_start(&cfg, conns, &mf, err);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	s->mf_send = mf;
	if (s->cancel)
		mf_send_shutdown(mf);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- rounds ------------------------------------------------------------- */

struct round_ctx {
	struct ratelimit rl;
	uint64_t sent_pages; /* queued to the workers, normal or zero */
	/* why the round being sent may end early (ROUND_CUT) */
	uint64_t limit_ms;    /* downtime-limit when the round began */
	uint64_t deadline_ns; /* migration-timeout, 0: none */
	bool cut;	      /* the last round ended early */
	bool final;	      /* switchover: the guest is paused */
	uint64_t link_bps;    /* the paths' last delivery rate (0: unknown) */
	bool fixed_warned;    /* said that the fixed costs exceed the limit */
	struct dirty_rate dr; /* the guest's dirty rate, window by window */
};

/* From pace() and queue_batch(): stop queueing this round's pages. */
#define ROUND_CUT 1

/* The migration-timeout deadline (0: none), read again each time: live. */
static uint64_t timeout_deadline(struct tern_session *s)
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
	if (params_get(&s->params, PARAM_DOWNTIME_LIMIT) != rc->limit_ms)
		return true;
	dl = timeout_deadline(s);
	return dl && now >= dl;
}

static uint64_t wire_total(struct tern_session *s)
{
	struct mf_chan_stats t;

	mf_send_stats(s->mf_send, &t, NULL);
	return t.wire_bytes;
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
		uint64_t now = tern_now_ns(), wire = wire_total(s);
		uint64_t sleep_ns =
		    ratelimit_account(&rc->rl, now, wire, rc->sent_pages * s->page_size, max);
		struct timespec ts;
		int ret;

		__atomic_store_n(&s->bw_bps, rc->rl.bw_bps, __ATOMIC_RELAXED);
		__atomic_store_n(&s->ram_bps, rc->rl.ram_bps, __ATOMIC_RELAXED);
		if (round_must_end(s, rc, now))
			return ROUND_CUT;
		if (!sleep_ns)
			return 0;
		if (session_stopping(s) || mf_send_error(s->mf_send, NULL))
			return -ECANCELED;
		/* a slow max-bandwidth may hold the sender here for long */
		ret = ctl_keepalive_maybe(s, err);
		if (ret)
			return ret;
		ts.tv_sec = (time_t)(sleep_ns / 1000000000ull);
		ts.tv_nsec = (long)(sleep_ns % 1000000000ull);
		nanosleep(&ts, NULL);
	}
}

static uint64_t synced_bytes(struct tern_session *s);
static int timeout_reached(struct tern_session *s, uint64_t pending, struct tern_error *err);

/*
 * Between two timed waits (SRC_WAIT_TICK_MS) of the migration thread, on the
 * workers or the destination: migration-timeout with policy cancel ends the
 * migration here, whatever the peer does (-ECANCELED). 0: wait on -- after
 * switchover, or with policy force, whose switchover needs what is being
 * waited for anyway (and is bounded by io-timeout).
 */
static int wait_tick(struct tern_session *s, struct round_ctx *rc, struct tern_error *err)
{
	uint64_t dl;
	int ret;

	ret = ctl_keepalive_maybe(s, err);
	if (ret)
		return ret;
	if (!rc || rc->final ||
	    params_get(&s->params, PARAM_MIGRATION_TIMEOUT_POLICY) != TIMEOUT_POLICY_CANCEL + 1)
		return 0;
	dl = timeout_deadline(s);
	if (!dl || tern_now_ns() < dl)
		return 0;
	return timeout_reached(s, synced_bytes(s), err);
}

/*
 * Wait until every worker has sent its hello and bound guest RAM to its
 * channel: on rdma with rdma-pin-all, both sides register all of it now, and
 * that cost belongs to the setup time, not to the first round.
 */
static int workers_ready(struct tern_session *s, struct tern_error *err)
{
	int ret;

	while ((ret = mf_send_flush(s->mf_send, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		ret = wait_tick(s, NULL, err);
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
	rc->sent_pages += b->npages;
	while ((ret = mf_send_batch_queue(s->mf_send, b, SRC_WAIT_TICK_MS)) == -EAGAIN) {
		ret = wait_tick(s, rc, err);
		if (ret) {
			mf_send_batch_put(s->mf_send, b);
			return ret;
		}
	}
	if (ret)
		return ret;
	__atomic_store_n(&s->queued_pages, rc->sent_pages, __ATOMIC_RELAXED);
	ret = ctl_keepalive_maybe(s, err);
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
		ret = wait_tick(s, rc, err);
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
static int wait_acked(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		      struct tern_error *err);

static int send_round(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool last,
		      struct tern_error *err)
{
	unsigned int shift = (unsigned int)params_get(&s->params, PARAM_CLEAR_BITMAP_SHIFT);
	struct mf_batch *batch = NULL;
	uint64_t clear_ns = 0, t0, first_ns;
	uint8_t sync[8];
	uint32_t bi;
	int ret;

	ret = xbzrle_round_barrier(s, rc, err);
	/* Placed pages land as they are sent: round n-1 must have landed (and
	 * its zero pages been cleared) on every channel first. */
	if (!ret && round > 1 && mf_send_places_pages(s->mf_send))
		ret = wait_acked(s, rc, round - 1, err);
	pthread_mutex_lock(&s->lock);
	s->sync_marks[round % 4].round = 0; /* not this round's until its RAM_SYNC */
	pthread_mutex_unlock(&s->lock);
	first_ns = 0;
	__atomic_store_n(&s->round_queued0, rc->sent_pages, __ATOMIC_RELAXED);
	for (bi = 0; bi < s->nblocks && !ret; bi++) {
		struct tern_ram_block *b = s->blocks[bi];
		uint64_t w, nwords = BITMAP_WORDS(b->npages);

		for (w = 0; w < nwords && !ret; w++) {
			uint64_t v = b->send[w], chunk = (w * 64) >> shift;

			if (!v)
				continue;
			b->send[w] = 0;
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
					if (!first_ns)
						first_ns = tern_now_ns();
					batch = mf_send_batch_get(s->mf_send);
					if (!batch) {
						ret = mf_send_error(s->mf_send, err);
						ret = ret ? ret : -ECANCELED;
						break;
					}
					batch->block = bi;
					batch->round = round;
					batch->paused = last;
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
				b->send[w] |= v;
		}
		if (!ret && batch)
			ret = queue_batch(s, rc, &batch, err);
	}
	if (batch)
		mf_send_batch_put(s->mf_send, batch);
	rc->cut = ret == ROUND_CUT;
	if (rc->cut) {
		ret = 0;
		tern_log_msg(&s->log, 6, "round %" PRIu64 " ended early: %s", round,
			     params_get(&s->params, PARAM_DOWNTIME_LIMIT) != rc->limit_ms
				 ? "downtime-limit changed"
				 : "migration-timeout reached");
	}
	__atomic_store_n(&s->dirty_clear_ns, clear_ns, __ATOMIC_RELAXED);
	while (!ret && (ret = mf_send_sync(s->mf_send, round, last, SRC_WAIT_TICK_MS)) == -EAGAIN)
		ret = wait_tick(s, rc, err);
	if (!ret) {
		uint64_t wire = wire_total(s);

		pthread_mutex_lock(&s->lock);
		s->sync_marks[round % 4].round = round;
		s->sync_marks[round % 4].wire = wire;
		s->sync_marks[round % 4].first_ns = first_ns ? first_ns : tern_now_ns();
		s->sync_marks[round % 4].ack_ns = 0;
		s->sync_marks[round % 4].sent_ns = tern_now_ns();
		pthread_mutex_unlock(&s->lock);
		put_be64(sync, round);
		ret = ctl_send(s->ctl, CTL_RAM_SYNC, sync, sizeof(sync));
		__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(sync), __ATOMIC_RELAXED);
		if (ret == -ETIMEDOUT)
			ctl_write_error(s, ret, "RAM_SYNC", err);
	}
	ratelimit_idle(&rc->rl, tern_now_ns(), wire_total(s), rc->sent_pages * s->page_size,
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

static uint64_t estimate_downtime_us(struct tern_session *s, struct round_ctx *rc,
				     uint64_t pending);

/* What the last sync left to send (ram_sync() counted it). */
static uint64_t synced_bytes(struct tern_session *s)
{
	return __atomic_load_n(&s->remaining_pages, __ATOMIC_RELAXED) * s->page_size;
}

/*
 * A dirty-log sync. @paused_ns: when the guest was paused (the switchover's
 * sync), 0 while it runs: the time since is not guest run time for the
 * dirty rate (dirty_rate.c).
 */
static int sync_dirty(struct tern_session *s, struct round_ctx *rc, uint64_t paused_ns,
		      struct tern_error *err)
{
	uint64_t t0 = tern_now_ns(), newly = 0, t1;
	int ret;

	ret = ram_sync(s, &newly, err);
	if (ret)
		return ret;
	t1 = tern_now_ns();
	if (dirty_rate_sync(&rc->dr, t0, newly, paused_ns && t0 > paused_ns ? t0 - paused_ns : 0)) {
		__atomic_store_n(&s->dirty_pages_rate, rc->dr.rate, __ATOMIC_RELAXED);
		__atomic_store_n(&s->dirty_rate_win_ns, rc->dr.rate_win_ns, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&s->dirty_sync_ns, t1 - t0, __ATOMIC_RELAXED);
	/* the management server's "round" event (a no-op without a server),
	 * with the estimate for what this sync left */
	if (!rc->final)
		estimate_downtime_us(s, rc, synced_bytes(s));
	observers_round(s, __atomic_add_fetch(&s->rounds, 1, __ATOMIC_RELAXED), newly);
	return 0;
}

/*
 * Wait until the return path set *@flag or, with @flag NULL, acknowledged
 * round @round. Bounded by io-timeout of no progress: the clock restarts
 * whenever the workers wrote more or a round was acknowledged, since an
 * answer comes only after the pages written before it have landed. Before
 * switchover (@rc not final) migration-timeout is looked at every
 * SRC_WAIT_TICK_MS. @what names the answer in the message of a stall.
 */
static int wait_peer(struct tern_session *s, struct round_ctx *rc, bool *flag, uint64_t round,
		     const char *what, struct tern_error *err)
{
	uint64_t io_ns = (uint64_t)io_timeout_ms(s) * 1000000, since = tern_now_ns();
	uint64_t wire = wire_total(s), acked, now, w;
	struct timespec ts;
	int ret;

	pthread_mutex_lock(&s->lock);
	acked = s->acked_round;
	for (;;) {
		if (flag ? *flag : s->acked_round >= round) {
			ret = 0;
			break;
		}
		if (s->cancel) {
			ret = -ECANCELED;
			break;
		}
		if (s->err.code) {
			ret = tern_error_set(err, s->err.code, "%s", s->err.msg);
			break;
		}
		now = tern_now_ns();
		w = wire_total(s);
		if (w != wire || s->acked_round != acked) {
			wire = w;
			acked = s->acked_round;
			since = now;
		}
		if (now - since >= io_ns) {
			ret = tern_error_set(err, -ETIMEDOUT,
					     "control channel: no %s from the destination in %d ms "
					     "(nothing sent or acknowledged meanwhile)",
					     what, io_timeout_ms(s));
			break;
		}
		pthread_mutex_unlock(&s->lock);
		ret = wait_tick(s, rc, err);
		pthread_mutex_lock(&s->lock);
		if (ret)
			break;
		ts = tern_deadline_ms(
		    MIN((uint64_t)SRC_WAIT_TICK_MS, DIV_ROUND_UP(since + io_ns - now, 1000000)));
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Wait until the destination acknowledged round @round (all its pages landed). */
static int wait_acked(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		      struct tern_error *err)
{
	char what[64];

	snprintf(what, sizeof(what), "RAM_SYNC acknowledgement for round %" PRIu64, round);
	return wait_peer(s, rc, NULL, round, what, err);
}

/*
 * The downtime the switchover would cost now, in parts (enum dt_est_part):
 *   sync    the final dirty-log sync: as long as the last one took;
 *   ram     @pending bytes of RAM at the rate the link empties it;
 *   device  the sections' bytes (their size hooks) at the link's rate, plus
 *           one control round trip (EOS -> LOADED);
 *   resume  one more round trip (COMPLETE -> COMMIT) and one for the
 *           destination's RESUMED. The pause and resume callbacks cannot be
 *           measured before they run without stopping the guest; they are
 *           measured at switchover (downtime_pause_us, downtime_resume_us).
 * The round trip is the HELLO handshake's, measured at setup.
 */
static uint64_t estimate_downtime_us(struct tern_session *s, struct round_ctx *rc, uint64_t pending)
{
	uint64_t bw = rc->rl.bw_bps, ram_bw = rc->rl.ram_bps, link = mf_send_link_rate(s->mf_send);
	uint64_t rtt_us = __atomic_load_n(&s->rtt_ns, __ATOMIC_RELAXED) / 1000;
	uint64_t part[DT_EST_PARTS], sum = 0, delivered;
	uint32_t i;

	/* The rate windows count bytes as they enter the sockets, which runs
	 * ahead of the link while socket buffers fill (10% and more on a
	 * 1 Gbit/s link): where the transport measured what its paths deliver,
	 * no more than that. The last such figure is kept for the moments the
	 * sender idles (after waiting for an acknowledgement). */
	if (link)
		rc->link_bps = link;
	pthread_mutex_lock(&s->lock);
	delivered = s->delivered_bps;
	pthread_mutex_unlock(&s->lock);
	if (delivered && (!rc->link_bps || delivered < rc->link_bps))
		rc->link_bps = delivered;
	if (rc->link_bps && bw > rc->link_bps) {
		ram_bw = (uint64_t)((double)ram_bw * rc->link_bps / bw);
		bw = rc->link_bps;
	}
	/* @pending is RAM bytes; with a codec the link moves more RAM than wire
	 * bytes, and RAM bytes per second is the rate that empties it. */
	if (s->method != TERN_CODEC_NONE)
		bw = MAX(bw, ram_bw);
	if (!bw && pending)
		return UINT64_MAX; /* no rate measured yet: no estimate either */
	part[EST_SYNC] = __atomic_load_n(&s->dirty_sync_ns, __ATOMIC_RELAXED) / 1000;
	part[EST_RAM] = bw ? (uint64_t)((double)pending * 1e6 / bw) : 0;
	part[EST_DEVICE] =
	    (bw ? (uint64_t)((double)sections_size_estimate(s) * 1e6 / bw) : 0) + rtt_us;
	part[EST_RESUME] = 2 * rtt_us;
	for (i = 0; i < DT_EST_PARTS; i++) {
		__atomic_store_n(&s->exp_us[i], part[i], __ATOMIC_RELAXED);
		sum += part[i];
	}
	__atomic_store_n(&s->expected_downtime_ms, sum / 1000, __ATOMIC_RELAXED);
	return sum;
}

/*
 * Whether the switchover fits downtime-limit now. Nothing pending always
 * fits: waiting cannot make the fixed costs smaller. Nor can it when the
 * fixed costs (sync, devices, handshake) alone exceed the limit: then no
 * round can ever fit, and the best that can be kept of the promise is that
 * the RAM part fits the limit on its own (said once in the log).
 */
static bool fits_downtime(struct tern_session *s, struct round_ctx *rc, uint64_t round,
			  uint64_t pending)
{
	uint64_t limit_us = params_get(&s->params, PARAM_DOWNTIME_LIMIT) * 1000;
	uint64_t est_us = estimate_downtime_us(s, rc, pending), ram_us, fixed_us;

	tern_log_msg(&s->log, 7,
		     "round %" PRIu64 ": %" PRIu64 " bytes pending, %" PRIu64
		     " B/s, expected downtime %" PRIu64 " us, limit %" PRIu64 " us",
		     round, pending, rc->rl.bw_bps, est_us, limit_us);
	if (round < 2)
		return false;
	if (!pending)
		return true;
	if (est_us == UINT64_MAX)
		return false;
	ram_us = __atomic_load_n(&s->exp_us[EST_RAM], __ATOMIC_RELAXED);
	fixed_us = est_us - MIN(ram_us, est_us);
	if (fixed_us >= limit_us) {
		if (!rc->fixed_warned)
			tern_log_msg(&s->log, 4,
				     "downtime-limit %" PRIu64 " ms is below what any switchover "
				     "costs here (%" PRIu64 " us without RAM): switching over once "
				     "the RAM part alone fits",
				     limit_us / 1000, fixed_us);
		rc->fixed_warned = true;
		return ram_us <= limit_us;
	}
	return est_us <= limit_us;
}

/* Tell the VMM the throttle (auto-converge); 0 lifts it. */
static void throttle_set(struct tern_session *s, uint32_t pct)
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
	throttle_set(s, (uint32_t)MIN(pct, max));
}

/*
 * migration-timeout passed before the switchover. Policy force: switch over
 * now (return 0). Policy cancel: end the migration `cancelled`, the guest
 * running on here, and tell the destination why.
 */
static int timeout_reached(struct tern_session *s, uint64_t pending, struct tern_error *err)
{
	uint64_t t = params_get(&s->params, PARAM_MIGRATION_TIMEOUT);
	struct tern_conn *ctl;

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
 * Rounds until what remains fits the downtime. On return, round *@ret_round
 * was synced but not sent: the switchover sends it with the guest paused.
 *
 * What remains is not only the dirty pages: the last round's pages may still
 * sit in queues and socket buffers (tens of MiB on a fast link). So when the
 * dirty pages fit, first wait -- guest running -- until the destination
 * acknowledges that round, then sync again and decide on what is truly left.
 */
static int precopy(struct tern_session *s, struct round_ctx *rc, uint64_t *ret_round,
		   struct tern_error *err)
{
	uint64_t round = 0, pending, prev_pending = 0, dl;
	int ret;

	for (;;) {
		round++;
		ret = sync_dirty(s, rc, 0, err);
		if (!ret) /* a large guest's sync is a long step */
			ret = ctl_keepalive_maybe(s, err);
		if (ret)
			return ret;
		pending = synced_bytes(s);
		if (fits_downtime(s, rc, round, pending)) {
			ret = wait_acked(s, rc, round - 1, err);
			if (!ret)
				ret = sync_dirty(s, rc, 0, err);
			if (ret)
				return ret;
			pending = synced_bytes(s);
			if (fits_downtime(s, rc, round, pending))
				break;
		}
		dl = timeout_deadline(s);
		if (dl && tern_now_ns() >= dl) {
			ret = timeout_reached(s, pending, err);
			if (ret)
				return ret;
			break;
		}
		/* a round cut short says nothing about convergence */
		if (round > 1 && !rc->cut)
			auto_converge(s, prev_pending, pending);
		prev_pending = pending;
		rc->limit_ms = params_get(&s->params, PARAM_DOWNTIME_LIMIT);
		ret = send_round(s, rc, round, false, err);
		if (ret)
			return ret;
		dirty_rate_bulk_sent(&rc->dr);
	}
	rc->limit_ms = 0; /* the switchover's round is never cut */
	rc->final = true;
	*ret_round = round;
	return 0;
}

/* ---- switchover ----------------------------------------------------------- */

/*
 * pause-before-switchover: with the guest paused, wait in pre-switchover
 * until tern_continue() (or a cancel, or a failure).
 */
static int pre_switchover(struct tern_session *s, struct tern_error *err)
{
	struct timespec ts;
	int ret = 0;

	if (!caps_get(&s->params, CAP_PAUSE_BEFORE_SWITCHOVER))
		return 0;
	tern_log_msg(&s->log, 6, "pre-switchover: the guest is paused; waiting for continue");
	pthread_mutex_lock(&s->lock);
	/* The operator may take minutes: keep the destination waiting too. */
	while (!s->continue_req && !s->cancel && !s->err.code) {
		pthread_mutex_unlock(&s->lock);
		ret = ctl_keepalive_maybe(s, err);
		pthread_mutex_lock(&s->lock);
		if (ret)
			break;
		ts = tern_deadline_ms(SRC_WAIT_TICK_MS);
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	if (!ret && s->cancel)
		ret = -ECANCELED;
	else if (!ret && s->err.code)
		ret = tern_error_set(err, s->err.code, "%s", s->err.msg);
	pthread_mutex_unlock(&s->lock);
	if (!ret && !session_transition(s, TERN_STATUS_PRE_SWITCHOVER, TERN_STATUS_DEVICE))
		ret = -ECANCELED;
	return ret;
}

/* The measured downtime's parts, from the source's clock and what the
 * destination reported of its own (sections loaded, resume). */
struct downtime_marks {
	uint64_t pause, paused, waited, synced, ram_queued, eos, loaded, commit, verify;
};

static void downtime_publish(struct tern_session *s, const struct downtime_marks *m)
{
	uint64_t part[DT_PARTS], peer_sec, peer_resume, fin, sum = 0;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	peer_sec = s->peer_sections_ns;
	peer_resume = s->got_resumed ? s->peer_resume_ns : 0;
	pthread_mutex_unlock(&s->lock);
	/* EOS -> LOADED: the rest of the RAM landing, then the sections loading */
	peer_sec = MIN(peer_sec, m->loaded - m->eos);
	fin = m->commit - m->loaded - MIN(m->verify, m->commit - m->loaded);
	part[DT_PAUSE] = m->paused - m->pause;
	part[DT_WAIT] = m->waited - m->paused;
	part[DT_SYNC] = m->synced - m->waited;
	part[DT_RAM] = (m->ram_queued - m->synced) + (m->loaded - m->eos - peer_sec);
	part[DT_DEVICE] = (m->eos - m->ram_queued) + peer_sec;
	part[DT_RESUME] = fin + peer_resume;
	for (i = 0; i < DT_PARTS; i++) {
		__atomic_store_n(&s->dt_us[i], part[i] / 1000, __ATOMIC_RELAXED);
		sum += part[i];
	}
	__atomic_store_n(&s->downtime_ms, sum / 1000000, __ATOMIC_RELAXED);
}

static int switchover(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool *paused,
		      struct tern_error *err)
{
	bool verify = caps_get(&s->params, CAP_VERIFY_RAM);
	bool pre = caps_get(&s->params, CAP_PAUSE_BEFORE_SWITCHOVER);
	struct ram_digest mine = {{0}};
	struct downtime_marks m = {0};
	uint64_t section_bytes = 0, complete_ns = 0, verify_ns = 0;
	uint8_t eos[16], commit[8] = {1};
	int ret;

	/* With pause-before-switchover: active -> pre-switchover once the guest
	 * is paused (the state promises it), -> device on continue. */
	if (!pre && !session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_DEVICE))
		return -ECANCELED;
	m.pause = tern_now_ns();
	ret = s->vmm.pause ? s->vmm.pause(s->vmm_opaque, err) : 0;
	if (ret) {
		tern_error_set(err, ret, "the VMM failed to pause the guest");
		return ret;
	}
	*paused = true;
	m.paused = tern_now_ns();
	if (pre && !session_transition(s, TERN_STATUS_ACTIVE, TERN_STATUS_PRE_SWITCHOVER))
		return -ECANCELED;
	ret = pre_switchover(s, err);
	if (ret)
		return ret;
	m.waited = tern_now_ns();

	/* What was dirtied since the last sync, then the pages still pending. */
	ret = sync_dirty(s, rc, m.paused, err);
	if (ret)
		return ret;
	m.synced = tern_now_ns();
	ret = send_round(s, rc, round, true, err);
	if (ret)
		return ret;
	m.ram_queued = tern_now_ns();
	ret = sections_save_all(s, s->ctl, &section_bytes, err);
	__atomic_fetch_add(&s->ctl_bytes, section_bytes, __ATOMIC_RELAXED);
	if (ret) {
		/* Let the last round reach the destination before our exit
		 * path shuts the channels: its load thread waits at the
		 * RAM_SYNC barrier for every channel's SYNC|LAST and only then
		 * reads the ERROR frame that tells it why. Cut short, it would
		 * blame a worker channel closed mid-stream instead. */
		mf_send_flush(s->mf_send, -1);
		return ret;
	}
	put_be64(eos, round);
	put_be64(eos + 8, rc->sent_pages);
	/* before the send: LOADED may be back before ctl_send() returns */
	m.eos = tern_now_ns();
	ret = ctl_send(s->ctl, CTL_EOS, eos, sizeof(eos));
	if (ret)
		return ctl_write_error(s, ret, "EOS", err);
	__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(eos), __ATOMIC_RELAXED);

	ret = wait_peer(s, rc, &s->got_loaded, 0, "LOADED", err);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	m.loaded = s->loaded_ns;
	pthread_mutex_unlock(&s->lock);
	if (verify) {
		uint64_t t0 = tern_now_ns();

		/* The destination digests its RAM meanwhile, and waits for
		 * COMMIT once done: what we take longer is silence to it. */
		ret = ctl_keepalive_maybe(s, err);
		if (!ret)
			ret = ram_digest_compute(s, &mine, digest_keepalive, err);
		if (!ret)
			ret = ctl_keepalive_maybe(s, err);
		if (ret)
			return ret;
		verify_ns = tern_now_ns() - t0;
	}
	/* with verify-ram the destination digests its RAM meanwhile, as we
	 * did ours just now: the clock starts only after ours */
	ret = wait_peer(s, rc, &s->got_complete, 0, "COMPLETE", err);
	if (ret)
		return ret;
	complete_ns = tern_now_ns();
	if (verify) {
		struct rd r;
		uint8_t has;
		uint64_t h0, h1;

		pthread_mutex_lock(&s->lock);
		rd_init(&r, s->complete_payload, s->complete_len);
		has = rd_u8(&r);
		h0 = rd_u64(&r);
		h1 = rd_u64(&r);
		pthread_mutex_unlock(&s->lock);
		if (r.bad || !has)
			return tern_error_set(err, -EPROTO,
					      "verify-ram: the destination sent no RAM digest");
		if (h0 != mine.h[0] || h1 != mine.h[1])
			return tern_error_set(err, -EIO,
					      "verify-ram: RAM digest mismatch (source %016" PRIx64
					      "%016" PRIx64 ", destination %016" PRIx64
					      "%016" PRIx64 ")",
					      mine.h[0], mine.h[1], h0, h1);
		pthread_mutex_lock(&s->lock);
		s->verified = true;
		pthread_mutex_unlock(&s->lock);
		verify_ns = MAX(verify_ns, complete_ns - s->loaded_ns);
	}

	/* Point of no return: once COMMIT is out, the destination runs the
	 * guest, so a cancel must not win from here on. */
	pthread_mutex_lock(&s->lock);
	ret = s->cancel ? -ECANCELED : 0;
	if (!ret)
		s->committing = true;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return ret;
	ret = ctl_send(s->ctl, CTL_COMMIT, commit, sizeof(commit));
	if (ret) {
		pthread_mutex_lock(&s->lock);
		s->committing = false;
		pthread_mutex_unlock(&s->lock);
		return ctl_write_error(s, ret, "COMMIT", err);
	}
	m.commit = tern_now_ns();
	m.verify = verify_ns;
	__atomic_store_n(&s->verify_ms, verify_ns / 1000000, __ATOMIC_RELAXED);
	wait_resumed(s);
	downtime_publish(s, &m);
	return 0;
}

/* ---- the thread ---------------------------------------------------------- */

static void rp_stop(struct tern_session *s, bool failed)
{
	struct timespec ts;
	int i;

	if (!s->rp_started)
		return;
	/* On failure give the destination a moment to say why (its ERROR
	 * frame explains a broken pipe here) before the control channel goes. */
	for (i = 0; failed && i < RP_GRACE_MS / 10; i++) {
		if (!pthread_tryjoin_np(s->rp_thread, NULL)) {
			s->rp_started = false;
			return;
		}
		ts = (struct timespec){.tv_nsec = 10000000};
		nanosleep(&ts, NULL);
	}
	conn_shutdown(s->ctl);
	pthread_join(s->rp_thread, NULL);
	s->rp_started = false;
}

void *source_thread(void *arg)
{
	struct tern_session *s = arg;
	struct tern_error err = {0};
	struct round_ctx rc = {0};
	const char *addr = strchr(s->uri, ':') + 1;
	struct mf_send *mf;
	struct tern_conn *ctl;
	uint64_t round = 0, hinted = 0;
	bool paused = false;
	int ret;

	ret = src_setup(s, addr, &err);
	if (!ret)
		ret = workers_ready(s, &err);
	if (ret)
		goto out;
	__atomic_store_n(&s->setup_end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	if (!session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_ACTIVE)) {
		ret = -ECANCELED;
		goto out;
	}
	ret = hint_send(s, &hinted, &err);
	if (ret)
		goto out;
	tern_log_msg(&s->log, 7, "RAM_HINT: %" PRIu64 " regions of 2 MiB hold data", hinted);
	ratelimit_init(&rc.rl, tern_now_ns(), wire_total(s), 0);
	dirty_rate_init(&rc.dr);
	ret = precopy(s, &rc, &round, &err);
	if (ret)
		goto out;
	ret = switchover(s, &rc, round, &paused, &err);

out:
	if (ret) {
		if (!err.code)
			tern_error_set(&err, ret, "%s", strerror(-ret));
		/* Tell the destination why, unless it told us. Record our
		 * reason first: once the destination reads it, it hangs up,
		 * and the return path must not get to blame that instead. */
		pthread_mutex_lock(&s->lock);
		tern_error_set(&s->err, err.code, "%s", err.msg);
		ctl = s->peer_err.code || s->cancel ? NULL : s->ctl;
		pthread_mutex_unlock(&s->lock);
		if (ctl && ret != -EPIPE)
			ctl_send_error(ctl, err.code, err.msg);
		session_fail(s, &err);
	}
	/* a cancel (ours, or migration-timeout's) wants no last word */
	rp_stop(s, ret != 0 && !session_cancelled(s));
	pthread_mutex_lock(&s->lock);
	mf = s->mf_send;
	s->mf_send = NULL;
	ctl = s->ctl;
	s->ctl = NULL;
	if (s->peer_err.code && !s->cancel) {
		/* The destination's reason explains our own failure best --
		 * unless we cancelled: then its complaint is the consequence. */
		tern_error_clear(&s->err);
		tern_error_set(&s->err, s->peer_err.code, "%s", s->peer_err.msg);
	}
	pthread_mutex_unlock(&s->lock);
	if (mf) {
		s->final_total = (struct mf_chan_stats){0};
		mf_send_stats(mf, &s->final_total, s->final_chan);
		mf_send_codec_stats(mf, &s->final_codec, s->final_reason, sizeof(s->final_reason));
		s->final_xport = (struct tern_xport_stats){0};
		mf_send_xport_stats(mf, &s->final_xport);
		mf_send_free(mf);
	}
	if (s->xbzrle)
		xbzrle_cache_free(s->xbzrle);
	s->xbzrle = NULL;
	conn_close(ctl);
	ram_sources_stop(s);
	throttle_set(s, 0);
	if (ret && paused && s->vmm.resume)
		s->vmm.resume(s->vmm_opaque);
	__atomic_store_n(&s->end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	stats_capture_final(s);
	if (!ret) {
		session_transition(s, TERN_STATUS_DEVICE, TERN_STATUS_COMPLETED);
	} else {
		enum tern_status st = session_status(s);
		bool cancelled = session_cancelled(s);

		/* A cancel may land while we were already on the way out,
		 * before tern_cancel() moved the state: it still ends cancelled. */
		while (!status_is_final(st)) {
			enum tern_status to = TERN_STATUS_FAILED;

			if (st == TERN_STATUS_CANCELLING)
				to = TERN_STATUS_CANCELLED;
			else if (cancelled)
				to = TERN_STATUS_CANCELLING;
			session_transition(s, st, to);
			st = session_status(s);
		}
	}
	pthread_mutex_lock(&s->lock);
	s->ended = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
