/* SPDX-License-Identifier: MIT */
/*
 * A guest that dirties memory faster than the link carries it: the writer
 * rewrites a 16 MiB working set in order at 32 MiB/s, the link is shaped to
 * 8 MiB/s by max-bandwidth. Every round re-sends all of the working set, and
 * what remains never fits the 300 ms downtime-limit:
 *
 * timeout-cancel: migration-timeout 4 s, policy cancel: the migration ends
 *	`cancelled` with an error naming migration-timeout, not before the
 *	timeout, with the source guest running and never throttled.
 * converge: auto-converge (cpu-throttle-initial 50, -increment 20, max 99):
 *	the throttle callback is asked 50, 70, 90 ... while rounds do not
 *	shrink; once the writer runs slower than the link the migration
 *	completes, byte for byte and verify-ram `verified`; the throttle is
 *	set back to 0 at the end, and round events carry cpu_throttle_percent.
 * timeout-force: migration-timeout 4 s, policy force: it switches over
 *	anyway (downtime above the limit allowed) and completes byte for byte.
 *
 * Every setting goes through the management socket, as an operator's would.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "e2e_converge.h"

#define TIMEOUT_S 4
#define THROTTLE_INITIAL 50
#define THROTTLE_INCREMENT 20
#define THROTTLE_MAX 99

/*
 * The working set is twice what the link carries in a second and well over
 * the burst the limiter lets through at once (core/ratelimit.c: a window's
 * worth plus the queued batches, 6 MiB on one channel): so no round can go
 * out in one burst, short enough for the writer to leave little behind.
 */
static void configure(struct e2e_cfg *cfg)
{
	cfg->ram = 64 * MiB;
	cfg->ws = 16 * MiB;
	cfg->zero_pct = 90;
	cfg->dirty_rate = 32 * MiB;
	cfg->sequential = true;
	cfg->max_bandwidth = 8 * MiB;
	/* max-bandwidth stands for a link of 8 MiB/s: the switchover gets no
	 * more either (on loopback, learned, it would get GB/s and converge) */
	cfg->avail_switchover_bandwidth = 8 * MiB;
	cfg->downtime_limit = 300;
	cfg->channels = 1;
	cfg->verify = true;
	cfg->timeout_s = 120;
}

static int before_timeout(struct e2e_conv *c, const char *policy)
{
	struct json_object *r, *ret, *v;
	int bad = 0;

	if (!e2e_conv_set(c, "migration-timeout", TIMEOUT_S) ||
	    !e2e_conv_set_str(c, "migration-timeout-policy", policy))
		return -1;
	/* params reads back what was set, the policy as its name */
	r = e2e_mgmt_request(&c->m, "{\"cmd\":\"params\"}");
	if (!e2e_mgmt_ok(r) || !json_object_object_get_ex(r, "return", &ret)) {
		e2e_fail(&c->src.failures, "params: %s",
			 r ? json_object_to_json_string(r) : "no reply");
		bad = 1;
	} else {
		if (!json_object_object_get_ex(ret, "migration-timeout", &v) ||
		    !json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) != TIMEOUT_S) {
			e2e_fail(&c->src.failures, "params: migration-timeout is not %d: %s",
				 TIMEOUT_S, json_object_to_json_string(ret));
			bad = 1;
		}
		if (!json_object_object_get_ex(ret, "migration-timeout-policy", &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), policy)) {
			e2e_fail(&c->src.failures,
				 "params: migration-timeout-policy is not \"%s\": %s", policy,
				 json_object_to_json_string(ret));
			bad = 1;
		}
	}
	json_object_put(r);
	return bad ? -1 : 0;
}

/* The timeout counts from tern_migrate(): it must not fire before. */
static void check_not_early(struct e2e_conv *c)
{
	if (c->st.total_ms < TIMEOUT_S * 1000)
		e2e_fail(&c->src.failures,
			 "ended after %" PRIu64 " ms, before migration-timeout (%d s) ran out",
			 c->st.total_ms, TIMEOUT_S);
}

/* ---- timeout-cancel ---------------------------------------------------------- */

static int before_cancel(struct e2e_conv *c)
{
	return before_timeout(c, "cancel");
}

static void after_cancel(struct e2e_conv *c, const struct e2e_report *rep)
{
	unsigned int pauses, resumes;

	check_not_early(c);
	if (!strstr(c->st.error, "migration-timeout"))
		e2e_fail(&c->src.failures,
			 "cancelled with error '%s': it does not name "
			 "migration-timeout",
			 c->st.error);
	e2e_conv_pauses(c, &pauses, &resumes);
	if (pauses)
		e2e_fail(&c->src.failures, "policy cancel: the guest was paused %u time(s)",
			 pauses);
	if (e2e_conv_throttle_calls(c))
		e2e_fail(&c->src.failures, "auto-converge is off, yet throttle was called %u times",
			 e2e_conv_throttle_calls(c));
}

const struct e2e_scenario e2e_scen_timeout_cancel = {
    .name = "timeout-cancel",
    .configure = configure,
    .before = before_cancel,
    .after = after_cancel,
    .completes = false,
};

/* ---- timeout-force ------------------------------------------------------------- */

static int before_force(struct e2e_conv *c)
{
	return before_timeout(c, "force");
}

static void after_force(struct e2e_conv *c, const struct e2e_report *rep)
{
	check_not_early(c);
	e2e_note("forced: downtime %" PRIu64 " ms (limit %" PRIu64 " ms)", c->st.downtime_ms,
		 c->src.cfg->downtime_limit);
	if (!c->st.verified || !rep->stats.verified)
		e2e_fail(&c->src.failures, "verify-ram: source %s, destination %s",
			 c->st.verified ? "verified" : "not verified",
			 rep->stats.verified ? "verified" : "not verified");
	if (e2e_conv_throttle_calls(c))
		e2e_fail(&c->src.failures, "auto-converge is off, yet throttle was called %u times",
			 e2e_conv_throttle_calls(c));
}

const struct e2e_scenario e2e_scen_timeout_force = {
    .name = "timeout-force",
    .configure = configure,
    .before = before_force,
    .after = after_force,
    .completes = true,
    .pending = true,
};

/* ---- converge -------------------------------------------------------------------- */

static int before_converge(struct e2e_conv *c)
{
	if (!e2e_conv_cap(c, "auto-converge", true) ||
	    !e2e_conv_set(c, "cpu-throttle-initial", THROTTLE_INITIAL) ||
	    !e2e_conv_set(c, "cpu-throttle-increment", THROTTLE_INCREMENT) ||
	    !e2e_conv_set(c, "max-cpu-throttle", THROTTLE_MAX))
		return -1;
	return 0;
}

static void check_throttle_calls(struct e2e_conv *c)
{
	unsigned int n = e2e_conv_throttle_calls(c), i, want = THROTTLE_INITIAL;
	char seq[512] = "";
	size_t len = 0;

	for (i = 0; i < n && i < E2E_MAX_THROTTLE_CALLS && len < sizeof(seq) - 8; i++)
		len += (size_t)snprintf(seq + len, sizeof(seq) - len, "%s%u", i ? " " : "",
					c->src.throttle_pct[i]);
	e2e_note("throttle calls: %s", n ? seq : "(none)");
	if (n < 2 || n > E2E_MAX_THROTTLE_CALLS) {
		e2e_fail(&c->src.failures,
			 "throttle called %u time(s): expected a non-zero percent, then 0", n);
		return;
	}
	/* initial, then + increment per round that did not shrink, up to max */
	for (i = 0; i + 1 < n; i++) {
		if (c->src.throttle_pct[i] != want) {
			e2e_fail(&c->src.failures,
				 "throttle call %u asked %u%%, expected %u%% (calls: %s)", i + 1,
				 c->src.throttle_pct[i], want, seq);
			break;
		}
		want = want + THROTTLE_INCREMENT > THROTTLE_MAX ? THROTTLE_MAX
								: want + THROTTLE_INCREMENT;
	}
	if (c->src.throttle_pct[n - 1])
		e2e_fail(&c->src.failures, "the last throttle call asked %u%%, not 0",
			 c->src.throttle_pct[n - 1]);
}

/* Round events: each carries cpu_throttle_percent, and the throttle shows. */
static void check_round_events(struct e2e_conv *c)
{
	size_t i, n, rounds = 0;
	int64_t most = 0;

	/* the state event to completed comes after the last round event */
	e2e_mgmt_wait_event(&c->m, "state", "completed", 5000);
	n = json_object_array_length(c->m.events);
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(c->m.events, i), *v;

		if (!json_object_object_get_ex(o, "event", &v) ||
		    strcmp(json_object_get_string(v), "round"))
			continue;
		rounds++;
		if (!json_object_object_get_ex(o, "cpu_throttle_percent", &v) ||
		    !json_object_is_type(v, json_type_int)) {
			e2e_fail(&c->src.failures, "round event without cpu_throttle_percent: %s",
				 json_object_to_json_string(o));
			return;
		}
		if (json_object_get_int64(v) > most)
			most = json_object_get_int64(v);
		if (json_object_get_int64(v) < 0 || json_object_get_int64(v) > THROTTLE_MAX)
			e2e_fail(&c->src.failures, "round event: cpu_throttle_percent %" PRId64,
				 json_object_get_int64(v));
	}
	e2e_note("%zu round events, highest cpu_throttle_percent %" PRId64, rounds, most);
	if (!rounds)
		e2e_fail(&c->src.failures, "no round event reached the subscriber");
	else if (!most)
		e2e_fail(&c->src.failures, "no round event showed a non-zero cpu_throttle_percent");
}

static void after_converge(struct e2e_conv *c, const struct e2e_report *rep)
{
	if (!c->st.verified || !rep->stats.verified)
		e2e_fail(&c->src.failures, "verify-ram: source %s, destination %s",
			 c->st.verified ? "verified" : "not verified",
			 rep->stats.verified ? "verified" : "not verified");
	check_throttle_calls(c);
	check_round_events(c);
	e2e_note("the writer was kept off %" PRIu64 " ms in all",
		 __atomic_load_n(&c->src.writer.throttled_ns, __ATOMIC_RELAXED) / 1000000);
	if (__atomic_load_n(&c->src.writer.throttle_pct, __ATOMIC_RELAXED))
		e2e_fail(&c->src.failures, "the writer is still throttled after the end");
}

const struct e2e_scenario e2e_scen_converge = {
    .name = "converge",
    .configure = configure,
    .before = before_converge,
    .after = after_converge,
    .completes = true,
};
