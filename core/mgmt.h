/* SPDX-License-Identifier: MIT */
/*
 * The management server's hooks into the rest of core/ (mgmt.c). The
 * migration and load threads report what happens through mgmt_notify_*();
 * each is a single atomic load when no server runs, and never blocks on a
 * client when one does (see mgmt.c).
 */
#ifndef TERN_CORE_MGMT_H
#define TERN_CORE_MGMT_H

#include <stddef.h>
#include <stdint.h>

#include "tern/tern.h"

/* A transition @from -> @to was made (session_transition()). */
void mgmt_notify_state(struct tern_session *s, enum tern_status from, enum tern_status to);

/* Source: round @round's dirty-log sync completed and found @dirty_pages. */
void mgmt_notify_round(struct tern_session *s, uint64_t round, uint64_t dirty_pages);

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
