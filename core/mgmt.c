/* SPDX-License-Identifier: MIT */
/*
 * The management server: a Unix stream socket that speaks JSON, one request
 * per line and one reply per line (docs/MGMT.md has the protocol).
 *
 * One thread per server polls the listening socket, every client and an
 * eventfd. Requests run on that thread through the session's public entry
 * points (tern_stats_get, tern_param_set, tern_cancel, ...), so the server
 * holds none of its own locks while it calls into the session.
 *
 * Events (state changes, rounds) come from the migration and load threads:
 * the server subscribes to its session with tern_observer_add(), as any
 * VMM could, and the rest of core/ knows nothing of it (observe.c). Those threads must never wait
 * for a client, so a notifier formats the line on its own stack, copies it into each subscribed
 * client's bounded queue under ->qlock (a memcpy per client, nothing that
 * blocks) and pokes the eventfd; the server thread moves queued lines to the
 * client's output buffer when that buffer has room. A client that does not
 * read fills its queue, and further events for it are dropped and counted;
 * it is told how many with a "dropped" event once it catches up.
 *
 * Output is bounded too: the server reads no more requests from a client
 * whose unsent replies exceed MGMT_OUT_HIGH, so a client that writes without
 * reading only stalls itself.
 *
 * Time is bounded as well, so that idle clients cannot fill the 16 slots and
 * lock the operator out. A client that sends nothing for ->idle_ms is told
 * so and closed. A subscribed client (ternctl watch) waits for us, not we
 * for it: it is never idle while it takes its events, and is closed only
 * when output it has been sent stays unread for ->idle_ms. A closing client
 * gets MGMT_DRAIN_MS to hang up after our last line.
 *
 * Closing never loses our last line to the peer: the write side is shut
 * once that line has gone out, and the socket stays open, its input thrown
 * away, until the peer hangs up. A client refused because all slots are
 * taken goes the same way, in one of MGMT_MAX_REFUSED extra slots that only
 * ever hold closing clients: closing it at once would make the request it is
 * about to write fail with EPIPE, and it would never read why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core_priv.h"
#include "mgmt.h"

#define MGMT_LINE_MAX 65536 /* request bytes before the newline */
#define MGMT_MAX_CLIENTS 16
#define MGMT_MAX_REFUSED 8 /* refused clients being told why, beyond the 16 */
#define MGMT_SLOTS (MGMT_MAX_CLIENTS + MGMT_MAX_REFUSED)
#define MGMT_IDLE_MS (5 * 60 * 1000) /* docs/MGMT.md */
#define MGMT_DRAIN_MS 5000	     /* for the peer to hang up after our last line */
#define MGMT_EVQ_LEN 128	     /* queued events per client */
#define MGMT_EVENT_MAX 384	     /* one event line, newline included */
#define MGMT_OUT_HIGH (256u << 10)   /* stop reading requests above this */
#define MGMT_DRAIN_MAX (1u << 20)    /* input discarded before a hard close */

struct mgmt_client {
	/* server thread only */
	int fd;
	char *in; /* MGMT_LINE_MAX + 1 bytes */
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	bool closing;	  /* flush what is queued, then close */
	bool draining;	  /* closing, flushed, write side shut: discard input */
	size_t discarded; /* bytes thrown away while draining */
	bool out_oom;
	uint64_t in_ms;	   /* the last byte it sent (or its accept) */
	uint64_t out_ms;   /* output last became pending or made progress */
	uint64_t drain_ms; /* draining since */

	/* protected by the server's ->qlock */
	bool subscribed;
	uint32_t ev_head, ev_count;
	uint64_t dropped;
	char ev[MGMT_EVQ_LEN][MGMT_EVENT_MAX];
};

struct mgmt_server {
	/* immutable while the thread runs */
	struct tern_session *s;
	int listen_fd;
	int wake_fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	pthread_t thread;

	bool quit;	  /* atomic */
	uint32_t idle_ms; /* atomic: MGMT_IDLE_MS, or a test's (mgmt_set_idle_ms()) */

	/* ->clients[] changes under ->qlock (server thread); the server thread
	 * reads it without the lock, notifiers with it. Slots from
	 * MGMT_MAX_CLIENTS on hold refused clients only (closing). */
	pthread_mutex_t qlock;
	struct mgmt_client *clients[MGMT_SLOTS];
};

/* ---- events (any thread) ------------------------------------------------- */

static void mgmt_wake(struct mgmt_server *m)
{
	uint64_t one = 1;

	/* Non-blocking: a full counter already means "wake up". */
	if (write(m->wake_fd, &one, sizeof(one)) < 0)
		return;
}

/* Called with the session's observer lock held (observe.c): @m cannot be
 * closed under us, since tern_mgmt_close() removes the subscription first. */
static void mgmt_post(struct mgmt_server *m, const char *line, size_t len)
{
	bool posted = false;
	uint32_t i;

	pthread_mutex_lock(&m->qlock);
	for (i = 0; i < MGMT_MAX_CLIENTS; i++) {
		struct mgmt_client *c = m->clients[i];

		if (!c || !c->subscribed)
			continue;
		if (c->ev_count == MGMT_EVQ_LEN) {
			c->dropped++;
			continue;
		}
		memcpy(c->ev[(c->ev_head + c->ev_count) % MGMT_EVQ_LEN], line, len + 1);
		c->ev_count++;
		posted = true;
	}
	pthread_mutex_unlock(&m->qlock);
	if (posted)
		mgmt_wake(m);
}

static void mgmt_on_state(void *opaque, enum tern_status from, enum tern_status to)
{
	char line[MGMT_EVENT_MAX];
	int n;

	n = snprintf(line, sizeof(line), "{\"event\":\"state\",\"from\":\"%s\",\"to\":\"%s\"}\n",
		     tern_status_name(from), tern_status_name(to));
	if (n > 0 && (size_t)n < sizeof(line))
		mgmt_post(opaque, line, (size_t)n);
}

static void mgmt_on_round(void *opaque, const struct tern_round_info *r)
{
	char line[MGMT_EVENT_MAX];
	int n;

	n = snprintf(line, sizeof(line),
		     "{\"event\":\"round\",\"round\":%" PRIu64 ",\"dirty_pages\":%" PRIu64
		     ",\"dirty_pages_rate\":%" PRIu64 ",\"dirty_sync_us\":%" PRIu64
		     ",\"ram_remaining\":%" PRIu64 ",\"bandwidth_bps\":%" PRIu64
		     ",\"expected_downtime_ms\":%" PRIu64 ",\"cpu_throttle_percent\":%u}\n",
		     r->round, r->dirty_pages, r->dirty_pages_rate, r->dirty_sync_us,
		     r->ram_remaining, r->bandwidth_bps, r->expected_downtime_ms,
		     r->cpu_throttle_percent);
	if (n > 0 && (size_t)n < sizeof(line))
		mgmt_post(opaque, line, (size_t)n);
}

static void server_stop(struct mgmt_server *m);

/* The session is being freed: its subscription is gone already. */
static void mgmt_on_closing(void *opaque)
{
	server_stop(opaque);
}

/* The management server subscribes to its session like any VMM could. */
static const struct tern_observer_ops mgmt_observer = {
    .state = mgmt_on_state,
    .round = mgmt_on_round,
    .closing = mgmt_on_closing,
};

/* ---- output ---------------------------------------------------------------- */

static void client_append(struct mgmt_client *c, const char *p, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_ms = tern_now_ms(); /* pending from now on */
	/* Keep the unsent bytes at the front: a client that reads slowly but
	 * steadily would otherwise grow the buffer without bound. */
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *q;

		while (cap < c->out_len + n)
			cap *= 2;
		q = realloc(c->out, cap);
		if (!q) {
			/* The reply is lost: drop the client rather than
			 * leave it waiting for a line that never comes. */
			c->out_oom = true;
			return;
		}
		c->out = q;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* ---- the server thread --------------------------------------------------- */

static void client_free(struct mgmt_server *m, uint32_t slot)
{
	struct mgmt_client *c = m->clients[slot];

	pthread_mutex_lock(&m->qlock);
	m->clients[slot] = NULL;
	pthread_mutex_unlock(&m->qlock);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static void server_accept(struct mgmt_server *m)
{
	static const char full[] = "{\"ok\":false,\"error\":\"too many management clients\"}\n";
	struct mgmt_client *c;
	uint32_t i;
	int fd;

	fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (i = 0; i < MGMT_MAX_CLIENTS && m->clients[i]; i++)
		;
	c = calloc(1, sizeof(*c));
	if (c && i < MGMT_MAX_CLIENTS) {
		c->in = malloc(MGMT_LINE_MAX + 1);
		if (!c->in)
			i = MGMT_MAX_CLIENTS; /* refuse it, as if full */
	}
	if (c && i == MGMT_MAX_CLIENTS) {
		/* Refused: told why, then closed as any closing client is. */
		for (; i < MGMT_SLOTS && m->clients[i]; i++)
			;
		if (i < MGMT_SLOTS) {
			c->closing = true;
			client_append(c, full, sizeof(full) - 1);
		}
	}
	if (!c || i == MGMT_SLOTS || c->out_oom) {
		/* Best effort: the socket is new, so a short line fits. */
		if (send(fd, full, sizeof(full) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			tern_log_msg(&m->s->log, 4, "mgmt: refusing a client: %s", strerror(errno));
		shutdown(fd, SHUT_WR);
		if (c) {
			free(c->in);
			free(c->out);
			free(c);
		}
		close(fd);
		return;
	}
	c->fd = fd;
	c->in_ms = c->out_ms = tern_now_ms();
	pthread_mutex_lock(&m->qlock);
	m->clients[i] = c;
	pthread_mutex_unlock(&m->qlock);
}

/* Handle every complete line in ->in; refuse a line that outgrows the buffer. */
static void client_process(struct mgmt_server *m, struct mgmt_client *c)
{
	size_t start = 0;
	char *nl;

	while (!c->closing && c->out_len - c->out_off < MGMT_OUT_HIGH &&
	       (nl = memchr(c->in + start, '\n', c->in_len - start))) {
		size_t len = (size_t)(nl - (c->in + start));
		enum mgmt_action act;
		char *reply = mgmt_request(m->s, c->in + start, len, &act);

		if (act != MGMT_ACT_NONE) {
			pthread_mutex_lock(&m->qlock);
			c->subscribed = act == MGMT_ACT_SUBSCRIBE;
			if (!c->subscribed)
				c->ev_count = 0;
			pthread_mutex_unlock(&m->qlock);
		}
		if (reply)
			client_append(c, reply, strlen(reply));
		else
			c->out_oom = true; /* the reply is lost: drop the client */
		free(reply);
		start += len + 1;
	}
	if (start) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (!c->closing && c->in_len > MGMT_LINE_MAX) {
		static const char refuse[] = "{\"ok\":false,\"error\":\"request line longer "
					     "than 65536 bytes: closing\"}\n";

		_Static_assert(MGMT_LINE_MAX == 65536, "the message says 65536");
		client_append(c, refuse, sizeof(refuse) - 1);
		c->closing = true;
		c->in_len = 0;
	}
}

/* Read what the client sent; false when the client is gone. */
static bool client_read(struct mgmt_server *m, struct mgmt_client *c)
{
	ssize_t n;

	if (c->draining) {
		char sink[4096];

		/* Closing with unread input would reset the connection, and
		 * the peer could lose our last reply: read until it hangs up. */
		n = recv(c->fd, sink, sizeof(sink), 0);
		if (n > 0)
			c->discarded += (size_t)n;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		return n > 0 && c->discarded < MGMT_DRAIN_MAX;
	}
	if (c->in_len > MGMT_LINE_MAX)
		return true; /* full: client_process() refuses or drains it */
	n = recv(c->fd, c->in + c->in_len, MGMT_LINE_MAX + 1 - c->in_len, 0);
	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	c->in_ms = tern_now_ms();
	c->in_len += (size_t)n;
	client_process(m, c);
	return true;
}

/* Write what is pending; false when the client is gone. */
static bool client_flush(struct mgmt_client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)n;
		c->out_ms = tern_now_ms();
	}
	c->out_off = c->out_len = 0;
	return true;
}

/* Move queued events into the output buffer while it has room. */
static void client_take_events(struct mgmt_server *m, struct mgmt_client *c)
{
	char dropped[96];
	uint64_t lost;

	pthread_mutex_lock(&m->qlock);
	while (c->ev_count && c->out_len - c->out_off < MGMT_OUT_HIGH) {
		const char *line = c->ev[c->ev_head];

		client_append(c, line, strlen(line));
		c->ev_head = (c->ev_head + 1) % MGMT_EVQ_LEN;
		c->ev_count--;
	}
	lost = c->ev_count ? 0 : c->dropped;
	if (lost)
		c->dropped = 0;
	pthread_mutex_unlock(&m->qlock);
	if (lost) {
		int n = snprintf(dropped, sizeof(dropped),
				 "{\"event\":\"dropped\",\"count\":%" PRIu64 "}\n", lost);

		client_append(c, dropped, (size_t)n);
	}
}

/* When @c's time runs out (monotonic ms), UINT64_MAX for never: see the top. */
static uint64_t client_deadline(const struct mgmt_client *c, uint32_t idle_ms)
{
	if (c->draining)
		return c->drain_ms + MGMT_DRAIN_MS;
	if (c->closing) /* our last line, not taken */
		return c->out_ms + idle_ms;
	/* ->subscribed: written by this thread only, so read without ->qlock */
	if (c->subscribed)
		return c->out_off < c->out_len ? c->out_ms + idle_ms : UINT64_MAX;
	return c->in_ms + idle_ms;
}

/* @c's time ran out: tell an idle client why and start closing it (true),
 * or false to close it now, when no line would reach it any more. */
static bool client_expire(struct mgmt_client *c, uint32_t idle_ms)
{
	char line[96];
	int n;

	if (c->closing || c->subscribed)
		return false;
	if (idle_ms % 1000)
		n = snprintf(line, sizeof(line),
			     "{\"ok\":false,\"error\":\"idle for %" PRIu32 " ms: closing\"}\n",
			     idle_ms);
	else
		n = snprintf(line, sizeof(line),
			     "{\"ok\":false,\"error\":\"idle for %" PRIu32 " s: closing\"}\n",
			     idle_ms / 1000);
	client_append(c, line, (size_t)n);
	c->closing = true;
	c->in_len = 0;
	return true;
}

/* The poll() timeout until the first client's time runs out. */
static int server_timeout(struct mgmt_server *m, uint32_t idle_ms)
{
	uint64_t first = UINT64_MAX, now;
	uint32_t i;

	for (i = 0; i < MGMT_SLOTS; i++)
		if (m->clients[i])
			first = MIN(first, client_deadline(m->clients[i], idle_ms));
	if (first == UINT64_MAX)
		return -1;
	now = tern_now_ms();
	return first <= now ? 0 : (int)MIN(first - now, (uint64_t)INT32_MAX);
}

static void *server_thread(void *arg)
{
	struct mgmt_server *m = arg;
	/* It outlives migrations: it adds what each burst of work cost
	 * before it sleeps, and what falls outside a migration is dropped. */
	CPU_THREAD(cpu, &m->s->cpu, TERN_CPU_MGMT, "tern-mgmt");
	struct pollfd pfd[MGMT_SLOTS + 2];
	uint32_t slot[MGMT_SLOTS + 2];
	uint32_t i, n, idle_ms;
	uint64_t now;

	while (!__atomic_load_n(&m->quit, __ATOMIC_ACQUIRE)) {
		idle_ms = __atomic_load_n(&m->idle_ms, __ATOMIC_RELAXED);
		pfd[0] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
		n = 2;
		for (i = 0; i < MGMT_SLOTS; i++) {
			struct mgmt_client *c = m->clients[i];

			if (!c)
				continue;
			if (!c->closing)
				client_take_events(m, c);
			pfd[n].fd = c->fd;
			pfd[n].events = 0;
			if (c->draining || (!c->closing && c->in_len <= MGMT_LINE_MAX &&
					    c->out_len - c->out_off < MGMT_OUT_HIGH))
				pfd[n].events |= POLLIN;
			if (c->out_len > c->out_off)
				pfd[n].events |= POLLOUT;
			pfd[n].revents = 0;
			slot[n++] = i;
		}
		cpu_thread_flush(&cpu);
		if (poll(pfd, n, server_timeout(m, idle_ms)) < 0) {
			if (errno == EINTR)
				continue;
			tern_log_msg(&m->s->log, 3, "mgmt: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(m->wake_fd, &v, sizeof(v)) < 0)
				v = 0; /* EAGAIN: another wake already drained it */
		}
		if (pfd[1].revents & POLLIN)
			server_accept(m);
		for (i = 2; i < n; i++) {
			struct mgmt_client *c = m->clients[slot[i]];
			bool alive = true;

			if (pfd[i].revents & POLLIN)
				alive = client_read(m, c);
			else if (pfd[i].revents & (POLLHUP | POLLERR))
				alive = false;
			/* Requests held back while the output was full. */
			if (alive)
				client_process(m, c);
			if (alive)
				alive = client_flush(c);
			if (c->out_oom)
				alive = false;
			if (alive && c->closing && !c->draining && c->out_off == c->out_len) {
				shutdown(c->fd, SHUT_WR);
				c->draining = true;
				c->drain_ms = tern_now_ms();
			}
			if (!alive)
				client_free(m, slot[i]);
		}
		now = tern_now_ms();
		for (i = 0; i < MGMT_SLOTS; i++) {
			struct mgmt_client *c = m->clients[i];

			if (c && client_deadline(c, idle_ms) <= now && !client_expire(c, idle_ms))
				client_free(m, i);
		}
	}
	/* The last events (a VMM closes the server as its migration ends:
	 * "completed" is the one its watchers wait for) go out if the socket
	 * takes them now; nothing waits for a client. */
	for (i = 0; i < MGMT_SLOTS; i++) {
		struct mgmt_client *c = m->clients[i];

		if (!c)
			continue;
		if (!c->closing)
			client_take_events(m, c);
		client_flush(c);
		client_free(m, i);
	}
	return NULL;
}

/* ---- setup and teardown ------------------------------------------------ */

/* Refuse anything but a socket at @path; remove a socket nobody listens on. */
static int prepare_path(const char *path, struct tern_error *err)
{
	int ret = unix_path_reclaim(path);

	switch (ret) {
	case 0:
		return 0;
	case -EADDRINUSE:
		return tern_error_set(err, ret, "mgmt: %s: another process is listening there",
				      path);
	case -EEXIST:
		return tern_error_set(err, ret, "mgmt: %s exists and is not a socket", path);
	default:
		return tern_error_set(err, ret, "mgmt: taking over the stale socket %s: %s", path,
				      strerror(-ret));
	}
}

static int server_bind(struct mgmt_server *m, struct tern_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int ret;

	m->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (m->listen_fd < 0)
		return tern_error_set(err, -errno, "mgmt: socket: %s", strerror(errno));
	memcpy(sa.sun_path, m->path, strlen(m->path) + 1);
	/* The socket is born 0600: no window where another user may connect.
	 * umask is per process, so a file another thread creates meanwhile
	 * gets a narrower mode at worst. */
	old = umask(0177);
	ret = bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0)
		return tern_error_set(err, -errno, "mgmt: bind %s: %s", m->path, strerror(errno));
	if (chmod(m->path, 0600) < 0 || lstat(m->path, &st) < 0) {
		ret = tern_error_set(err, -errno, "mgmt: %s: %s", m->path, strerror(errno));
		unlink(m->path);
		return ret;
	}
	if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0600) {
		unlink(m->path);
		return tern_error_set(err, -EPERM, "mgmt: %s: mode %o, not a 0600 socket", m->path,
				      (unsigned)(st.st_mode & 07777));
	}
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	if (listen(m->listen_fd, MGMT_MAX_CLIENTS) < 0) {
		ret = tern_error_set(err, -errno, "mgmt: listen %s: %s", m->path, strerror(errno));
		unlink(m->path);
		return ret;
	}
	return 0;
}

/* Remove the socket file, unless someone replaced it with another file. */
static void server_unlink(struct mgmt_server *m)
{
	struct stat st;

	if (!lstat(m->path, &st) && st.st_dev == m->dev && st.st_ino == m->ino)
		unlink(m->path);
}

static void server_free(struct mgmt_server *m)
{
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->wake_fd >= 0)
		close(m->wake_fd);
	pthread_mutex_destroy(&m->qlock);
	free(m);
}

TERN_EXPORT int tern_mgmt_listen(struct tern_session *s, const char *path, struct tern_error *err)
{
	struct mgmt_server *m;
	size_t len;
	int ret;

	if (!path || !(len = strlen(path)))
		return tern_error_set(err, -EINVAL, "mgmt: missing socket path");
	if (len >= sizeof(m->path))
		return tern_error_set(err, -ENAMETOOLONG, "mgmt: socket path longer than %zu bytes",
				      sizeof(m->path) - 1);
	if (tern_observer_find(s, &mgmt_observer))
		return tern_error_set(err, -EBUSY, "mgmt: this session has a server already");
	m = calloc(1, sizeof(*m));
	if (!m)
		return tern_error_set(err, -ENOMEM, "out of memory");
	m->s = s;
	m->listen_fd = -1;
	m->idle_ms = MGMT_IDLE_MS;
	memcpy(m->path, path, len + 1);
	pthread_mutex_init(&m->qlock, NULL);
	m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->wake_fd < 0) {
		ret = tern_error_set(err, -errno, "mgmt: eventfd: %s", strerror(errno));
		goto err_server;
	}
	ret = prepare_path(path, err);
	if (ret)
		goto err_server;
	ret = server_bind(m, err);
	if (ret)
		goto err_server;
	ret = -pthread_create(&m->thread, NULL, server_thread, m);
	if (ret) {
		tern_error_set(err, ret, "mgmt: starting the server thread: %s", strerror(-ret));
		goto err_unlink;
	}
	ret = tern_observer_add(s, &mgmt_observer, m, err);
	if (ret) {
		server_stop(m);
		return ret;
	}
	return 0;

err_unlink:
	server_unlink(m);
err_server:
	server_free(m);
	return ret;
}

/* Stop the thread, remove the socket, free the server (no subscription). */
static void server_stop(struct mgmt_server *m)
{
	__atomic_store_n(&m->quit, true, __ATOMIC_RELEASE);
	mgmt_wake(m);
	pthread_join(m->thread, NULL);
	server_unlink(m);
	server_free(m);
}

TERN_EXPORT void tern_mgmt_close(struct tern_session *s)
{
	struct mgmt_server *m = tern_observer_find(s, &mgmt_observer);

	/* Unsubscribe first: once that returned no hook posts to @m; a
	 * concurrent close (or the session's free) that got there first
	 * owns @m, and we leave it alone. */
	if (!m || tern_observer_remove(s, &mgmt_observer, m))
		return;
	server_stop(m);
}

void mgmt_set_idle_ms(struct tern_session *s, uint32_t idle_ms)
{
	/* tests only: no close may race this */
	struct mgmt_server *m = tern_observer_find(s, &mgmt_observer);

	if (m) {
		__atomic_store_n(&m->idle_ms, idle_ms, __ATOMIC_RELAXED);
		mgmt_wake(m); /* its poll() timeout was computed with the old bound */
	}
}
