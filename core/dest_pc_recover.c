/* SPDX-License-Identifier: MIT */
/*
 * Postcopy recovery on the destination's load thread (issue 13; the
 * protocol is in docs/PROTOCOL.md, "Postcopy recovery").
 *
 * Once POSTCOPY_RUN started the guest here, a broken connection -- the
 * control channel, a worker, the return path, a stall past io-timeout --
 * does not fail the migration: the guest runs, and its missing pages are
 * on a source that is most likely still there. So the load thread pauses:
 *
 *   postcopy-active -> postcopy-paused   the channels are closed; the fault
 *       thread keeps running, answers faults on pages that are here, and
 *       notes the missing ones it is asked for (their vCPUs wait);
 *   tern_postcopy_recover(URI)           listens on URI;
 *   postcopy-paused -> postcopy-recover  connections are admitted by the
 *       lobby: only POSTCOPY_RESUME naming this migration (its uuid, its
 *       channel count, a round that follows ours) is taken; a new
 *       migration's HELLO, another session's resume, junk are refused
 *       with the reason and the wait goes on;
 *   POSTCOPY_MISSING x blocks, POSTCOPY_RESUME_ACK   what is still to come,
 *       and after which round the source goes on;
 *   the worker channels join (handshake-timeout), placing through the
 *       engine from their first packet;
 *   postcopy-recover -> postcopy-active  the pages the vCPUs wait on are
 *       asked for again, and the load reads the control stream on.
 * A recovery attempt that fails (the source went away again, a worker
 * never joined) goes back to postcopy-paused, listening no more; the
 * operator recovers again.
 *
 * Giving up: postcopy-recover-timeout after the pause began, or the
 * session freed; and at once when there is nothing to recover -- the
 * source said ERROR (it gave up itself), or our userfaultfd engine failed.
 * Then the migration fails saying what the guest lost (dest_pc_given_up()).
 */
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"

#define PAUSE_TICK_MS 1000

bool dest_pc_pausable(struct tern_session *s)
{
	bool ok;

	pthread_mutex_lock(&s->lock);
	/* error_sent: the source's own ERROR (dest.c's source_told()), or
	 * ours for a fatal failure */
	ok = s->postcopy_run && s->pc && !s->pc_fatal && !s->pc_abandon && !s->error_sent;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

void dest_pc_given_up(struct tern_session *s, struct tern_error *err)
{
	uint64_t left = s->pc ? pc_dest_missing(s->pc) : 0;

	pthread_mutex_lock(&s->lock);
	/* the engine's own failure says more than the channels it shut */
	if (s->pc_fatal && s->err.code)
		*err = s->err;
	tern_error_clear(&s->err); /* session_fail() records this one */
	s->pc_fatal = true;	   /* for good: a source still there is told */
	pthread_mutex_unlock(&s->lock);
	tern_error_prefix(err,
			  "postcopy: the guest runs here and cannot go on: %" PRIu64
			  " of its pages are only on the source",
			  left);
}

/* Close the channels, the recovery's listener too; keep their figures. */
static void drop_channels(struct tern_session *s)
{
	struct tern_listener *l;
	struct tern_conn *ctl;
	struct mf_recv *r;

	pthread_mutex_lock(&s->ctl_wlock);
	pthread_mutex_lock(&s->lock);
	r = s->mf_recv;
	s->mf_recv = NULL;
	ctl = s->ctl;
	s->ctl = NULL;
	l = s->listener;
	s->listener = NULL;
	s->pc_recover_listening = false;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->ctl_wlock);
	if (r) {
		mf_recv_shutdown(r);
		stats_keep_recv(s, r);
		mf_recv_free(r); /* joins the workers: none reports any more */
	}
	conn_close(ctl);
	if (l)
		l->ops->close(l);
}

/* Into postcopy-paused from @from, for @why; the channels go. */
static void pause_now(struct tern_session *s, enum tern_status from, const struct tern_error *why)
{
	drop_channels(s);
	pthread_mutex_lock(&s->lock);
	tern_error_clear(&s->err); /* not failed: paused */
	s->error_sent = false;
	session_pc_pause_begin_locked(s);
	pthread_mutex_unlock(&s->lock);
	session_transition(s, from, TERN_STATUS_POSTCOPY_PAUSED);
	tern_log_msg(&s->log, 4,
		     "postcopy paused: %s; the guest runs, %" PRIu64
		     " of its pages are still on the source (vCPUs that touch one wait): "
		     "recover here (ternctl recover URI) and resume the source to it",
		     why->msg, pc_dest_missing(s->pc));
}

/* The pause's deadline in ms (tern_now_ms()), 0: none; under ->lock. The
 * parameter is live: the operator may give more time while paused. */
static uint64_t give_up_ms_locked(struct tern_session *s)
{
	uint64_t limit = params_get(&s->params, PARAM_POSTCOPY_RECOVER_TIMEOUT);

	return limit ? s->pc_pause_ns / 1000000 + limit : 0;
}

static uint64_t give_up_ms(struct tern_session *s)
{
	uint64_t t;

	pthread_mutex_lock(&s->lock);
	t = give_up_ms_locked(s);
	pthread_mutex_unlock(&s->lock);
	return t;
}

/* Nothing left to wait for: the session freed, or our engine failed. */
static int hopeless_locked(struct tern_session *s, const char *why, struct tern_error *err)
{
	if (s->pc_abandon)
		return tern_error_set(err, -ECANCELED, "the session was freed while paused (%s)",
				      why);
	if (s->pc_fatal)
		return tern_error_set(err, s->err.code ? s->err.code : -EIO, "%s",
				      s->err.code ? s->err.msg : "the userfaultfd engine failed");
	return 0;
}

static int lost(struct tern_session *s, const char *why, struct tern_error *err)
{
	return tern_error_set(err, -ETIMEDOUT,
			      "no recovery within postcopy-recover-timeout (%" PRIu64
			      " ms): the source is lost (%s)",
			      params_get(&s->params, PARAM_POSTCOPY_RECOVER_TIMEOUT), why);
}

/* Wait for tern_postcopy_recover(): 0, or why we give up. */
static int wait_listening(struct tern_session *s, const char *why, struct tern_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		uint64_t deadline = give_up_ms_locked(s);
		struct timespec ts;

		ret = hopeless_locked(s, why, err);
		if (ret || s->pc_recover_listening)
			break;
		if (deadline && tern_now_ms() >= deadline) {
			ret = lost(s, why, err);
			break;
		}
		ts = tern_deadline_ms(PAUSE_TICK_MS);
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* POSTCOPY_RESUME: uuid[16] | round u64 | nchannels u32 -- this migration,
 * its channel count, and the round the source is in (ours or the next). */
static int resume_check(struct tern_session *s, const uint8_t *p, uint32_t len, uint64_t last_round,
			struct tern_error *err)
{
	uint64_t round;
	uint32_t nch;

	if (len != 28)
		return tern_error_set(err, -EPROTO, "POSTCOPY_RESUME: %u bytes, not 28", len);
	round = get_be64(p + 16);
	nch = get_be32(p + 24);
	if (memcmp(p, s->uuid, 16))
		return tern_error_set(err, -EPROTO,
				      "POSTCOPY_RESUME: another migration's session (a stale "
				      "source, or the wrong one): this destination recovers only "
				      "the migration it runs the guest of");
	if (nch != s->nchannels)
		return tern_error_set(err, -EPROTO,
				      "POSTCOPY_RESUME: %u worker channels, the migration has %u",
				      nch, s->nchannels);
	if (round != last_round + 1 && round != last_round)
		return tern_error_set(err, -EPROTO,
				      "POSTCOPY_RESUME: the source is in round %" PRIu64
				      ", this destination acknowledged round %" PRIu64,
				      round, last_round);
	return 0;
}

/*
 * The source's control channel: the first POSTCOPY_RESUME for this
 * migration. Everything else is refused, with the reason when it speaks
 * our protocol, and the wait goes on (to the deadline).
 */
static int admit_source(struct tern_session *s, struct lobby *lb, uint64_t last_round,
			struct tern_conn **ret_ctl, bool *ret_lost, struct tern_error *err)
{
	for (;;) {
		struct tern_error why = {0};
		struct lobby_entry e;
		int ret = lobby_next(lb, give_up_ms(s), &e, err);

		if (ret == -ETIMEDOUT) {
			*ret_lost = true;
			return lost(s, "no source resumed", err);
		}
		if (ret)
			return tern_error_prefix(err, "waiting for the source to resume");
		if (e.kind != LOBBY_CONTROL) {
			lobby_refuse(lb, &e, "a worker channel before the source resumed");
			continue;
		}
		if (e.type != CTL_POSTCOPY_RESUME) {
			lobby_refuse_told(
			    lb, &e, -EBUSY,
			    "HELLO: this destination is paused in postcopy, its guest "
			    "running; it waits for its own source to resume, not for a "
			    "new migration");
			continue;
		}
		if (resume_check(s, e.payload, e.len, last_round, &why)) {
			lobby_refuse_told(lb, &e, why.code, why.msg);
			continue;
		}
		free(e.payload);
		*ret_ctl = e.conn;
		return 0;
	}
}

/*
 * Tell the source what is missing, and publish the control channel for the
 * page requests -- in that order: the fault thread's requests wait on
 * ->ctl_wlock, held here until RESUME_ACK is out.
 */
static int send_missing(struct tern_session *s, struct tern_conn *ctl, uint64_t last_round,
			struct tern_error *err)
{
	uint64_t *maps[MAX_BLOCKS], pages = 0, bytes = 0;
	uint8_t ack[16];
	uint32_t i;
	int ret;

	for (i = 0; i < s->nblocks; i++)
		maps[i] = (uint64_t *)pc_dest_missing_map(s->pc, i);
	pthread_mutex_lock(&s->ctl_wlock);
	ret = ctl_send_stream_hdr(ctl, CTL_RP_MAGIC);
	if (ret)
		tern_error_set(err, ret, "control channel from %s: %s", ctl->peer, strerror(-ret));
	if (!ret)
		ret = pc_runs_send(s, ctl, CTL_POSTCOPY_MISSING, maps, &pages, &bytes, err);
	if (!ret) {
		put_be64(ack, last_round);
		put_be64(ack + 8, pages);
		ret = ctl_send(ctl, CTL_POSTCOPY_RESUME_ACK, ack, sizeof(ack));
		if (ret)
			tern_error_set(err, ret, "sending POSTCOPY_RESUME_ACK: %s", strerror(-ret));
	}
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		s->ctl = ctl;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&s->ctl_wlock);
	if (!ret)
		tern_log_msg(&s->log, 6,
			     "postcopy: the source resumes from %s; %" PRIu64 " pages to come",
			     ctl->peer, pages);
	return ret;
}

/* One recovery attempt, listening: 0 with the channels up, or why not
 * (*@ret_lost: the deadline passed). */
static int recover_once(struct tern_session *s, uint64_t last_round, bool *ret_lost,
			struct tern_error *err)
{
	int io = (int)params_get(&s->params, PARAM_IO_TIMEOUT);
	struct tern_conn *ctl = NULL;
	struct lobby *lb = NULL;
	int ret;

	ret = lobby_new(s, (int)params_get(&s->params, PARAM_HANDSHAKE_TIMEOUT), &lb, err);
	if (!ret)
		ret = admit_source(s, lb, last_round, &ctl, ret_lost, err);
	if (!ret) {
		ret = conn_set_io_timeout(ctl, io);
		if (!ret)
			ret = conn_set_recv_timeout(ctl, io);
		if (ret == -EOPNOTSUPP)
			ret = 0;
		if (ret)
			tern_error_set(err, ret, "control channel: setting its io-timeout: %s",
				       strerror(-ret));
		else
			ret = send_missing(s, ctl, last_round, err); /* 0: published */
		if (ret)
			conn_close(ctl);
	}
	if (!ret) {
		pthread_mutex_lock(&s->lock);
		s->mf_first_round = last_round + 1;
		pthread_mutex_unlock(&s->lock);
		ret = dest_join_channels(s, lb, err); /* closes the listener */
	}
	lobby_free(lb);
	return ret;
}

int dest_pc_recover(struct tern_session *s, uint64_t *last_round, struct tern_error *err)
{
	struct tern_error why = *err, attempt;
	enum tern_status from = session_status(s);
	uint64_t asked;
	bool gone;
	int ret;

	tern_error_clear(err);
	for (;;) {
		pause_now(s, from, &why);
		ret = wait_listening(s, why.msg, err);
		if (ret)
			return ret;
		if (!session_transition(s, TERN_STATUS_POSTCOPY_PAUSED,
					TERN_STATUS_POSTCOPY_RECOVER))
			return tern_error_set(err, -ECANCELED,
					      "postcopy recovery: the migration is %s",
					      tern_status_name(session_status(s)));
		attempt = (struct tern_error){0};
		gone = false;
		ret = recover_once(s, *last_round, &gone, &attempt);
		if (!ret)
			break;
		pthread_mutex_lock(&s->lock);
		ret = gone ? attempt.code : hopeless_locked(s, attempt.msg, err);
		pthread_mutex_unlock(&s->lock);
		if (ret) {
			if (gone)
				*err = attempt;
			drop_channels(s);
			return ret;
		}
		tern_log_msg(&s->log, 4, "postcopy: the recovery failed: %s", attempt.msg);
		why = attempt;
		from = TERN_STATUS_POSTCOPY_RECOVER;
	}
	pthread_mutex_lock(&s->lock);
	session_pc_pause_end_locked(s);
	pthread_mutex_unlock(&s->lock);
	session_transition(s, TERN_STATUS_POSTCOPY_RECOVER, TERN_STATUS_POSTCOPY_ACTIVE);
	asked = pc_dest_rerequest(s->pc);
	tern_log_msg(&s->log, 6,
		     "postcopy recovered: %" PRIu64 " pages still to come, %" PRIu64
		     " of them asked for again",
		     pc_dest_missing(s->pc), asked);
	return 0;
}
