/* SPDX-License-Identifier: MIT */
/*
 * The e2e tests' management client: a plain Unix-socket line reader and
 * json-c, no part of the library.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "e2e_mgmt.h"
#include "e2e_util.h"

int e2e_mgmt_open(struct e2e_mgmt *m, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	m->len = 0;
	m->events = json_object_new_array();
	m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0 || !m->events)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(m->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int ret = -errno;

		close(m->fd);
		m->fd = -1;
		return ret;
	}
	return 0;
}

void e2e_mgmt_close(struct e2e_mgmt *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	json_object_put(m->events);
	m->events = NULL;
}

struct json_object *e2e_mgmt_read(struct e2e_mgmt *m, int timeout_ms)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	if (m->fd < 0)
		return NULL;
	for (;;) {
		char *nl = memchr(m->buf, '\n', m->len);
		struct pollfd p = {.fd = m->fd, .events = POLLIN};
		uint64_t now;
		ssize_t n;

		if (nl) {
			struct json_object *o;

			*nl = '\0';
			o = json_tokener_parse(m->buf);
			m->len -= (size_t)(nl + 1 - m->buf);
			memmove(m->buf, nl + 1, m->len);
			if (o && !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				o = NULL;
			}
			return o;
		}
		now = e2e_now_ns();
		if (now >= deadline || m->len == sizeof(m->buf))
			return NULL;
		if (poll(&p, 1, (int)((deadline - now) / 1000000ull) + 1) <= 0)
			continue;
		n = recv(m->fd, m->buf + m->len, sizeof(m->buf) - m->len, 0);
		if (n <= 0)
			return NULL;
		m->len += (size_t)n;
	}
}

static bool is_event(struct json_object *o)
{
	return json_object_object_get_ex(o, "event", NULL);
}

struct json_object *e2e_mgmt_request(struct e2e_mgmt *m, const char *req)
{
	size_t len = strlen(req);
	char *line = malloc(len + 1);
	int ret;

	if (!line || m->fd < 0) {
		free(line);
		return NULL;
	}
	memcpy(line, req, len);
	line[len] = '\n';
	ret = e2e_write_full(m->fd, line, len + 1);
	free(line);
	if (ret < 0)
		return NULL;
	for (;;) {
		struct json_object *o = e2e_mgmt_read(m, E2E_MGMT_TIMEOUT_MS);

		if (!o || !is_event(o))
			return o;
		json_object_array_add(m->events, o);
	}
}

struct json_object *e2e_mgmt_wait_event(struct e2e_mgmt *m, const char *type, const char *to,
					int timeout_ms)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t i;

	for (i = 0;; i++) {
		struct json_object *o, *v;
		uint64_t now;

		if (i >= json_object_array_length(m->events)) {
			now = e2e_now_ns();
			if (now >= deadline)
				return NULL;
			o = e2e_mgmt_read(m, (int)((deadline - now) / 1000000ull) + 1);
			if (!o)
				return NULL;
			if (!is_event(o)) {
				/* a reply nobody waits for */
				json_object_put(o);
				i--;
				continue;
			}
			json_object_array_add(m->events, o);
		}
		o = json_object_array_get_idx(m->events, i);
		if (!json_object_object_get_ex(o, "event", &v) ||
		    strcmp(json_object_get_string(v), type))
			continue;
		if (!to || (json_object_object_get_ex(o, "to", &v) &&
			    !strcmp(json_object_get_string(v), to)))
			return o;
	}
}

bool e2e_mgmt_ok(struct json_object *reply)
{
	struct json_object *v;

	return reply && json_object_object_get_ex(reply, "ok", &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

const char *e2e_mgmt_error(struct json_object *reply)
{
	struct json_object *v;

	if (reply && json_object_object_get_ex(reply, "error", &v))
		return json_object_get_string(v);
	return "";
}
