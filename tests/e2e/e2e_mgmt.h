/* SPDX-License-Identifier: MIT */
/*
 * A management-socket client for the e2e tests (docs/MGMT.md): one JSON
 * request per line, one reply per line, events in between. Every read is
 * bounded by a poll timeout; a missing reply is a failure, not a hang.
 */
#ifndef TERN_E2E_MGMT_H
#define TERN_E2E_MGMT_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#define E2E_MGMT_TIMEOUT_MS 10000

struct e2e_mgmt {
	int fd;
	char buf[1 << 16];
	size_t len;
	struct json_object *events; /* an array of the events read so far */
};

/* Connect to @path. Returns 0 or -errno. */
int e2e_mgmt_open(struct e2e_mgmt *m, const char *path);
void e2e_mgmt_close(struct e2e_mgmt *m);
/* The next line as a JSON object (NULL on EOF, timeout or bad JSON). */
struct json_object *e2e_mgmt_read(struct e2e_mgmt *m, int timeout_ms);
/* Send @req (no newline) and return its reply; events met meanwhile are
 * kept in ->events. NULL when no reply came. */
struct json_object *e2e_mgmt_request(struct e2e_mgmt *m, const char *req);
/* Read events for up to @timeout_ms, keeping them; stops early once an
 * event of @type whose "to" is @to (NULL: any) arrived. Returns it (a
 * borrowed reference) or NULL. */
struct json_object *e2e_mgmt_wait_event(struct e2e_mgmt *m, const char *type, const char *to,
					int timeout_ms);
/* A reply's "ok", and its "error" ("" when none). */
bool e2e_mgmt_ok(struct json_object *reply);
const char *e2e_mgmt_error(struct json_object *reply);

#endif /* TERN_E2E_MGMT_H */
