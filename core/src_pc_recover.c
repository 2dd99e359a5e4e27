/* SPDX-License-Identifier: MIT */
/*
 * Postcopy recovery on the source's migration thread (issue 13; the
 * protocol is in docs/PROTOCOL.md, "Postcopy recovery"; the destination's
 * side is dest_pc_recover.c).
 *
 * After POSTCOPY_RUN our guest never runs again, and the destination's
 * guest needs the pages only we hold. A broken connection then pauses
 * instead of failing: the channels go, the guest stays paused here with
 * all of its RAM, and we wait in postcopy-paused for tern_postcopy_resume()
 * with the address the destination listens on for us (its
 * tern_postcopy_recover()):
 *
 *   control: stream header, POSTCOPY_RESUME ────► this migration's uuid, our
 *                                                 round and channel count
 *            ◄──────── stream header, POSTCOPY_MISSING x blocks (the pages
 *                      it still lacks), POSTCOPY_RESUME_ACK (last round n,
 *                      their count) -- or ERROR: not ours, refused
 *   the send maps become exactly what it lacks; the worker channels
 *   reconnect (starting at round n+1), the return path runs again, and the
 *   rest goes as before: round n+1's pages, SYNC|LAST, RAM_SYNC, EOS.
 *
 * A resume that fails goes back to postcopy-paused with the reason logged;
 * the operator resumes again. Nothing a pause does touches the guest: no
 * resume, no new sync (it is paused: its RAM does not change).
 *
 * Giving up: postcopy-recover-timeout after the pause began, the session
 * freed, or nothing to recover: the destination sent ERROR (it gave up,
 * or its engine failed).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"
#include "source_priv.h"

#define CONNECT_TIMEOUT_MS 10000
#define PAUSE_TICK_MS 1000

bool src_pc_pausable(struct tern_session *s)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	ok = __atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE) && !s->peer_err.code &&
	     !s->pc_abandon && !s->cancel;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* The return path, the workers, the control channel: gone, figures kept. */
static void drop_channels(struct tern_session *s)
{
	struct tern_conn *ctl;
	struct mf_send *mf;

	pthread_mutex_lock(&s->lock);
	if (s->mf_send)
		mf_send_shutdown(s->mf_send); /* frees a request waiting on it */
	pthread_mutex_unlock(&s->lock);
	src_rp_stop(s, false);
	pthread_mutex_lock(&s->lock);
	mf = s->mf_send;
	s->mf_send = NULL;
	ctl = s->ctl;
	s->ctl = NULL;
	pthread_mutex_unlock(&s->lock);
	if (mf) {
		stats_keep_send(s, mf);
		mf_send_free(mf);
	}
	conn_close(ctl);
}

/* Into postcopy-paused from @from, for @why: one attempt's state goes. */
static void pause_now(struct tern_session *s, enum tern_status from, const struct tern_error *why)
{
	drop_channels(s);
	pthread_mutex_lock(&s->lock);
	tern_error_clear(&s->err);
	s->got_ack = s->got_loaded = s->got_complete = s->rp_ended = false;
	s->rp_hdr_read = false;
	s->complete_len = 0;
	s->pc_resume_uri[0] = '\0';
	session_pc_pause_begin_locked(s);
	pthread_mutex_unlock(&s->lock);
	__atomic_store_n(&s->pc_closing, false, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->pc_serving, 0, __ATOMIC_SEQ_CST);
	s->ka_ns = 0;
	session_transition(s, from, TERN_STATUS_POSTCOPY_PAUSED);
	tern_log_msg(&s->log, 4,
		     "postcopy paused: %s; the guest runs on the destination and waits for "
		     "pages only we hold: resume to its recover address (ternctl resume URI)",
		     why->msg);
}

/* Wait for tern_postcopy_resume(): its URI in @uri, or why we give up. */
static int wait_resume(struct tern_session *s, const char *why, char *uri, size_t len,
		       struct tern_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint64_t limit = params_get(&s->params, PARAM_POSTCOPY_RECOVER_TIMEOUT);
		struct timespec ts;

		if (s->pc_abandon) {
			ret = tern_error_set(err, -ECANCELED,
					     "the session was freed while paused (%s)", why);
			break;
		}
		if (s->pc_resume_uri[0]) {
			snprintf(uri, len, "%s", s->pc_resume_uri);
			break;
		}
		if (limit && tern_now_ns() >= s->pc_pause_ns + limit * 1000000) {
			ret = tern_error_set(err, -ETIMEDOUT,
					     "no resume within postcopy-recover-timeout (%" PRIu64
					     " ms) since the connection broke (%s)",
					     limit, why);
			break;
		}
		ts = tern_deadline_ms(PAUSE_TICK_MS);
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void send_maps_clear(struct tern_session *s)
{
	uint32_t i;

	for (i = 0; i < s->nblocks; i++)
		memset(s->blocks[i]->send, 0,
		       BITMAP_WORDS(s->blocks[i]->npages) * sizeof(uint64_t));
}

/*
 * The destination's answer to POSTCOPY_RESUME: its missing pages into the
 * send maps, then RESUME_ACK. The round to go on in, in *@round.
 */
static int read_missing(struct tern_session *s, struct tern_conn *ctl, uint64_t *round,
			struct tern_error *err)
{
	uint64_t *maps[MAX_BLOCKS], last, pages, have = 0;
	uint16_t type;
	uint32_t len, i;
	uint8_t *p;
	int ret;

	send_maps_clear(s);
	for (i = 0; i < s->nblocks; i++)
		maps[i] = s->blocks[i]->send;
	ret = ctl_recv_stream_hdr(ctl, CTL_RP_MAGIC, "return path", err);
	while (!ret) {
		ret = ctl_recv(ctl, "return path", &type, &p, &len, err);
		if (ret)
			break;
		if (type == CTL_POSTCOPY_MISSING) {
			ret = pc_runs_take(s, p, len, CTL_POSTCOPY_MISSING, maps, err);
			free(p);
			continue;
		}
		if (type == CTL_ERROR) {
			ctl_decode_error(p, len, "the destination refused the resume", err);
			ret = err->code ? err->code : -EPROTO;
		} else if (type != CTL_POSTCOPY_RESUME_ACK || len != 16) {
			ret = tern_error_set(err, -EPROTO,
					     "resume: %s of %u bytes where POSTCOPY_MISSING or "
					     "POSTCOPY_RESUME_ACK belongs",
					     ctl_type_name(type), len);
		}
		if (ret) {
			free(p);
			break;
		}
		last = get_be64(p);
		pages = get_be64(p + 8);
		free(p);
		for (i = 0; i < s->nblocks; i++)
			have += bitmap_count(s->blocks[i]->send, s->blocks[i]->npages);
		if (pages != have)
			return tern_error_set(err, -EPROTO,
					      "POSTCOPY_RESUME_ACK: %" PRIu64
					      " pages missing, POSTCOPY_MISSING named %" PRIu64,
					      pages, have);
		if (last != *round && last + 1 != *round)
			return tern_error_set(err, -EPROTO,
					      "POSTCOPY_RESUME_ACK: the destination acknowledged "
					      "round %" PRIu64 ", we are in round %" PRIu64,
					      last, *round);
		pthread_mutex_lock(&s->lock);
		s->acked_round = last;
		pthread_mutex_unlock(&s->lock);
		__atomic_store_n(&s->remaining_pages, have, __ATOMIC_RELAXED);
		*round = last + 1;
		tern_log_msg(&s->log, 6,
			     "postcopy: resuming in round %" PRIu64
			     ": the destination lacks %" PRIu64 " pages",
			     *round, have);
		return 0;
	}
	return ret;
}

/* One resume to @uri: 0 with the channels up and the return path running. */
static int resume_once(struct tern_session *s, const char *uri, uint64_t *round,
		       struct tern_error *err)
{
	const struct tern_transport_ops *tp;
	struct tern_conn *ctl = NULL;
	const char *addr;
	uint8_t hello[28];
	int ret;

	ret = transport_for_uri(uri, &tp, &addr, err);
	if (!ret)
		ret = tp->connect(addr, CONNECT_TIMEOUT_MS, s->cancel_fd, &ctl, err);
	if (ret)
		return ret;
	/* the answer is bounded by handshake-timeout; later reads (the return
	 * path) by the migration thread's own waits, as before */
	ret = conn_set_io_timeout(ctl, src_io_timeout_ms(s));
	if (!ret) {
		ret = conn_set_recv_timeout(ctl,
					    (int)params_get(&s->params, PARAM_HANDSHAKE_TIMEOUT));
		if (ret == -EOPNOTSUPP)
			ret = 0;
	}
	if (ret)
		tern_error_set(err, ret, "control channel to %s: setting its timeouts: %s",
			       ctl->peer, strerror(-ret));
	memcpy(hello, s->uuid, 16);
	put_be64(hello + 16, *round);
	put_be32(hello + 24, s->nchannels);
	if (!ret) {
		ret = ctl_send_stream_hdr(ctl, CTL_MAGIC);
		if (!ret)
			ret = ctl_send(ctl, CTL_POSTCOPY_RESUME, hello, sizeof(hello));
		if (ret)
			tern_error_set(err, ret,
				       "control channel to %s: sending POSTCOPY_RESUME: %s",
				       ctl->peer, strerror(-ret));
	}
	if (!ret)
		ret = read_missing(s, ctl, round, err);
	if (!ret && conn_set_recv_timeout(ctl, 0) == -EOPNOTSUPP)
		ret = 0;
	if (ret) {
		conn_close(ctl);
		return ret;
	}
	ret = session_set_ctl(s, ctl);
	if (ret) {
		tern_error_set(err, ret, "resume: cancelled");
		return ret; /* published: drop_channels() closes it */
	}
	__atomic_fetch_add(&s->ctl_bytes, CTL_STREAM_HDR_SIZE + CTL_HDR_SIZE + sizeof(hello),
			   __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->lock);
	s->mf_first_round = *round;
	pthread_mutex_unlock(&s->lock);
	ret = src_start_workers(s, tp, addr, err);
	if (!ret)
		ret = src_workers_ready(s, err);
	if (ret)
		return ret;
	/* now that the urgent channel is up: page requests may come */
	s->rp_hdr_read = true;
	ret = -pthread_create(&s->rp_thread, NULL, src_rp_thread, s);
	if (ret)
		return tern_error_set(err, ret, "starting the return-path thread: %s",
				      strerror(-ret));
	s->rp_started = true;
	return 0;
}

int src_pc_recover(struct tern_session *s, uint64_t *round, struct tern_error *err)
{
	struct tern_error why = *err, attempt;
	enum tern_status from = session_status(s);
	char uri[sizeof(s->pc_resume_uri)];
	int ret;

	/* a wait that stopped names no reason: the thread that saw the
	 * connection break recorded it */
	pthread_mutex_lock(&s->lock);
	if (!why.code)
		why = s->err;
	pthread_mutex_unlock(&s->lock);
	if (!why.code)
		tern_error_set(&why, -EPIPE, "the connection to the destination broke");
	tern_error_clear(err);
	for (;;) {
		pause_now(s, from, &why);
		ret = wait_resume(s, why.msg, uri, sizeof(uri), err);
		if (ret)
			return ret;
		if (!session_transition(s, TERN_STATUS_POSTCOPY_PAUSED,
					TERN_STATUS_POSTCOPY_RECOVER))
			return tern_error_set(err, -ECANCELED,
					      "postcopy resume: the migration is %s",
					      tern_status_name(session_status(s)));
		tern_log_msg(&s->log, 6, "postcopy: resuming to %s", uri);
		attempt = (struct tern_error){0};
		ret = resume_once(s, uri, round, &attempt);
		if (!ret)
			break;
		if (!attempt.code)
			tern_error_set(&attempt, ret, "%s", strerror(-ret));
		tern_error_prefix(&attempt, "resume to %s", uri);
		tern_log_msg(&s->log, 4, "postcopy: %s", attempt.msg);
		why = attempt;
		from = TERN_STATUS_POSTCOPY_RECOVER;
	}
	pthread_mutex_lock(&s->lock);
	session_pc_pause_end_locked(s);
	s->pc_resume_uri[0] = '\0';
	pthread_mutex_unlock(&s->lock);
	session_transition(s, TERN_STATUS_POSTCOPY_RECOVER, TERN_STATUS_POSTCOPY_ACTIVE);
	tern_log_msg(&s->log, 6, "postcopy resumed in round %" PRIu64, *round);
	return 0;
}
