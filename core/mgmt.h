/* SPDX-License-Identifier: MIT */
/*
 * Between the management server's two files (mgmt.c, the socket, and
 * mgmt_cmd.c, the protocol), and for its tests. The rest of core/ never
 * includes this: the server hears of the session's events as a subscriber
 * (tern_observer_add(), observe.c).
 */
#ifndef TERN_CORE_MGMT_H
#define TERN_CORE_MGMT_H

#include <stddef.h>
#include <stdint.h>

#include "tern/tern.h"

/* ---- between mgmt.c (the socket) and mgmt_cmd.c (the protocol) ---- */

/* What a request asks of its connection, beyond the reply. */
enum mgmt_action {
	MGMT_ACT_NONE = 0,
	MGMT_ACT_SUBSCRIBE,
	MGMT_ACT_UNSUBSCRIBE,
};

/*
 * mgmt_request() - run one request (@len bytes, without the newline; not
 * NUL-terminated) against @s. Return: the reply line, newline included,
 * malloc'ed (free it); NULL when out of memory.
 */
char *mgmt_request(struct tern_session *s, const char *line, size_t len, enum mgmt_action *ret_act);

/*
 * mgmt_set_idle_ms() - for tests: how long the running server of @s lets a
 * client send nothing (MGMT_IDLE_MS, 5 minutes, otherwise). Not public: an
 * operator has no reason to change it, and tests have no reason to wait.
 */
void mgmt_set_idle_ms(struct tern_session *s, uint32_t idle_ms);

#endif /* TERN_CORE_MGMT_H */
