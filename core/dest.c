/* SPDX-License-Identifier: MIT */
/*
 * The destination side: the load thread. It takes the control channel from
 * the lobby (lobby.c: strays are closed and forgotten there), checks HELLO
 * against our own RAM layout and capabilities, lets the worker channels join
 * within handshake-timeout, and then follows the control stream: RAM_SYNC n releases
 * the workers' round-n barrier, SECTION_FULL loads a device, EOS ends the
 * RAM (every channel read SYNC|LAST and every page announced arrived).
 * Then LOADED, the digest when verify-ram is on, COMPLETE, and the guest
 * starts only when the source answers COMMIT (see source.c).
 *
 * The source says something on the control channel at least every
 * io-timeout / 3 (KEEPALIVE when it has nothing else to say), so each wait
 * for its next frame is bounded by io-timeout: a source stopped or wedged
 * with its sockets open fails the migration instead of holding it forever.
 *
 * Every frame is validated before it is acted on; any error ends in
 * `failed` with the reason sent to the source on the return path, and the
 * guest is never started.
 */
#include <stdlib.h>

#include "core_priv.h"

static int rp_send(struct tern_session *s, enum ctl_type type, const void *p, size_t len)
{
	int ret;

	pthread_mutex_lock(&s->ctl_wlock);
	ret = s->ctl ? ctl_send(s->ctl, type, p, len) : -ENOTCONN;
	pthread_mutex_unlock(&s->ctl_wlock);
	return ret;
}

/* The source ended the migration with an ERROR of its own: it knows why, so
 * do not send its reason back to it (session_fail() would). */
static void source_told(struct tern_session *s)
{
	pthread_mutex_lock(&s->lock);
	s->error_sent = true;
	pthread_mutex_unlock(&s->lock);
}

static void mf_failed(void *opaque)
{
	struct tern_session *s = opaque;
	struct tern_error err = {0};
	struct mf_recv *r;

	/* Called from the failing worker: @r lives until that worker is joined. */
	pthread_mutex_lock(&s->lock);
	r = s->mf_recv;
	pthread_mutex_unlock(&s->lock);
	if (r && mf_recv_error(r, &err))
		session_fail(s, &err);
}

/* The handshake's bound and the read deadline after it (params.c). */
static int handshake_ms(struct tern_session *s)
{
	return (int)params_get(&s->params, PARAM_HANDSHAKE_TIMEOUT);
}

static int io_ms(struct tern_session *s)
{
	return (int)params_get(&s->params, PARAM_IO_TIMEOUT);
}

/*
 * Wait for the source: the first connection that presents a control stream
 * header and a HELLO (lobby.c) becomes the control channel; strays before it
 * are closed and forgotten. No deadline here but the program's own (cancel):
 * the source may come whenever it likes.
 */
static int dest_handshake(struct tern_session *s, struct lobby *lb, struct tern_error *err)
{
	struct lobby_entry e;
	struct tern_conn *ctl;
	int ret, sent;

	for (;;) {
		ret = lobby_next(lb, 0, &e, err);
		if (ret) {
			/* a cancel sets no message: return ret, not err's code */
			tern_error_prefix(err, "waiting for the source");
			return ret;
		}
		if (e.kind == LOBBY_CONTROL && e.type == CTL_HELLO)
			break;
		if (e.kind == LOBBY_CONTROL)
			lobby_refuse_told(lb, &e, -EPROTO,
					  "POSTCOPY_RESUME: no postcopy to recover here (this "
					  "destination waits for a new migration)");
		else
			lobby_refuse(lb, &e, "a worker channel before any control channel");
	}
	ctl = e.conn;
	ret = session_set_ctl(s, ctl);
	if (ret) {
		free(e.payload);
		return ret;
	}
	__atomic_store_n(&s->start_ns, tern_now_ns(), __ATOMIC_RELAXED);
	/* From here on a read that stops inside a frame, or a write that makes
	 * no progress, fails after io-timeout (and TCP keepalive uses it). */
	ret = conn_set_io_timeout(ctl, io_ms(s));
	if (!ret)
		ret = conn_set_recv_timeout(ctl, io_ms(s));
	if (ret && ret != -EOPNOTSUPP) {
		free(e.payload);
		return tern_error_set(err, ret, "control channel: setting its io-timeout: %s",
				      strerror(-ret));
	}
	pthread_mutex_lock(&s->ctl_wlock);
	sent = ctl_send_stream_hdr(ctl, CTL_RP_MAGIC);
	pthread_mutex_unlock(&s->ctl_wlock);
	ret = hello_check(s, e.payload, e.len, err);
	free(e.payload);
	if (ret)
		return ret;
	if (sent)
		return tern_error_set(err, sent, "control channel from %s: %s", ctl->peer,
				      strerror(-sent));
	ret = rp_send(s, CTL_HELLO_ACK, NULL, 0);
	if (ret)
		return tern_error_set(err, ret, "control channel from %s: sending HELLO_ACK: %s",
				      ctl->peer, strerror(-ret));
	return 0;
}

/*
 * The join window: every worker channel presents a hello naming this
 * session and a channel not yet taken, within handshake-timeout of our
 * HELLO_ACK. Anything else -- a second control channel, another session's
 * channel, a duplicate, junk, silence -- is closed and forgotten and takes
 * no channel; only the window running out fails the migration.
 */
int dest_join_channels(struct tern_session *s, struct lobby *lb, struct tern_error *err)
{
	struct mf_config cfg = session_mf_config(s, mf_failed);
	uint64_t deadline = tern_now_ms() + (uint64_t)handshake_ms(s);
	struct tern_listener *l;
	uint32_t joined = 0;
	struct mf_recv *r;
	int ret;

	ret = mf_recv_new(&cfg, &r, err);
	if (ret)
		return ret;
	dest_pc_attach(s, r); /* a recovery's channels place pages at once */
	pthread_mutex_lock(&s->lock);
	s->mf_recv = r;
	pthread_mutex_unlock(&s->lock);
	while (joined < s->nworkers) {
		struct tern_error why = {0};
		char peer[sizeof(((struct tern_conn *)0)->peer)];
		struct lobby_entry e;
		uint32_t index;

		ret = lobby_next(lb, deadline, &e, err);
		if (ret == -ETIMEDOUT) {
			const char *last = lobby_last_refused(lb);

			return tern_error_set(err, ret,
					      "worker channels: %u of %u joined within %d ms "
					      "(handshake-timeout)%s%s",
					      joined, s->nworkers, handshake_ms(s),
					      last ? "; last refused: " : "", last ? last : "");
		}
		if (ret) {
			tern_error_prefix(err, "waiting for the worker channels");
			return ret; /* a cancel sets no message */
		}
		if (e.kind != LOBBY_WORKER) {
			lobby_refuse(lb, &e, "a second control channel");
			continue;
		}
		if (mf_hello_check(e.hello, &cfg, &index, &why)) {
			lobby_refuse(lb, &e, why.msg);
			continue;
		}
		ret = conn_set_io_timeout(e.conn, io_ms(s));
		if (!ret)
			ret = conn_set_recv_timeout(e.conn, io_ms(s));
		if (ret && ret != -EOPNOTSUPP) {
			tern_error_set(&why, ret, "setting its io-timeout: %s", strerror(-ret));
			lobby_refuse(lb, &e, why.msg);
			continue;
		}
		memcpy(peer, e.conn->peer, sizeof(peer));
		if (mf_recv_join(r, e.conn, index, &why)) {
			lobby_note_refused(lb, peer, why.msg);
			continue;
		}
		joined++;
	}
	/* Everyone is in: free the address. */
	pthread_mutex_lock(&s->lock);
	l = s->listener;
	s->listener = NULL;
	pthread_mutex_unlock(&s->lock);
	l->ops->close(l);
	return 0;
}

/*
 * The next control frame. A live source says something at least every
 * io-timeout / 3 of its own (a KEEPALIVE when it has nothing else to say),
 * so a source silent for our io-timeout is stopped or wedged, not busy.
 */
static int ctl_recv_source(struct tern_session *s, uint16_t *ret_type, uint8_t **ret_payload,
			   uint32_t *ret_len, struct tern_error *err)
{
	return ctl_recv_bounded(s->ctl, "control channel", "the source", ret_type, ret_payload,
				ret_len, err);
}

static int dest_finish(struct tern_session *s, const uint8_t *p, uint32_t len, uint64_t last_round,
		       struct tern_error *err)
{
	uint8_t complete[1 + 16 + 8] = {0}, loaded[8];
	struct mf_chan_stats t;
	uint64_t round, pages;
	uint16_t type;
	uint8_t *cp = NULL;
	uint32_t clen;
	struct rd r;
	int ret;

	rd_init(&r, p, len);
	round = rd_u64(&r);
	pages = rd_u64(&r);
	if (r.bad || rd_left(&r))
		return tern_error_set(err, -EPROTO, "EOS: malformed (%u bytes)", len);
	if (round != last_round)
		return tern_error_set(err, -EPROTO,
				      "EOS after round %" PRIu64 ", last RAM_SYNC was %" PRIu64,
				      round, last_round);
	ret = mf_recv_finish(s->mf_recv, err);
	if (!ret && s->postcopy_run)
		ret = dest_pc_finish(s, err);
	if (ret)
		return ret;
	mf_recv_stats(s->mf_recv, &t, NULL);
	if (t.normal_pages + t.zero_pages != pages)
		return tern_error_set(err, -EPROTO,
				      "EOS: the source sent %" PRIu64 " pages, %" PRIu64 " arrived",
				      pages, t.normal_pages + t.zero_pages);
	s->loaded_ns = tern_now_ns();
	put_be64(loaded, s->sections_load_ns);
	ret = rp_send(s, CTL_LOADED, loaded, sizeof(loaded));
	if (ret && s->postcopy_run) {
		/* every page is here: the guest needs the source no more */
		tern_log_msg(&s->log, 4,
			     "postcopy: every page is here, but the source did not hear LOADED "
			     "(%s): it will stay paused until its session is freed",
			     strerror(-ret));
		return 0;
	}
	if (ret)
		return tern_error_set(err, ret, "sending LOADED: %s", strerror(-ret));
	if (s->peer_caps & CAP_BIT(CAP_VERIFY_RAM)) {
		struct ram_digest d;

		ret = digest_track_final(s->digest, &d, NULL, err);
		if (ret)
			return ret;
		complete[0] = 1;
		put_be64(complete + 1, d.h[0]);
		put_be64(complete + 9, d.h[1]);
		__atomic_store_n(&s->verify_ms, (tern_now_ns() - s->loaded_ns) / 1000000,
				 __ATOMIC_RELAXED);
	}
	put_be64(complete + 17, pages);
	ret = rp_send(s, CTL_COMPLETE, complete, sizeof(complete));
	if (s->postcopy_run) {
		if (ret)
			tern_log_msg(&s->log, 4,
				     "postcopy: every page is here, but the source did not hear "
				     "COMPLETE (%s): it will stay paused until its session is "
				     "freed",
				     strerror(-ret));
		return 0; /* the guest runs here since POSTCOPY_RUN: no COMMIT */
	}
	if (ret)
		return tern_error_set(err, ret, "sending COMPLETE: %s", strerror(-ret));

	/* Wait for the source to let go of the guest (keepalives aside). */
	do {
		free(cp);
		cp = NULL;
		ret = ctl_recv_source(s, &type, &cp, &clen, err);
	} while (!ret && type == CTL_KEEPALIVE);
	if (ret)
		return tern_error_prefix(err, "waiting for COMMIT");
	if (type == CTL_ERROR) {
		ctl_decode_error(cp, clen, "source", err);
		ret = err && err->code ? err->code : -EPROTO;
		source_told(s);
	} else if (type != CTL_COMMIT || clen != 8 || cp[0] != 1) {
		ret = tern_error_set(err, -EPROTO, "expected COMMIT, got %s", ctl_type_name(type));
	}
	free(cp);
	if (ret)
		return ret;
	s->got_commit = true;
	return 0;
}

int dest_load(struct tern_session *s, uint64_t *ret_last_round, struct tern_error *err)
{
	uint64_t last_round = *ret_last_round;
	uint16_t type;
	uint8_t *p;
	uint32_t len;
	int ret;

	for (;;) {
		ret = ctl_recv_source(s, &type, &p, &len, err);
		if (ret)
			return ret;
		switch (type) {
		case CTL_KEEPALIVE:
			break; /* the source is alive; nothing changes */
		case CTL_RAM_SYNC: {
			uint64_t round = len == 8 ? get_be64(p) : 0;

			if (len != 8 || round != last_round + 1) {
				ret = tern_error_set(err, -EPROTO,
						     "RAM_SYNC for round %" PRIu64
						     " after round %" PRIu64,
						     round, last_round);
				break;
			}
			ret = mf_recv_wait_sync(s->mf_recv, round, err);
			if (!ret) {
				digest_track_round(s->digest, round);
				last_round = round;
				__atomic_store_n(&s->rounds, round, __ATOMIC_RELAXED);
				ret = rp_send(s, CTL_RAM_SYNC_ACK, p, len);
				/* A source that hung up is no reason to fail here:
				 * the stream says why next (an ERROR, or EOF). */
				if (ret == -EPIPE || ret == -ECONNRESET)
					ret = 0;
				else if (ret)
					tern_error_set(err, ret, "sending RAM_SYNC_ACK: %s",
						       strerror(-ret));
			}
			break;
		}
		case CTL_SECTION_FULL: {
			uint64_t t0 = tern_now_ns();

			ret = section_load(s, p, len, err);
			s->sections_load_ns += tern_now_ns() - t0;
			break;
		}
		case CTL_RAM_HINT:
			if (last_round) {
				ret = tern_error_set(err, -EPROTO, "RAM_HINT after round %" PRIu64,
						     last_round);
				break;
			}
			ret = hint_receive(s, p, len, err);
			/* Blocks are hinted in order: the last one starts the work. */
			if (!ret && len >= 4 && get_be32(p) == s->nblocks - 1)
				hint_prefault_start(s);
			break;
		case CTL_POSTCOPY_DISCARD:
			ret = dest_pc_discard(s, p, len, err);
			break;
		case CTL_POSTCOPY_RUN:
			ret = dest_pc_run(s, p, len, last_round, err);
			break;
		case CTL_EOS:
			ret = dest_finish(s, p, len, last_round, err);
			free(p);
			return ret;
		case CTL_ERROR:
			ctl_decode_error(p, len, "source", err);
			ret = err->code ? err->code : -EPROTO;
			source_told(s);
			break;
		default:
			ret = tern_error_set(
			    err, -EPROTO, "control channel: unexpected %s frame in round %" PRIu64,
			    ctl_type_name(type), last_round + 1);
		}
		free(p);
		*ret_last_round = last_round;
		if (ret)
			return ret;
	}
}

/* The workers' own error, if one failed first, says more than ours. */
static void workers_error(struct tern_session *s, struct tern_error *err)
{
	struct mf_recv *r;

	pthread_mutex_lock(&s->lock);
	r = s->mf_recv;
	pthread_mutex_unlock(&s->lock);
	if (r && mf_recv_error(r, NULL)) {
		tern_error_clear(err);
		mf_recv_error(r, err);
	}
}

void *dest_thread(void *arg)
{
	struct tern_session *s = arg;
	struct tern_error err = {0};
	struct tern_listener *l;
	struct mf_recv *r;
	struct tern_conn *ctl;
	struct lobby *lb = NULL;
	uint64_t last_round = 0;
	int ret;

	s->cpu_main = cpu_thread_start(&s->cpu, TERN_CPU_MIGRATION, "tern-load");
	ret = lobby_new(s, handshake_ms(s), &lb, &err);
	if (!ret)
		ret = dest_handshake(s, lb, &err);
	/* verify-ram: before the workers, which bump its counters */
	if (!ret && (s->peer_caps & CAP_BIT(CAP_VERIFY_RAM)))
		ret = digest_track_new(s, false, &s->digest, &err);
	if (!ret)
		ret = dest_join_channels(s, lb, &err);
	/* Strays still in handshake: closed now, not at the end. */
	lobby_free(lb);
	if (!ret) {
		__atomic_store_n(&s->setup_end_ns, tern_now_ns(), __ATOMIC_RELAXED);
		if (!session_transition(s, TERN_STATUS_SETUP, TERN_STATUS_ACTIVE))
			ret = -ECANCELED;
	}
	if (!ret)
		ret = dest_load(s, &last_round, &err);
	/* postcopy: a broken connection pauses, and a recovery goes on */
	while (ret && dest_pc_pausable(s)) {
		workers_error(s, &err);
		ret = dest_pc_recover(s, &last_round, &err);
		if (ret)
			break; /* gave up */
		ret = dest_load(s, &last_round, &err);
	}

	if (ret) {
		workers_error(s, &err);
		if (!err.code)
			tern_error_set(&err, ret, "%s", strerror(-ret));
		if (s->postcopy_run)
			dest_pc_given_up(s, &err);
		session_fail(s, &err);
	}
	hint_prefault_stop(s);
	pthread_mutex_lock(&s->lock);
	r = s->mf_recv;
	s->mf_recv = NULL;
	l = s->listener;
	s->listener = NULL;
	pthread_mutex_unlock(&s->lock);
	if (r) {
		mf_recv_stats(r, &s->final_total, s->final_chan);
		mf_recv_codec_stats(r, &s->final_codec);
		s->final_xport = (struct tern_xport_stats){0};
		mf_recv_xport_stats(r, &s->final_xport);
		mf_recv_free(r);
	}
	/* after the workers were joined: they bumped its counters */
	digest_track_free(s->digest);
	s->digest = NULL;
	if (l)
		l->ops->close(l);
	if (!ret && !s->postcopy_run) {
		/* The source let go (COMMIT): start the guest, then tell the
		 * source what that cost, the last part of its downtime. Its
		 * going away meanwhile changes nothing here. */
		uint64_t t0 = tern_now_ns();
		uint8_t resumed[8];

		if (s->vmm.resume)
			s->vmm.resume(s->vmm_opaque);
		put_be64(resumed, tern_now_ns() - t0);
		rp_send(s, CTL_RESUMED, resumed, sizeof(resumed));
	}
	pthread_mutex_lock(&s->ctl_wlock);
	pthread_mutex_lock(&s->lock);
	ctl = s->ctl;
	s->ctl = NULL;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->ctl_wlock);
	conn_close(ctl);

	__atomic_store_n(&s->end_ns, tern_now_ns(), __ATOMIC_RELAXED);
	if (!ret) {
		stats_capture_final(s);
		pthread_mutex_lock(&s->lock);
		/* COMMIT said the digests matched; in postcopy only the
		 * source knows */
		s->verified = (s->peer_caps & CAP_BIT(CAP_VERIFY_RAM)) != 0 && !s->postcopy_run;
		pthread_mutex_unlock(&s->lock);
		session_transition(
		    s, s->postcopy_run ? TERN_STATUS_POSTCOPY_ACTIVE : TERN_STATUS_ACTIVE,
		    TERN_STATUS_COMPLETED);
	} else {
		enum tern_status st = session_status(s);

		stats_capture_final(s);
		while (!status_is_final(st) && !session_transition(s, st, TERN_STATUS_FAILED))
			st = session_status(s);
	}
	pthread_mutex_lock(&s->lock);
	s->ended = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}
