/* SPDX-License-Identifier: MIT */
/*
 * Session events for whoever subscribed (tern_observer_add()): the state
 * machine and the precopy loop report here, and know nothing of who
 * listens. The management server is one subscriber (mgmt.c, a file set the
 * rest of core/ never includes); a VMM may add its own.
 *
 * The list is small and fixed (TERN_MAX_OBSERVERS) and lives in the
 * session. A notifier holds ->obs_lock while it calls the hooks, so that
 * tern_observer_remove() returning means no hook of that subscription runs
 * any more, and a subscriber may free what its hooks use right after. With
 * nobody subscribed a notifier costs one atomic load. Lock order: ->lock,
 * then ->obs_lock, then whatever the hooks take (the management server's
 * queue lock). Hooks must not block, and must not call back into the
 * session (tern_observer_add/remove would deadlock on ->obs_lock).
 *
 * At tern_session_free() the list is emptied first and each subscriber's
 * closing hook runs, outside the lock, so that it may stop its own threads
 * (the management server joins its thread there) before anything else of
 * the session is torn down.
 */
#include "core_priv.h"

TERN_EXPORT int tern_observer_add(struct tern_session *s, const struct tern_observer_ops *ops,
				  void *opaque, struct tern_error *err)
{
	uint32_t i, n;
	int ret = 0;

	if (!s || !ops)
		return tern_error_set(err, -EINVAL, "observer: no session or no hooks");
	pthread_mutex_lock(&s->obs_lock);
	n = s->nobs;
	for (i = 0; i < n; i++)
		if (s->obs[i].ops == ops && s->obs[i].opaque == opaque)
			ret = tern_error_set(err, -EEXIST, "observer: subscribed already");
	if (!ret && n == TERN_MAX_OBSERVERS)
		ret = tern_error_set(err, -ENOSPC, "observer: %u subscribers already",
				     TERN_MAX_OBSERVERS);
	if (!ret) {
		s->obs[n].ops = ops;
		s->obs[n].opaque = opaque;
		__atomic_store_n(&s->nobs, n + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->obs_lock);
	return ret;
}

TERN_EXPORT int tern_observer_remove(struct tern_session *s, const struct tern_observer_ops *ops,
				     void *opaque)
{
	uint32_t i, n;
	int ret = -ENOENT;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->obs_lock);
	n = s->nobs;
	for (i = 0; i < n; i++) {
		if (s->obs[i].ops != ops || s->obs[i].opaque != opaque)
			continue;
		s->obs[i] = s->obs[n - 1];
		__atomic_store_n(&s->nobs, n - 1, __ATOMIC_RELEASE);
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&s->obs_lock);
	return ret;
}

TERN_EXPORT void *tern_observer_find(struct tern_session *s, const struct tern_observer_ops *ops)
{
	void *opaque = NULL;
	uint32_t i;

	if (!s)
		return NULL;
	pthread_mutex_lock(&s->obs_lock);
	for (i = 0; i < s->nobs && !opaque; i++)
		if (s->obs[i].ops == ops)
			opaque = s->obs[i].opaque;
	pthread_mutex_unlock(&s->obs_lock);
	return opaque;
}

void observers_state(struct tern_session *s, enum tern_status from, enum tern_status to)
{
	uint32_t i;

	if (!__atomic_load_n(&s->nobs, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&s->obs_lock);
	for (i = 0; i < s->nobs; i++)
		if (s->obs[i].ops->state)
			s->obs[i].ops->state(s->obs[i].opaque, from, to);
	pthread_mutex_unlock(&s->obs_lock);
}

void observers_round(struct tern_session *s, uint64_t round, uint64_t dirty_pages)
{
	struct tern_round_info info;
	uint32_t i;

	if (!__atomic_load_n(&s->nobs, __ATOMIC_ACQUIRE))
		return;
	info = (struct tern_round_info){
	    .round = round,
	    .dirty_pages = dirty_pages,
	    .dirty_pages_rate = __atomic_load_n(&s->dirty_pages_rate, __ATOMIC_RELAXED),
	    .dirty_sync_us = __atomic_load_n(&s->dirty_sync_ns, __ATOMIC_RELAXED) / 1000,
	    .ram_remaining = __atomic_load_n(&s->remaining_pages, __ATOMIC_RELAXED) * s->page_size,
	    .bandwidth_bps = __atomic_load_n(&s->bw_bps, __ATOMIC_RELAXED),
	    .expected_downtime_ms = __atomic_load_n(&s->expected_downtime_ms, __ATOMIC_RELAXED),
	    .cpu_throttle_percent = __atomic_load_n(&s->throttle_pct, __ATOMIC_RELAXED),
	};
	pthread_mutex_lock(&s->obs_lock);
	for (i = 0; i < s->nobs; i++)
		if (s->obs[i].ops->round)
			s->obs[i].ops->round(s->obs[i].opaque, &info);
	pthread_mutex_unlock(&s->obs_lock);
}

void observers_closing(struct tern_session *s)
{
	struct session_observer gone[TERN_MAX_OBSERVERS];
	uint32_t i, n;

	pthread_mutex_lock(&s->obs_lock);
	n = s->nobs;
	memcpy(gone, s->obs, n * sizeof(gone[0]));
	__atomic_store_n(&s->nobs, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->obs_lock);
	for (i = 0; i < n; i++)
		if (gone[i].ops->closing)
			gone[i].ops->closing(gone[i].opaque);
}
