/* SPDX-License-Identifier: MIT */
/*
 * The session: the public entry points that create, start, watch, cancel and
 * free a migration. Everything hangs off struct tern_session; there is no
 * global state. The session's threads are the migration thread (source.c)
 * or the load thread (dest.c); tern_session_free() cancels whatever still
 * runs and joins them before it frees anything.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core_priv.h"
#include "tcp/tcp.h"

TERN_EXPORT int tern_session_new(const struct tern_vmm_ops *ops, void *opaque,
				 struct tern_session **ret_session, struct tern_error *err)
{
	struct tern_session *s;
	long page = sysconf(_SC_PAGESIZE);

	s = calloc(1, sizeof(*s));
	if (!s)
		return tern_error_set(err, -ENOMEM, "out of memory");
	if (ops)
		s->vmm = *ops;
	s->vmm_opaque = opaque;
	s->page_size = page > 0 ? (uint32_t)page : 4096;
	s->status = TERN_STATUS_NONE;
	s->method = TERN_CODEC_NONE;
	s->zlib_level = 1;
	s->zstd_level = 1;
	params_init(&s->params);
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->ctl_wlock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->obs_lock, NULL);
	s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cpu_acct_init(&s->cpu);
	*ret_session = s;
	return 0;
}

TERN_EXPORT void tern_set_log_fn(struct tern_session *s, tern_log_fn fn, void *opaque, int level)
{
	s->log.fn = fn;
	s->log.opaque = opaque;
	s->log.level = level;
}

/*
 * Whether a source session may start again: its last migration failed or
 * was cancelled, and its thread has run its exit path (so the guest runs,
 * resumed if it had been paused). After a completion the guest belongs to
 * the destination; a destination's RAM holds a partial load.
 */
static int session_rearmable(struct tern_session *s, bool source, struct tern_error *err)
{
	enum tern_status st;
	bool ended;

	pthread_mutex_lock(&s->lock);
	ended = s->ended;
	pthread_mutex_unlock(&s->lock);
	st = session_status(s);
	if (!source || !s->is_source)
		return tern_error_set(err, -EBUSY,
				      "this session has run %s already (only a failed or "
				      "cancelled outgoing migration may start again)",
				      s->is_source ? "an outgoing migration"
						   : "an incoming migration");
	if (st == TERN_STATUS_COMPLETED)
		return tern_error_set(err, -EBUSY,
				      "the migration completed: the guest runs on the destination");
	if (__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE))
		return tern_error_set(err, -EBUSY,
				      "the migration failed in postcopy: the guest ran on the "
				      "destination, this copy of it is stale");
	if (!ended || !status_is_final(st))
		return tern_error_set(err, -EBUSY, "a migration is running (%s)",
				      tern_status_name(st));
	return 0;
}

/*
 * Make a failed or cancelled source session like a new one, as QEMU lets
 * `migrate` run again after failed or cancelled: join the ended thread,
 * drop the send maps (ram_prepare_source() makes them anew, with this
 * attempt's clear-bitmap-shift), and zero everything from ->err to
 * ->obs_lock -- the attempt's flags, errors, threads and figures, all zero
 * in a fresh session too. What the VMM set up (RAM blocks, sections,
 * dirty-log providers, parameters) and the management server stay.
 *
 * The status goes back to none under ->lock with ->ended, so tern_cancel()
 * sees either the old final status (and answers -EALREADY) or a session
 * about to start, which it cancels as it would a first start. A stats
 * reader that loads a figure without the lock while it is zeroed sees the
 * old value or zero: one query's worth of a stale number, tolerated.
 */
static void session_rearm(struct tern_session *s)
{
	uint32_t i;

	if (s->thread_started)
		pthread_join(s->thread, NULL); /* ended: its exit path is done */
	for (i = 0; i < s->nblocks; i++) {
		struct tern_ram_block *b = s->blocks[i];

		bitmap_free(b->send);
		bitmap_free(b->clear_chunks);
		b->send = b->clear_chunks = NULL;
	}
	pthread_mutex_lock(&s->lock);
	memset(&s->err, 0,
	       offsetof(struct tern_session, obs_lock) - offsetof(struct tern_session, err));
	__atomic_store_n(&s->status, TERN_STATUS_NONE, __ATOMIC_RELEASE);
	s->started = false;
	pthread_mutex_unlock(&s->lock);
}

static int session_start(struct tern_session *s, bool source, const char *uri,
			 struct tern_error *err)
{
	const char *addr;
	int ret;

	if (s->started) {
		ret = session_rearmable(s, source, err);
		if (ret)
			return ret;
	}
	if (!uri || strlen(uri) >= sizeof(s->uri))
		return tern_error_set(err, -EINVAL, "missing or overlong URI");
	if (!s->nblocks)
		return tern_error_set(err, -EINVAL, "no RAM block registered");
	ret = transport_for_uri(uri, &s->tp, &addr, err);
	if (ret)
		return ret;
	/* only now: a refused request leaves the last attempt's figures */
	if (s->started)
		session_rearm(s);
	snprintf(s->uri, sizeof(s->uri), "%s", uri);
	s->is_source = source;
	return 0;
}

TERN_EXPORT int tern_migrate(struct tern_session *s, const char *uri, struct tern_error *err)
{
	const struct tern_transport_ops *tp;
	const char *addr;
	int ret;

	/* before session_start(): a refused request leaves the last figures */
	if (!transport_for_uri(uri, &tp, &addr, NULL)) {
		ret = caps_check_source(&s->params, tp->scheme,
					(uint32_t)params_get(&s->params, PARAM_MULTIFD_COMPRESSION),
					err);
		if (ret)
			return ret;
	}
	ret = session_start(s, true, uri, err);
	if (ret)
		return ret;
	/* a cancel of an earlier migration of this session is not this one's */
	if (s->cancel_fd >= 0 && read(s->cancel_fd, &(uint64_t){0}, sizeof(uint64_t)) < 0) {
		/* EAGAIN: nothing to drain */
	}
	ret = tern_uuid_generate(s->uuid);
	if (ret)
		return tern_error_set(err, ret, "generating the session UUID: %s", strerror(-ret));
	/* stats_fill() reads these under the lock */
	pthread_mutex_lock(&s->lock);
	s->nchannels = (uint32_t)params_get(&s->params, PARAM_MULTIFD_CHANNELS);
	s->nworkers = s->nchannels + (caps_get(&s->params, CAP_POSTCOPY_RAM) ? 1 : 0);
	s->method = (uint32_t)params_get(&s->params, PARAM_MULTIFD_COMPRESSION);
	s->zlib_level = (int)params_get(&s->params, PARAM_MULTIFD_ZLIB_LEVEL);
	s->zstd_level = (int)params_get(&s->params, PARAM_MULTIFD_ZSTD_LEVEL);
	s->start_ns = tern_now_ns();
	/* under the lock: tern_wait() on another thread reads it */
	s->started = true;
	pthread_mutex_unlock(&s->lock);
	cpu_acct_open(&s->cpu);
	session_transition(s, TERN_STATUS_NONE, TERN_STATUS_SETUP);
	ret = -pthread_create(&s->thread, NULL, source_thread, s);
	if (ret) {
		tern_error_set(&s->err, ret, "starting the migration thread: %s", strerror(-ret));
		session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_FAILED);
		s->ended = true;
		return tern_error_set(err, ret, "starting the migration thread: %s",
				      strerror(-ret));
	}
	s->thread_started = true;
	return 0;
}

TERN_EXPORT int tern_incoming(struct tern_session *s, const char *uri, struct tern_error *err)
{
	struct tern_listener *l;
	const char *addr;
	int ret;

	ret = session_start(s, false, uri, err);
	if (ret)
		return ret;
	addr = strchr(s->uri, ':') + 1;
	ret = s->tp->listen(addr, &l, err);
	if (ret)
		return ret;
	l->ops->uri(l, s->uri, sizeof(s->uri));
	ret = ram_prepare_dest(s, err);
	if (ret) {
		l->ops->close(l);
		return ret;
	}
	s->listener = l;
	pthread_mutex_lock(&s->lock);
	s->started = true; /* under the lock: tern_wait() reads it */
	pthread_mutex_unlock(&s->lock);
	cpu_acct_open(&s->cpu);
	session_transition(s, TERN_STATUS_NONE, TERN_STATUS_SETUP);
	ret = -pthread_create(&s->thread, NULL, dest_thread, s);
	if (ret) {
		s->listener = NULL;
		l->ops->close(l);
		tern_error_set(&s->err, ret, "starting the load thread: %s", strerror(-ret));
		session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_FAILED);
		s->ended = true;
		return tern_error_set(err, ret, "starting the load thread: %s", strerror(-ret));
	}
	s->thread_started = true;
	return 0;
}

TERN_EXPORT int tern_incoming_uri(struct tern_session *s, char *buf, size_t len)
{
	if (!s->started)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s", s->uri) >= len)
		return -ENOSPC;
	return 0;
}

TERN_EXPORT int tern_cancel(struct tern_session *s)
{
	struct tern_error err = {0};
	enum tern_status st;

	pthread_mutex_lock(&s->lock);
	if (!s->started || s->ended || s->committing || s->got_commit ||
	    status_is_final(session_status(s))) {
		pthread_mutex_unlock(&s->lock);
		return -EALREADY;
	}
	if (__atomic_load_n(&s->postcopy_run, __ATOMIC_ACQUIRE)) {
		/* the guest runs on the destination: cancelling would lose it */
		pthread_mutex_unlock(&s->lock);
		tern_log_msg(&s->log, 4,
			     "cancel refused: in postcopy the guest runs on the destination, "
			     "and pages it needs are only on the source");
		return -EBUSY;
	}
	/* The reason is recorded with the flag, under one lock: a thread that
	 * sees the flag and gives up must find this reason, not its own. */
	s->cancel = true;
	tern_error_set(&s->err, -ECANCELED, "migration cancelled on the %s",
		       s->is_source ? "source" : "destination");
	err = s->err;
	pthread_mutex_unlock(&s->lock);
	if (s->cancel_fd >= 0 && write(s->cancel_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
		/* EAGAIN: it is readable already */
	}

	/* The source goes through cancelling; the destination simply fails. */
	if (s->is_source) {
		st = session_status(s);
		while (!status_is_final(st) && st != TERN_STATUS_CANCELLING &&
		       !session_transition(s, st, TERN_STATUS_CANCELLING))
			st = session_status(s);
	}
	session_fail(s, &err);
	if (s->is_source) {
		/* The source's exit path keeps the control channel for the
		 * return path's last word; a cancel needs no word. */
		pthread_mutex_lock(&s->lock);
		conn_shutdown(s->ctl);
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

TERN_EXPORT int tern_continue(struct tern_session *s, struct tern_error *err)
{
	enum tern_status st;
	int ret = 0;

	if (!caps_get(&s->params, CAP_PAUSE_BEFORE_SWITCHOVER))
		return tern_error_set(err, -EINVAL, "continue: pause-before-switchover is off");
	pthread_mutex_lock(&s->lock);
	st = session_status(s);
	if (!s->is_source || st != TERN_STATUS_PRE_SWITCHOVER) {
		ret = tern_error_set(err, -EAGAIN,
				     "continue: the migration is %s, not pre-switchover",
				     tern_status_name(st));
	} else {
		s->continue_req = true;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

TERN_EXPORT int tern_postcopy_start(struct tern_session *s, struct tern_error *err)
{
	enum tern_status st = session_status(s);
	int ret = 0;

	if (!caps_get(&s->params, CAP_POSTCOPY_RAM))
		return tern_error_set(
		    err, -EINVAL,
		    "postcopy: the postcopy-ram capability is off (set it on both "
		    "sides before the migration starts)");
	pthread_mutex_lock(&s->lock);
	if (!s->started || !s->is_source)
		ret = tern_error_set(err, -EINVAL, "postcopy: no outgoing migration is running");
	else if (st != TERN_STATUS_SETUP && st != TERN_STATUS_ACTIVE)
		ret = tern_error_set(err, -EINVAL, "postcopy: too late, the migration is %s",
				     tern_status_name(st));
	else if (s->postcopy_req)
		ret = -EALREADY;
	else
		__atomic_store_n(&s->postcopy_req, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (!ret)
		tern_log_msg(&s->log, 6, "postcopy requested");
	return ret;
}

TERN_EXPORT int tern_postcopy_recover(struct tern_session *s, const char *uri,
				      struct tern_error *err)
{
	const struct tern_transport_ops *tp;
	struct tern_listener *l;
	const char *addr;
	char bound[sizeof(s->uri)];
	int ret;

	ret = transport_for_uri(uri, &tp, &addr, err);
	if (ret)
		return tern_error_prefix(err, "recover");
	if (!strcmp(tp->scheme, "rdma"))
		return tern_error_set(err, -EINVAL, "recover: postcopy does not run over rdma");
	pthread_mutex_lock(&s->lock);
	if (!s->started || s->is_source || session_status(s) != TERN_STATUS_POSTCOPY_PAUSED)
		ret = tern_error_set(err, -EINVAL,
				     "recover: no incoming migration is paused in postcopy (%s)",
				     tern_status_name(session_status(s)));
	else if (s->pc_recover_listening)
		ret = -EALREADY;
	pthread_mutex_unlock(&s->lock);
	if (ret)
		return ret;
	ret = tp->listen(addr, &l, err);
	if (ret)
		return tern_error_prefix(err, "recover");
	l->ops->uri(l, bound, sizeof(bound));
	pthread_mutex_lock(&s->lock);
	if (session_status(s) != TERN_STATUS_POSTCOPY_PAUSED || s->pc_recover_listening) {
		ret = s->pc_recover_listening
			  ? -EALREADY
			  : tern_error_set(err, -EINVAL, "recover: the migration is %s now",
					   tern_status_name(session_status(s)));
	} else {
		snprintf(s->uri, sizeof(s->uri), "%s", bound);
		s->listener = l;
		s->pc_recover_listening = true;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	if (ret) {
		l->ops->close(l);
		return ret;
	}
	tern_log_msg(&s->log, 6, "postcopy: waiting for the source to resume on %s", bound);
	return 0;
}

TERN_EXPORT int tern_postcopy_resume(struct tern_session *s, const char *uri,
				     struct tern_error *err)
{
	const struct tern_transport_ops *tp;
	const char *addr;
	int ret;

	ret = transport_for_uri(uri, &tp, &addr, err);
	if (ret)
		return tern_error_prefix(err, "resume");
	if (!strcmp(tp->scheme, "rdma"))
		return tern_error_set(err, -EINVAL, "resume: postcopy does not run over rdma");
	if (strlen(uri) >= sizeof(s->pc_resume_uri))
		return tern_error_set(err, -EINVAL, "resume: URI longer than %zu bytes",
				      sizeof(s->pc_resume_uri) - 1);
	pthread_mutex_lock(&s->lock);
	if (!s->started || !s->is_source || session_status(s) != TERN_STATUS_POSTCOPY_PAUSED)
		ret = tern_error_set(err, -EINVAL,
				     "resume: no outgoing migration is paused in postcopy (%s)",
				     tern_status_name(session_status(s)));
	else if (s->pc_resume_uri[0])
		ret = -EALREADY;
	else {
		snprintf(s->pc_resume_uri, sizeof(s->pc_resume_uri), "%s", uri);
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

TERN_EXPORT enum tern_status tern_wait(struct tern_session *s, int timeout_ms)
{
	struct timespec deadline = tern_deadline_ms(timeout_ms >= 0 ? (uint64_t)timeout_ms : 0);
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	while (s->started && !s->ended && ret != ETIMEDOUT) {
		if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else
			ret = pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
	}
	pthread_mutex_unlock(&s->lock);
	return session_status(s);
}

TERN_EXPORT int tern_stats_get(struct tern_session *s, struct tern_stats *ret_stats)
{
	stats_fill(s, ret_stats);
	return 0;
}

TERN_EXPORT void tern_session_free(struct tern_session *s)
{
	uint32_t i;

	if (!s)
		return;
	/* First: the subscribers go (the management server joins its thread),
	 * so no request may start, cancel or query what is torn down. */
	observers_closing(s);
	if (s->thread_started) {
		struct tern_error gone = {-ECANCELED, "the session was freed"};

		/* a postcopy pause gives up, and an active one will not pause */
		pthread_mutex_lock(&s->lock);
		s->pc_abandon = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		if (tern_cancel(s) == -EBUSY && session_status(s) != TERN_STATUS_POSTCOPY_ACTIVE)
			session_fail(s, &gone); /* paused or recovering: wake it */
		pthread_join(s->thread, NULL);
	}
	if (s->listener)
		s->listener->ops->close(s->listener);
	dest_pc_free(s);
	for (i = 0; i < s->nsections; i++)
		free(s->sections[i]);
	ram_release(s);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->ctl_wlock);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->obs_lock);
	if (s->cancel_fd >= 0)
		close(s->cancel_fd);
	cpu_acct_fini(&s->cpu);
	free(s);
}
