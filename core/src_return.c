/* SPDX-License-Identifier: MIT */
/*
 * The source's control channel: what the migration thread says on it besides
 * rounds and sections (KEEPALIVE, a write error's message), the return-path
 * thread that reads the destination's answers, and the migration thread's
 * bounded waits for them (see source.c for the bounds).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core_priv.h"
#include "source_priv.h"

#define RESUMED_WAIT_MS 5000

/* @what could not be written on the control channel: a stall says so. */
int src_ctl_write_error(struct tern_session *s, int code, const char *what, struct tern_error *err)
{
	if (code == -ETIMEDOUT)
		return tern_error_set(err, code,
				      "control channel: could not write %s for %d ms (peer not "
				      "reading)",
				      what, src_io_timeout_ms(s));
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
int src_ctl_keepalive_maybe(struct tern_session *s, struct tern_error *err)
{
	uint64_t now = tern_now_ns(), bytes = __atomic_load_n(&s->ctl_bytes, __ATOMIC_RELAXED);
	int ret;

	if (bytes != s->ka_bytes || !s->ka_ns) {
		s->ka_bytes = bytes;
		s->ka_ns = now;
		return 0;
	}
	if (now - s->ka_ns < (uint64_t)src_io_timeout_ms(s) * 1000000 / 3)
		return 0;
	ret = ctl_send(s->ctl, CTL_KEEPALIVE, NULL, 0);
	if (ret)
		return src_ctl_write_error(s, ret, "KEEPALIVE", err);
	s->ka_bytes = __atomic_add_fetch(&s->ctl_bytes, CTL_HDR_SIZE, __ATOMIC_RELAXED);
	s->ka_ns = now;
	return 0;
}

/* Between the digest's chunks: a failed send shows in the wait that follows. */
void src_digest_keepalive(struct tern_session *s)
{
	struct tern_error ignored = {0};

	src_ctl_keepalive_maybe(s, &ignored);
}

/* ---- return path --------------------------------------------------------- */

void *src_rp_thread(void *arg)
{
	struct tern_session *s = arg;
	CPU_THREAD(cpu, &s->cpu, TERN_CPU_MIGRATION, "tern-rp");
	struct tern_error err = {0};
	uint16_t type;
	uint8_t *p;
	uint32_t len;
	int ret;

	/* a postcopy resume read the stream header itself (src_pc_recover.c) */
	ret = s->rp_hdr_read ? 0 : ctl_recv_stream_hdr(s->ctl, CTL_RP_MAGIC, "return path", &err);
	while (!ret) {
		ret = ctl_recv(s->ctl, "return path", &type, &p, &len, &err);
		if (ret)
			break;
		if (type == CTL_PAGE_REQ) {
			/* not under ->lock: it may wait for the urgent channel */
			src_pc_serve(s, p, len);
			free(p);
			continue;
		}
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
		case CTL_POSTCOPY_RUNNING:
			if (!__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE) || len != 8) {
				ret = tern_error_set(
				    &err, -EPROTO, "return path: POSTCOPY_RUNNING of %u bytes%s",
				    len,
				    __atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE)
					? ""
					: " before POSTCOPY_RUN");
				break;
			}
			s->peer_resume_ns = get_be64(p);
			s->pc_running_ns = tern_now_ns();
			s->got_pc_running = true;
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
			src_delivered_learn(s, round, tern_now_ns());
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
int src_wait_reply(struct tern_session *s, bool *flag, const char *what, int timeout_ms,
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
void src_wait_resumed(struct tern_session *s)
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

/*
 * Wait until the return path set *@flag or, with @flag NULL, acknowledged
 * round @round. Bounded by io-timeout of no progress: the clock restarts
 * whenever the workers wrote more or a round was acknowledged, since an
 * answer comes only after the pages written before it have landed. Before
 * switchover (@rc not final) migration-timeout is looked at every
 * SRC_WAIT_TICK_MS. @what names the answer in the message of a stall.
 */
int src_wait_peer(struct tern_session *s, struct round_ctx *rc, bool *flag, uint64_t round,
		  const char *what, struct tern_error *err)
{
	uint64_t io_ns = (uint64_t)src_io_timeout_ms(s) * 1000000, since = tern_now_ns();
	uint64_t wire = src_wire_total(s), acked, now, w;
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
		w = src_wire_total(s);
		if (w != wire || s->acked_round != acked) {
			wire = w;
			acked = s->acked_round;
			since = now;
		}
		if (now - since >= io_ns) {
			ret = tern_error_set(err, -ETIMEDOUT,
					     "control channel: no %s from the destination in %d ms "
					     "(nothing sent or acknowledged meanwhile)",
					     what, src_io_timeout_ms(s));
			break;
		}
		pthread_mutex_unlock(&s->lock);
		ret = src_wait_tick(s, rc, err);
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
int src_wait_acked(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		   struct tern_error *err)
{
	char what[64];

	snprintf(what, sizeof(what), "RAM_SYNC acknowledgement for round %" PRIu64, round);
	return src_wait_peer(s, rc, NULL, round, what, err);
}

/*
 * Between two timed waits (SRC_WAIT_TICK_MS) of the migration thread, on the
 * workers or the destination: migration-timeout with policy cancel ends the
 * migration here, whatever the peer does (-ECANCELED). 0: wait on -- after
 * switchover, or with policy force, whose switchover needs what is being
 * waited for anyway (and is bounded by io-timeout).
 */
int src_wait_tick(struct tern_session *s, struct round_ctx *rc, struct tern_error *err)
{
	uint64_t dl;
	int ret;

	ret = src_ctl_keepalive_maybe(s, err);
	if (ret)
		return ret;
	if (!rc || rc->final ||
	    params_get(&s->params, PARAM_MIGRATION_TIMEOUT_POLICY) != TIMEOUT_POLICY_CANCEL + 1)
		return 0;
	dl = src_timeout_deadline(s);
	if (!dl || tern_now_ns() < dl)
		return 0;
	return src_timeout_reached(s, src_synced_bytes(s), err);
}
