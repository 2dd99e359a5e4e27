/* SPDX-License-Identifier: MIT */
/*
 * ternctl's side of the management socket (docs/MGMT.md): connect, send one
 * request line, read lines until the reply, handing the event lines that
 * arrive in between to a callback.
 *
 * Every function returns 0 or a negative errno with a message in @why that
 * names the socket path: -ENAMETOOLONG / the connect errno (cannot reach
 * it), -ETIMEDOUT (no reply within the timeout), -ECONNRESET (the server
 * closed the connection), -EPROTO (a line that is not a JSON object), -EINTR
 * (SIGINT or SIGTERM arrived: conn_interrupted()).
 */
#ifndef TERN_CLI_CONN_H
#define TERN_CLI_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Called for each event line: @ev is borrowed, @line its text without "\n". */
typedef void (*conn_event_fn)(void *opaque, struct json_object *ev, const char *line);

struct conn {
	int fd;
	const char *path;
	int timeout_ms;
	char *buf; /* bytes read and not yet consumed */
	size_t len, cap;
	uint64_t next_id;
	conn_event_fn on_event; /* may be NULL: events are dropped */
	void *opaque;
};

int conn_open(struct conn *c, const char *path, int timeout_ms, char *why, size_t len);
void conn_close(struct conn *c);

/*
 * conn_request() - send @req (borrowed; an "id" is added) and wait up to the
 * timeout for its reply, which is returned whole ({"ok":..}) in *@ret_reply.
 */
int conn_request(struct conn *c, struct json_object *req, struct json_object **ret_reply, char *why,
		 size_t len);

/* conn_wait() - dispatch events for @ms milliseconds. */
int conn_wait(struct conn *c, int ms, char *why, size_t len);

/* Catch SIGINT and SIGTERM from now on, so that waits return -EINTR. */
void conn_catch_signals(void);
/* The signal that interrupted a wait, or 0. */
int conn_interrupted(void);

#endif /* TERN_CLI_CONN_H */
