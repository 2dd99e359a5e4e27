/* SPDX-License-Identifier: MIT */
/*
 * The state machine. Every transition is one compare-and-swap on the status
 * word, so a cancel from the VMM's thread and a failure on the migration
 * thread cannot both win: whichever swaps first decides, and the other sees
 * a status it did not expect.
 *
 *   source:      none -> setup -> active -> device -> completed
 *                any state before completed -> failed | cancelling -> cancelled
 *   destination: none -> setup -> active -> completed | failed
 *   postcopy:    active -> postcopy-active -> completed | failed, both sides;
 *                postcopy-active -> postcopy-paused (connection lost) ->
 *                postcopy-recover -> postcopy-active | postcopy-paused;
 *                postcopy-paused -> failed (gave up)
 */
#include "core_priv.h"

static const char *const status_names[TERN_STATUS_MAX] = {
    [TERN_STATUS_INVALID] = "invalid",
    [TERN_STATUS_NONE] = "none",
    [TERN_STATUS_SETUP] = "setup",
    [TERN_STATUS_ACTIVE] = "active",
    [TERN_STATUS_PRE_SWITCHOVER] = "pre-switchover",
    [TERN_STATUS_DEVICE] = "device",
    [TERN_STATUS_COMPLETED] = "completed",
    [TERN_STATUS_FAILED] = "failed",
    [TERN_STATUS_CANCELLING] = "cancelling",
    [TERN_STATUS_CANCELLED] = "cancelled",
    [TERN_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
    [TERN_STATUS_POSTCOPY_PAUSED] = "postcopy-paused",
    [TERN_STATUS_POSTCOPY_RECOVER] = "postcopy-recover",
};

TERN_EXPORT const char *tern_status_name(enum tern_status st)
{
	if ((int)st < 0 || st >= TERN_STATUS_MAX)
		return "invalid";
	return status_names[st];
}

bool status_is_final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

enum tern_status session_status(const struct tern_session *s)
{
	return __atomic_load_n(&s->status, __ATOMIC_ACQUIRE);
}

bool session_transition(struct tern_session *s, enum tern_status from, enum tern_status to)
{
	enum tern_status expect = from;

	if (!__atomic_compare_exchange_n(&s->status, &expect, to, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return false;
	tern_log_msg(&s->log, 6, "%s: %s -> %s", s->is_source ? "source" : "destination",
		     tern_status_name(from), tern_status_name(to));
	if (s->vmm.state_changed)
		s->vmm.state_changed(s->vmm_opaque, from, to);
	observers_state(s, from, to); /* one atomic load without subscribers */
	if (status_is_final(to)) {
		pthread_mutex_lock(&s->lock);
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	return true;
}

bool session_cancelled(struct tern_session *s)
{
	bool c;

	pthread_mutex_lock(&s->lock);
	c = s->cancel;
	pthread_mutex_unlock(&s->lock);
	return c;
}

bool session_stopping(struct tern_session *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->cancel || s->err.code;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

int session_set_ctl(struct tern_session *s, struct tern_conn *ctl)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	s->ctl = ctl;
	ret = s->cancel ? -ECANCELED : 0;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* verify-ram: a worker's packet, hashed while hot (digest_track_packet()) */
static void mf_digest(void *opaque, uint32_t block, const uint64_t *pages, uint32_t n)
{
	struct tern_session *s = opaque;

	digest_track_packet(s->digest, block, pages, n);
}

struct mf_config session_mf_config(struct tern_session *s, void (*on_error)(void *opaque))
{
	/* the source's own capability; the destination follows the peer's
	 * (HELLO is done before the workers are set up) */
	bool verify = s->is_source ? caps_get(&s->params, CAP_VERIFY_RAM)
				   : (s->peer_caps & CAP_BIT(CAP_VERIFY_RAM)) != 0;
	struct mf_config cfg = {
	    .page_size = s->page_size,
	    .nchannels = s->nworkers,
	    .urgent = s->nworkers > s->nchannels,
	    .method = s->method,
	    .zlib_level = s->zlib_level,
	    .zstd_level = s->zstd_level,
	    .xbzrle = s->xbzrle,
	    .blocks = s->mf_blocks,
	    .nblocks = s->nblocks,
	    .first_round = s->mf_first_round,
	    .bind =
		{
		    .pin_all = caps_get(&s->params, CAP_RDMA_PIN_ALL),
		    .pin_limit = params_get(&s->params, PARAM_RDMA_PIN_LIMIT) /
				 (s->nchannels ? s->nchannels : 1),
		},
	    .log = &s->log,
	    .cpu = &s->cpu,
	    .on_error = on_error,
	    .digest = verify ? mf_digest : NULL,
	    .opaque = s,
	};

	memcpy(cfg.uuid, s->uuid, 16);
	return cfg;
}

/*
 * Record the first error and make every thread of the session stop waiting:
 * the data plane is shut down (blocked reads and writes return) and waiters
 * on ->cond wake up; the thread that owns the migration then runs its exit
 * path. The destination also tells the source why, on the return path,
 * before it shuts the control channel. The source leaves its control channel
 * to its exit path, which first gives the return path a moment to deliver
 * the destination's own explanation.
 */
void session_fail(struct tern_session *s, const struct tern_error *err)
{
	struct tern_error mine = {0};
	bool tell;

	pthread_mutex_lock(&s->lock);
	if (err && err->code)
		tern_error_set(&s->err, err->code, "%s", err->msg);
	else
		tern_error_set(&s->err, -EIO, "migration failed");
	mine = s->err;
	if (s->mf_send)
		mf_send_shutdown(s->mf_send);
	if (s->mf_recv)
		mf_recv_shutdown(s->mf_recv);
	/* in postcopy a lost connection pauses both sides (dest_pc_recover.c):
	 * the source is told only what ends the migration for good */
	tell = !s->is_source && s->ctl && !s->error_sent && (!s->postcopy_run || s->pc_fatal);
	s->error_sent = s->error_sent || tell;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);

	if (s->is_source)
		return;
	if (tell) {
		pthread_mutex_lock(&s->ctl_wlock);
		if (s->ctl)
			ctl_send_error(s->ctl, mine.code, mine.msg);
		pthread_mutex_unlock(&s->ctl_wlock);
	}
	pthread_mutex_lock(&s->lock);
	conn_shutdown(s->ctl);
	conn_shutdown(s->pending);
	if (s->listener)
		s->listener->ops->shutdown(s->listener);
	pthread_mutex_unlock(&s->lock);
}

void session_pc_pause_begin_locked(struct tern_session *s)
{
	if (!s->pc_pause_ns) { /* a failed recovery goes on with the same pause */
		s->pc_pause_ns = tern_now_ns();
		s->pc_pauses++;
	}
}

void session_pc_pause_end_locked(struct tern_session *s)
{
	s->pc_paused_ns += tern_now_ns() - s->pc_pause_ns;
	s->pc_pause_ns = 0;
	s->pc_recoveries++;
}
