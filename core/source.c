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
 * / 3 (src_ctl_keepalive_maybe()).
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
#include "source_priv.h"
#include "tcp/tcp.h"

#define CONNECT_TIMEOUT_MS 10000
#define RP_GRACE_MS 1000

/* ---- setup --------------------------------------------------------------- */

static void mf_failed(void *opaque)
{
	struct tern_session *s = opaque;

	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/*
 * Connect the worker channels to @addr over @tp (each with io-timeout, and
 * zero-copy when asked) and start the data plane on them, at round
 * ->mf_first_round. On failure every connection is closed.
 */
int src_start_workers(struct tern_session *s, const struct tern_transport_ops *tp, const char *addr,
		      struct tern_error *err)
{
	struct tern_conn *conns[TERN_MAX_CHANNELS] = {0};
	struct mf_config cfg;
	struct mf_send *mf;
	uint32_t i;
	int ret;

	for (i = 0; i < s->nworkers; i++) {
		ret = tp->connect(addr, CONNECT_TIMEOUT_MS, s->cancel_fd, &conns[i], err);
		if (!ret) {
			ret = conn_set_io_timeout(conns[i], src_io_timeout_ms(s));
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
	cfg = session_mf_config(s, mf_failed);
	cfg.io_timeout_ms = src_io_timeout_ms(s);
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

static int src_setup(struct tern_session *s, const char *addr, struct tern_error *err)
{
	struct tern_conn *ctl = NULL;
	struct buf hello;
	uint64_t t0;
	int ret;

	ret = s->tp->connect(addr, CONNECT_TIMEOUT_MS, s->cancel_fd, &ctl, err);
	if (ret)
		return ret;
	ret = session_set_ctl(s, ctl);
	if (ret)
		return ret;
	ret = conn_set_io_timeout(ctl, src_io_timeout_ms(s));
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

	ret = -pthread_create(&s->rp_thread, NULL, src_rp_thread, s);
	if (ret)
		return tern_error_set(err, ret, "starting the return-path thread: %s",
				      strerror(-ret));
	s->rp_started = true;
	ret = src_wait_reply(s, &s->got_ack, "HELLO_ACK",
			     (int)params_get(&s->params, PARAM_HANDSHAKE_TIMEOUT), err);
	if (ret)
		return ret;
	/* one control-channel round trip (and the destination's checks): what
	 * each request-and-answer of the switchover will cost at least, until a
	 * quicker RAM_SYNC -> RAM_SYNC_ACK is seen */
	__atomic_store_n(&s->rtt_ns, tern_now_ns() - t0, __ATOMIC_RELAXED);

	if (mf_method_codecs(s->method) >> TERN_CODEC_XBZRLE & 1) {
		uint64_t size = params_get(&s->params, PARAM_XBZRLE_CACHE_SIZE);

		ret = size < s->page_size ? tern_error_set(err, -ERANGE,
							   "xbzrle-cache-size: %" PRIu64
							   " bytes is less than one %u-byte page",
							   size, s->page_size)
					  : xbzrle_cache_new(size, s->page_size, &s->xbzrle, err);
		if (ret)
			return ret;
		s->xbzrle_param = size;
		__atomic_store_n(&s->xbzrle_size, xbzrle_cache_size(s->xbzrle), __ATOMIC_RELAXED);
	}
	/* before the workers start: they bind the blocks as this fills them in */
	ret = ram_prepare_source(s, err);
	if (ret)
		return ret;
	return src_start_workers(s, s->tp, addr, err);
}

/* ---- the thread ---------------------------------------------------------- */

void src_rp_stop(struct tern_session *s, bool failed)
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

	s->cpu_main = cpu_thread_start(&s->cpu, TERN_CPU_MIGRATION, "tern-mig");
	ret = src_setup(s, addr, &err);
	if (!ret)
		ret = src_workers_ready(s, &err);
	/* verify-ram: hash RAM in the background from the first round on */
	if (!ret && caps_get(&s->params, CAP_VERIFY_RAM))
		ret = digest_track_new(s, true, &s->digest, &err);
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
	ratelimit_init(&rc.rl, tern_now_ns(), src_wire_total(s), 0);
	dirty_rate_init(&rc.dr);
	ret = src_precopy(s, &rc, &round, &err);
	if (ret)
		goto out;
	if (rc.postcopy)
		ret = src_postcopy(s, &rc, round, &paused, &err);
	else
		ret = src_switchover(s, &rc, round, &paused, &err);

out:
	if (ret) {
		if (!err.code)
			tern_error_set(&err, ret, "%s", strerror(-ret));
		if (__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE))
			tern_error_prefix(&err, "postcopy (the guest runs on the destination, "
						"and its missing pages are only here)");
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
	src_rp_stop(s, ret != 0 && !session_cancelled(s));
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
	digest_track_free(s->digest);
	s->digest = NULL;
	conn_close(ctl);
	ram_sources_stop(s);
	src_throttle_set(s, 0);
	/* in postcopy the guest may run on the destination: never here again */
	if (ret && paused && s->vmm.resume && !__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE))
		s->vmm.resume(s->vmm_opaque);
	__atomic_store_n(&s->end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	stats_capture_final(s);
	if (!ret) {
		session_transition(s,
				   rc.postcopy ? TERN_STATUS_POSTCOPY_ACTIVE : TERN_STATUS_DEVICE,
				   TERN_STATUS_COMPLETED);
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
