/* SPDX-License-Identifier: MIT */
/*
 * The destination's lobby: who gets in. Anyone can connect to an --incoming
 * port -- a health check, a port scan, a stale source, a slow one -- and the
 * first connection is not necessarily the source. So every accepted
 * connection is read on a thread of its own, never by the load thread, and
 * must present within handshake-timeout of its accept either
 *
 *   a control stream header ("TRNC" v1) and a complete HELLO frame (or
 *   POSTCOPY_RESUME: a source reconnecting to a postcopy it began), or
 *   a worker hello ("TRNW" ...: 32 bytes, checked by the caller).
 *
 * A connection that closes early, sends something else, or is still short of
 * that at its deadline is closed, logged (LOG_WARNING: who, what was wrong)
 * and forgotten; the load thread never waits on it. One that sent our
 * control magic is told why in an ERROR first (a source of another version
 * learns what we speak). The load thread takes what passed, in the order it
 * completed (of those done at once, the first accepted), from lobby_next(),
 * and may still refuse it (lobby_refuse()).
 *
 * Deadlines: the load thread runs the accept loop and enforces each
 * connection's deadline by shutting the connection down, which wakes its
 * reader at once -- so a peer that trickles a byte now and then cannot
 * stretch its handshake. While readers are out, accept() wakes every
 * LOBBY_TICK_MS to collect them (the listener has no other wakeup): each
 * handshake step (the control channel, each worker's join) may wait that
 * long to be seen, so it is short -- at 10 ms a 2-channel setup took
 * 11-12 ms instead of 2-3 -- and the wakeups last only while readers are
 * out. A wakeup fd beside the listener's would remove the tick.
 *
 * Many strays at once: up to LOBBY_MAX connections are read concurrently, so
 * silent ones do not queue the source behind them. Past that, the one
 * closest to its deadline is dropped for each newcomer: a flood can push out
 * only a connection that has had most of its time already, and the source,
 * which sends its HELLO at once, is done in a round trip.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core_priv.h"

#define LOBBY_MAX 128
#define LOBBY_TICK_MS 1

struct lobby_conn {
	struct lobby *owner;
	struct lobby_conn *next;
	/* immutable after the reader starts */
	struct tern_conn *conn;
	uint64_t deadline_ms;
	pthread_t thread;
	/* protected by owner->lock */
	bool done;    /* the reader finished (then it writes nothing more) */
	bool expired; /* shut down by the loop: deadline, or dropped */
	bool dropped; /* expired to make room */
	/* the reader's, until done */
	const char *stage; /* what it was reading */
	enum lobby_kind kind;
	bool tell; /* it sent our control magic: answer ERROR */
	struct tern_error why;
	uint8_t hello[MF_HELLO_SIZE];
	uint16_t type;
	uint8_t *payload;
	uint32_t len;
};

struct lobby {
	struct tern_session *s;
	int timeout_ms;
	pthread_mutex_t lock;
	/* protected by ->lock */
	struct lobby_conn *head;
	unsigned int n;
	/* load thread only */
	struct tern_error last;
};

static void *lobby_read(void *arg)
{
	struct lobby_conn *lc = arg;
	CPU_THREAD(cpu, &lc->owner->s->cpu, TERN_CPU_OTHER, "tern-lobby");
	struct tern_error e = {0};
	uint8_t h[CTL_STREAM_HDR_SIZE];
	uint16_t type;
	uint32_t m, v;
	int ret;

	lc->stage = "stream header";
	ret = conn_recv(lc->conn, h, sizeof(h));
	if (ret)
		goto out;
	m = get_be32(h);
	v = get_be32(h + 4);
	if (m == MF_HELLO_MAGIC) {
		lc->stage = "worker hello";
		memcpy(lc->hello, h, sizeof(h));
		ret = conn_recv(lc->conn, lc->hello + sizeof(h), MF_HELLO_SIZE - sizeof(h));
		if (!ret)
			lc->kind = LOBBY_WORKER;
		goto out;
	}
	if (m != CTL_MAGIC) {
		ret = tern_error_set(&e, -EPROTO, "bad magic %#x: not a tern source", m);
		goto out;
	}
	lc->tell = true;
	if (v != CTL_VERSION) {
		ret = tern_error_set(&e, -EPROTONOSUPPORT,
				     "control channel: unknown protocol version %u (we speak %u)",
				     v, CTL_VERSION);
		goto out;
	}
	lc->stage = "HELLO";
	ret = ctl_recv(lc->conn, "control channel", &type, &lc->payload, &lc->len, &e);
	if (ret)
		goto out;
	if (type != CTL_HELLO && type != CTL_POSTCOPY_RESUME) {
		ret = tern_error_set(&e, -EPROTO, "control channel: %s frame before HELLO",
				     ctl_type_name(type));
		goto out;
	}
	lc->type = type;
	lc->kind = LOBBY_CONTROL;
out:
	if (ret && !e.code)
		tern_error_set(&e, ret, "%s while reading its %s",
			       ret == -EPIPE ? "closed the connection" : strerror(-ret), lc->stage);
	pthread_mutex_lock(&lc->owner->lock);
	if (ret) {
		free(lc->payload);
		lc->payload = NULL;
		lc->kind = LOBBY_INVALID;
		lc->why = e;
	}
	lc->done = true;
	pthread_mutex_unlock(&lc->owner->lock);
	return NULL;
}

int lobby_new(struct tern_session *s, int handshake_ms, struct lobby **ret_lobby,
	      struct tern_error *err)
{
	struct lobby *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return tern_error_set(err, -ENOMEM, "out of memory");
	lb->s = s;
	lb->timeout_ms = handshake_ms;
	pthread_mutex_init(&lb->lock, NULL);
	*ret_lobby = lb;
	return 0;
}

/* Log and remember why @peer was turned away. */
static void __attribute__((format(printf, 3, 4)))
lobby_note(struct lobby *lb, const char *peer, const char *fmt, ...)
{
	char why[sizeof(lb->last.msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	tern_log_msg(&lb->s->log, 4, "incoming connection from %s closed: %s", peer, why);
	tern_error_clear(&lb->last);
	tern_error_set(&lb->last, -EPROTO, "%s: %s", peer, why);
}

void lobby_note_refused(struct lobby *lb, const char *peer, const char *why)
{
	lobby_note(lb, peer, "%s", why);
}

const char *lobby_last_refused(struct lobby *lb)
{
	return lb->last.code ? lb->last.msg : NULL;
}

void lobby_refuse(struct lobby *lb, struct lobby_entry *e, const char *why)
{
	lobby_note(lb, e->conn->peer, "%s", why);
	conn_close(e->conn);
	free(e->payload);
	memset(e, 0, sizeof(*e));
}

void lobby_refuse_told(struct lobby *lb, struct lobby_entry *e, int code, const char *why)
{
	/* a peer that does not read must not hold us: a bounded write */
	if (!conn_set_io_timeout(e->conn, lb->timeout_ms) &&
	    !ctl_send_stream_hdr(e->conn, CTL_RP_MAGIC))
		ctl_send_error(e->conn, code, why);
	lobby_refuse(lb, e, why);
}

/* A finished reader that failed: answer it if it spoke our protocol, close it. */
static void lobby_drop(struct lobby *lb, struct lobby_conn *lc)
{
	if (lc->dropped)
		lobby_note(lb, lc->conn->peer,
			   "dropped in its %s to make room (more than %d connections in "
			   "handshake)",
			   lc->stage, LOBBY_MAX);
	else if (lc->expired)
		lobby_note(lb, lc->conn->peer, "no complete %s within %d ms (handshake-timeout)",
			   lc->stage, lb->timeout_ms);
	else
		lobby_note(lb, lc->conn->peer, "%s", lc->why.msg);
	if (lc->tell && !lc->expired && ctl_send_stream_hdr(lc->conn, CTL_RP_MAGIC) == 0)
		ctl_send_error(lc->conn, lc->why.code, lc->why.msg);
	conn_close(lc->conn);
}

/*
 * Collect finished readers: the failed are dropped, the first that passed
 * goes to @ret (true). Expire the readers past their deadline. Returns the
 * earliest deadline still running in *@next (0: none).
 */
static bool lobby_reap(struct lobby *lb, uint64_t now, struct lobby_entry *ret, uint64_t *next)
{
	struct lobby_conn **pp, *lc, *done = NULL;
	bool found = false;

	*next = 0;
	pthread_mutex_lock(&lb->lock);
	for (pp = &lb->head; (lc = *pp);) {
		if (lc->done && (!found || lc->kind == LOBBY_INVALID)) {
			*pp = lc->next;
			lb->n--;
			lc->next = done;
			done = lc;
			found = found || lc->kind != LOBBY_INVALID;
			continue;
		}
		if (!lc->done && !lc->expired && now >= lc->deadline_ms) {
			lc->expired = true;
			conn_shutdown(lc->conn);
		}
		if (!lc->done && !lc->expired && (!*next || lc->deadline_ms < *next))
			*next = lc->deadline_ms;
		pp = &lc->next;
	}
	pthread_mutex_unlock(&lb->lock);

	while ((lc = done)) {
		done = lc->next;
		pthread_join(lc->thread, NULL);
		if (lc->kind == LOBBY_INVALID) {
			lobby_drop(lb, lc);
		} else {
			ret->kind = lc->kind;
			ret->conn = lc->conn;
			memcpy(ret->hello, lc->hello, sizeof(ret->hello));
			ret->type = lc->type;
			ret->payload = lc->payload;
			ret->len = lc->len;
		}
		free(lc);
	}
	return found;
}

/* Room for one more: expire the reader closest to its deadline. */
static void lobby_make_room(struct lobby *lb)
{
	struct lobby_conn *lc, *oldest = NULL;

	pthread_mutex_lock(&lb->lock);
	if (lb->n >= LOBBY_MAX) {
		for (lc = lb->head; lc; lc = lc->next)
			if (!lc->done && !lc->expired &&
			    (!oldest || lc->deadline_ms < oldest->deadline_ms))
				oldest = lc;
		if (oldest) {
			oldest->expired = true;
			oldest->dropped = true;
			conn_shutdown(oldest->conn);
		}
	}
	pthread_mutex_unlock(&lb->lock);
}

static void lobby_start_reader(struct lobby *lb, struct tern_conn *c)
{
	struct lobby_conn *lc = calloc(1, sizeof(*lc));
	int ret;

	if (!lc) {
		lobby_note(lb, c->peer, "out of memory");
		conn_close(c);
		return;
	}
	lobby_make_room(lb);
	lc->owner = lb;
	lc->conn = c;
	lc->stage = "stream header";
	lc->deadline_ms = tern_now_ms() + (uint64_t)lb->timeout_ms;
	pthread_mutex_lock(&lb->lock);
	ret = pthread_create(&lc->thread, NULL, lobby_read, lc);
	if (!ret) {
		struct lobby_conn **pp = &lb->head;

		/* in accept order: of two that finished, the first one in wins */
		while (*pp)
			pp = &(*pp)->next;
		*pp = lc;
		lb->n++;
	}
	pthread_mutex_unlock(&lb->lock);
	if (ret) {
		lobby_note(lb, c->peer, "cannot start its reader: %s", strerror(ret));
		conn_close(c);
		free(lc);
	}
}

int lobby_next(struct lobby *lb, uint64_t deadline_ms, struct lobby_entry *ret_entry,
	       struct tern_error *err)
{
	struct tern_session *s = lb->s;

	for (;;) {
		struct tern_error aerr = {0};
		struct tern_listener *l;
		struct tern_conn *c;
		uint64_t now = tern_now_ms(), next;
		int wait = -1, ret;

		if (lobby_reap(lb, now, ret_entry, &next))
			return 0;
		if (deadline_ms && now >= deadline_ms)
			return -ETIMEDOUT;
		if (next)
			wait = (int)MIN(next - MIN(next, now), (uint64_t)LOBBY_TICK_MS);
		else if (lb->n)
			wait = LOBBY_TICK_MS; /* expired readers on their way out */
		if (deadline_ms)
			wait = wait < 0 ? (int)MIN(deadline_ms - now, (uint64_t)INT32_MAX)
					: (int)MIN((uint64_t)wait, deadline_ms - now);

		pthread_mutex_lock(&s->lock);
		l = s->cancel || s->err.code ? NULL : s->listener;
		pthread_mutex_unlock(&s->lock);
		if (!l)
			return -ECANCELED;
		ret = l->ops->accept(l, wait, &c, &aerr);
		if (ret == -ETIMEDOUT)
			continue;
		if (ret) {
			tern_error_set(err, ret, "%s", aerr.msg);
			return ret;
		}
		lobby_start_reader(lb, c);
	}
}

void lobby_free(struct lobby *lb)
{
	struct lobby_conn *lc;

	if (!lb)
		return;
	pthread_mutex_lock(&lb->lock);
	for (lc = lb->head; lc; lc = lc->next)
		conn_shutdown(lc->conn);
	pthread_mutex_unlock(&lb->lock);
	while ((lc = lb->head)) {
		lb->head = lc->next;
		pthread_join(lc->thread, NULL);
		tern_log_msg(&lb->s->log, 4,
			     "incoming connection from %s closed: the handshake phase ended",
			     lc->conn->peer);
		conn_close(lc->conn);
		free(lc->payload);
		free(lc);
	}
	pthread_mutex_destroy(&lb->lock);
	free(lb);
}
