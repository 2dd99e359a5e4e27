/* SPDX-License-Identifier: MIT */
/*
 * The management socket, client side (conn.h). One request at a time: the
 * protocol answers requests in order, so the next non-event line is the
 * reply; its "id" is checked all the same when the server sent one.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "units.h"

/* The longest line ternctl accepts; a query reply is a few KiB. */
#define MAX_LINE (4u << 20)

static volatile sig_atomic_t caught_signal;

static void on_signal(int sig)
{
	caught_signal = sig;
}

void conn_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: poll() must return EINTR so that a wait ends */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int conn_interrupted(void)
{
	return caught_signal;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(char *why, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return code;
}

int conn_open(struct conn *c, const char *path, int timeout_ms, char *why, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->path = path;
	c->timeout_ms = timeout_ms;
	c->next_id = 1;
	if (!*path)
		return fail(why, len, -EINVAL, "the socket path is empty");
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(why, len, -ENAMETOOLONG, "%s: socket path too long (at most %zu bytes)",
			    path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(why, len, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		e = errno;
		close(fd);
		return fail(why, len, -e, "cannot connect to %s: %s", path, strerror(e));
	}
	c->fd = fd;
	return 0;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

static int send_all(struct conn *c, const char *data, size_t n, char *why, size_t len)
{
	while (n) {
		ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR && !caught_signal)
			continue;
		if (w < 0 && errno == EINTR)
			return fail(why, len, -EINTR, "interrupted");
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return fail(why, len, -ECONNRESET, "%s: the server closed the connection",
				    c->path);
		if (w < 0)
			return fail(why, len, -errno, "%s: send: %s", c->path, strerror(errno));
		data += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The next line (malloc'ed, without "\n") into *@ret_line, reading until
 * @deadline (monotonic ms). -ETIMEDOUT when it passes first.
 */
static int read_line(struct conn *c, int64_t deadline, char **ret_line, char *why, size_t len)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		struct pollfd pfd = {c->fd, POLLIN, 0};
		int64_t left;
		ssize_t r;
		int n;

		if (nl) {
			size_t n_line = (size_t)(nl - c->buf);
			char *line = malloc(n_line + 1);

			if (!line)
				return fail(why, len, -ENOMEM, "out of memory");
			memcpy(line, c->buf, n_line);
			line[n_line] = '\0';
			c->len -= n_line + 1;
			memmove(c->buf, nl + 1, c->len);
			*ret_line = line;
			return 0;
		}
		if (c->len >= MAX_LINE)
			return fail(why, len, -EPROTO,
				    "%s: a line from the server is over %u bytes", c->path,
				    MAX_LINE);
		if (caught_signal)
			return fail(why, len, -EINTR, "interrupted");
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(why, len, -errno, "%s: poll: %s", c->path, strerror(errno));
		if (!n)
			continue;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 16384;
			char *b = realloc(c->buf, cap);

			if (!b)
				return fail(why, len, -ENOMEM, "out of memory");
			c->buf = b;
			c->cap = cap;
		}
		r = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != ECONNRESET)
			return fail(why, len, -errno, "%s: read: %s", c->path, strerror(errno));
		if (r <= 0)
			return fail(why, len, -ECONNRESET, "%s: the server closed the connection",
				    c->path);
		c->len += (size_t)r;
	}
}

/* @line as a JSON object; NULL (with @why set) when it is not one. */
static struct json_object *parse_line(struct conn *c, const char *line, char *why, size_t len)
{
	enum json_tokener_error jerr = json_tokener_success;
	struct json_object *o = json_tokener_parse_verbose(line, &jerr);

	if (!o || !json_object_is_type(o, json_type_object)) {
		fail(why, len, -EPROTO,
		     "%s: the server sent something that is not a JSON object: "
		     "%.80s",
		     c->path, line);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * Read lines until @deadline: events go to the callback; the first other
 * line is returned in *@ret_reply, or is an error when @ret_reply is NULL.
 */
static int pump(struct conn *c, int64_t deadline, struct json_object **ret_reply, char *why,
		size_t len)
{
	for (;;) {
		struct json_object *o, *ev;
		char *line = NULL;
		int rc;

		rc = read_line(c, deadline, &line, why, len);
		if (rc)
			return rc;
		o = parse_line(c, line, why, len);
		if (!o) {
			free(line);
			return -EPROTO;
		}
		if (json_object_object_get_ex(o, "event", &ev)) {
			if (c->on_event)
				c->on_event(c->opaque, o, line);
			json_object_put(o);
			free(line);
			continue;
		}
		if (!ret_reply) {
			fail(why, len, -EPROTO, "%s: a reply nobody asked for: %.80s", c->path,
			     line);
			json_object_put(o);
			free(line);
			return -EPROTO;
		}
		free(line);
		*ret_reply = o;
		return 0;
	}
}

int conn_request(struct conn *c, struct json_object *req, struct json_object **ret_reply, char *why,
		 size_t len)
{
	uint64_t id = c->next_id++;
	struct json_object *reply = NULL, *rid;
	const char *txt;
	char *line;
	int rc;

	json_object_object_add(req, "id", json_object_new_uint64(id));
	txt = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!txt || asprintf(&line, "%s\n", txt) < 0)
		return fail(why, len, -ENOMEM, "out of memory");
	rc = send_all(c, line, strlen(line), why, len);
	free(line);
	if (rc)
		return rc;
	rc = pump(c, now_ms() + c->timeout_ms, &reply, why, len);
	if (rc == -ETIMEDOUT) {
		char t[UNITS_BUF];

		return fail(why, len, rc, "%s: no reply within %s", c->path,
			    units_fmt_ms((uint64_t)c->timeout_ms, t, sizeof(t)));
	}
	if (rc)
		return rc;
	/* Replies to malformed requests carry no id; ours always should. */
	if (json_object_object_get_ex(reply, "id", &rid) &&
	    (!json_object_is_type(rid, json_type_int) || json_object_get_uint64(rid) != id)) {
		fail(why, len, -EPROTO, "%s: a reply to another request (id %s, not %llu)", c->path,
		     json_object_to_json_string(rid), (unsigned long long)id);
		json_object_put(reply);
		return -EPROTO;
	}
	*ret_reply = reply;
	return 0;
}

int conn_wait(struct conn *c, int ms, char *why, size_t len)
{
	int rc = pump(c, now_ms() + ms, NULL, why, len);

	return rc == -ETIMEDOUT ? 0 : rc;
}
