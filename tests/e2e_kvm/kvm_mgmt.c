/* SPDX-License-Identifier: MIT */
/*
 * A client for tern-vm's management socket (docs/MGMT.md): connect while the
 * process starts its server, send one request line and wait for its reply,
 * skipping event lines, while the pair's pipes are pumped so that neither
 * tern-vm blocks on a full stdout.
 */
#include "e2e_kvm.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Connect to the server at @path. tern-vm starts it once its migration (or
 * listening) started, so retry while @who runs, until @deadline.
 */
bool mgmt_connect(struct mgmt *m, const char *path, struct pair *p, const struct bench_proc *who,
		  uint64_t deadline)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	m->fd = -1;
	m->len = 0;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	while (bench_now_ns() < deadline && bench_proc_running(who)) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
			m->fd = fd;
			return true;
		}
		close(fd);
		pair_pump(p, 50);
	}
	return false;
}

void mgmt_close(struct mgmt *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

/*
 * Send the request line @req; return its reply (the next line that is not an
 * event), or NULL on EOF, a bad line or at @deadline. The pair is pumped
 * meanwhile.
 */
json_object *mgmt_call(struct mgmt *m, const char *req, struct pair *p, uint64_t deadline)
{
	size_t off = 0, n = strlen(req);

	if (m->fd < 0)
		return NULL;
	while (off < n) {
		ssize_t w = send(m->fd, req + off, n - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return NULL;
		off += (size_t)w;
	}
	for (;;) {
		char *nl = memchr(m->buf, '\n', m->len);
		struct pollfd pfd = {m->fd, POLLIN, 0};
		ssize_t r;

		if (nl) {
			json_object *o, *ev;

			*nl = '\0';
			o = json_tokener_parse(m->buf);
			m->len -= (size_t)(nl + 1 - m->buf);
			memmove(m->buf, nl + 1, m->len);
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return NULL;
			}
			if (!json_object_object_get_ex(o, "event", &ev))
				return o;
			json_object_put(o); /* an event: not our reply */
			continue;
		}
		if (bench_now_ns() >= deadline || m->len == sizeof(m->buf))
			return NULL;
		pair_pump(p, 10);
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		r = read(m->fd, m->buf + m->len, sizeof(m->buf) - m->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		m->len += (size_t)r;
	}
}

/* `query`: the session's status name into @buf ("" when there is no answer). */
const char *mgmt_status(struct mgmt *m, struct pair *p, uint64_t deadline, char *buf, size_t len)
{
	json_object *r = mgmt_call(m, "{\"cmd\":\"query\"}\n", p, deadline), *ret = NULL;

	buf[0] = '\0';
	if (r && json_object_object_get_ex(r, "return", &ret) && jstr(ret, "status"))
		snprintf(buf, len, "%s", jstr(ret, "status"));
	json_object_put(r);
	return buf;
}
