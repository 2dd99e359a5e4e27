/* SPDX-License-Identifier: MIT */
/*
 * The switchover: pause the guest (and wait in pre-switchover when asked),
 * the last sync and round, the device sections and EOS, LOADED, the RAM
 * digest with verify-ram, COMPLETE, then COMMIT -- the point of no return --
 * and the measured downtime, part by part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core_priv.h"
#include "source_priv.h"

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
		ret = src_ctl_keepalive_maybe(s, err);
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
 * destination reported of its own (sections loaded, resume). With
 * verify-ram, LOADED -> COMPLETE is the digests' part (@complete: 0 without). */
struct downtime_marks {
	uint64_t pause, paused, waited, synced, ram_queued, eos, loaded, complete, commit;
};

/*
 * A downtime over downtime-limit whose RAM part ran over its estimate: say
 * by how much, and which rate the estimate believed (src_switchover_rate()),
 * so that an avail-switchover-bandwidth above what the path gives is seen
 * for what it is. What the last round really got: the estimate's rate
 * scaled by expected over measured time.
 */
static void downtime_over_report(struct tern_session *s, uint64_t total_us, uint64_t ram_us)
{
	uint64_t limit_us = params_get(&s->params, PARAM_DOWNTIME_LIMIT) * 1000;
	uint64_t exp_ram_us = __atomic_load_n(&s->exp_us[EST_RAM], __ATOMIC_RELAXED);
	uint64_t rate = __atomic_load_n(&s->sw_rate_bps, __ATOMIC_RELAXED);
	enum sw_rate why = (enum sw_rate)__atomic_load_n(&s->sw_rate_src, __ATOMIC_RELAXED);

	/* blame the rate only when its error alone crossed the limit: a
	 * pre-switchover wait or a slow device section is reported elsewhere */
	if (total_us <= limit_us || ram_us <= exp_ram_us || !ram_us ||
	    total_us - (ram_us - exp_ram_us) > limit_us)
		return;
	tern_log_msg(&s->log, 4,
		     "downtime %" PRIu64 " ms exceeded downtime-limit %" PRIu64
		     " ms: the last round's RAM took %" PRIu64 " ms, estimated %" PRIu64
		     " ms at %" PRIu64 " B/s (%s%s); it moved at %" PRIu64 " B/s",
		     total_us / 1000, limit_us / 1000, ram_us / 1000, exp_ram_us / 1000, rate,
		     sw_rate_name(why),
		     why == SW_RATE_DECLARED  ? ": avail-switchover-bandwidth"
		     : why == SW_RATE_LEARNED ? ": the rounds' unthrottled tails"
					      : "",
		     (uint64_t)((double)rate * (double)exp_ram_us / (double)ram_us));
}

static void downtime_publish(struct tern_session *s, const struct downtime_marks *m)
{
	uint64_t part[DT_PARTS], peer_sec, peer_resume, verified, sum = 0;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	peer_sec = s->peer_sections_ns;
	peer_resume = s->got_resumed ? s->peer_resume_ns : 0;
	pthread_mutex_unlock(&s->lock);
	/* EOS -> LOADED: the rest of the RAM landing, then the sections loading */
	peer_sec = MIN(peer_sec, m->loaded - m->eos);
	verified = m->complete ? m->complete : m->loaded;
	part[DT_PAUSE] = m->paused - m->pause;
	part[DT_WAIT] = m->waited - m->paused;
	part[DT_SYNC] = m->synced - m->waited;
	part[DT_RAM] = (m->ram_queued - m->synced) + (m->loaded - m->eos - peer_sec);
	part[DT_DEVICE] = (m->eos - m->ram_queued) + peer_sec;
	part[DT_VERIFY] = verified - m->loaded;
	part[DT_RESUME] = (m->commit - verified) + peer_resume;
	for (i = 0; i < DT_PARTS; i++) {
		__atomic_store_n(&s->dt_us[i], part[i] / 1000, __ATOMIC_RELAXED);
		sum += part[i];
	}
	/* the whole pause: pause -> COMMIT, and the destination's resume */
	__atomic_store_n(&s->downtime_ms, sum / 1000000, __ATOMIC_RELAXED);
	__atomic_store_n(&s->verify_ms, part[DT_VERIFY] / 1000000, __ATOMIC_RELAXED);
	downtime_over_report(s, sum / 1000, part[DT_RAM] / 1000);
}

int src_switchover(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool *paused,
		   struct tern_error *err)
{
	bool verify = caps_get(&s->params, CAP_VERIFY_RAM);
	bool pre = caps_get(&s->params, CAP_PAUSE_BEFORE_SWITCHOVER);
	struct ram_digest mine = {{0}};
	struct downtime_marks m = {0};
	uint64_t section_bytes = 0;
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
	ret = src_sync_dirty(s, rc, m.paused, err);
	if (ret)
		return ret;
	/* verify-ram: nothing writes RAM any more; the background hashes what
	 * the last rounds changed while the pages go */
	digest_track_paused(s->digest);
	m.synced = tern_now_ns();
	ret = src_send_round(s, rc, round, true, err);
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
		return src_ctl_write_error(s, ret, "EOS", err);
	__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + sizeof(eos), __ATOMIC_RELAXED);

	ret = src_wait_peer(s, rc, &s->got_loaded, 0, "LOADED", err);
	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	m.loaded = s->loaded_ns;
	pthread_mutex_unlock(&s->lock);
	if (verify) {
		/* The destination digests its RAM meanwhile, and waits for
		 * COMMIT once done: what we take longer is silence to it. */
		ret = src_ctl_keepalive_maybe(s, err);
		if (!ret)
			ret = digest_track_final(s->digest, &mine, src_digest_keepalive, err);
		if (!ret)
			ret = src_ctl_keepalive_maybe(s, err);
		if (ret)
			return ret;
	}
	/* with verify-ram the destination digests its RAM meanwhile, as we
	 * did ours just now: the clock starts only after ours */
	ret = src_wait_peer(s, rc, &s->got_complete, 0, "COMPLETE", err);
	if (ret)
		return ret;
	if (verify) {
		struct rd r;
		uint8_t has;
		uint64_t h0, h1;

		m.complete = tern_now_ns();
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
		return src_ctl_write_error(s, ret, "COMMIT", err);
	}
	m.commit = tern_now_ns();
	src_wait_resumed(s);
	downtime_publish(s, &m);
	return 0;
}
