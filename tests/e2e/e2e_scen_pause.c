/* SPDX-License-Identifier: MIT */
/*
 * pause-before-switchover: a migration that converges on its own (a slow
 * writer, an unlimited link) stops with the guest paused in
 * `pre-switchover` and stays there until the operator says:
 *
 * pause-continue: `continue` through the socket finishes it, byte for byte;
 *	downtime_wait_us covers at least the time the test kept it waiting.
 * pause-cancel: `cancel` through the socket ends it `cancelled`: the source
 *	guest resumed and running, the destination's never started.
 *
 * Before the start, `continue` is refused: with the capability off, and
 * with it on but no migration in pre-switchover.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "e2e_converge.h"

#define HOLD_MS 300

static void configure(struct e2e_cfg *cfg)
{
	cfg->ram = 64 * MiB;
	cfg->ws = 8 * MiB;
	cfg->zero_pct = 50;
	cfg->dirty_rate = 4 * MiB;
	cfg->max_bandwidth = 0;
	cfg->downtime_limit = 300;
	cfg->channels = 2;
	cfg->verify = true;
	cfg->timeout_s = 90;
}

static int before(struct e2e_conv *c)
{
	e2e_conv_expect(c, "{\"cmd\":\"continue\"}", false, "pause-before-switchover is off");
	if (!e2e_conv_cap(c, "pause-before-switchover", true))
		return -1;
	e2e_conv_expect(c, "{\"cmd\":\"continue\"}", false, "not pre-switchover");
	return 0;
}

/* Reach pre-switchover and hold it there; returns when it was seen. */
static uint64_t hold(struct e2e_conv *c)
{
	unsigned int pauses, resumes;
	struct tern_stats st;
	uint64_t seen, iter;

	if (!e2e_conv_wait_status(c, TERN_STATUS_PRE_SWITCHOVER, 60000, &st)) {
		e2e_fail(&c->src.failures, "never in pre-switchover (status %s: %s)",
			 tern_status_name(st.status), st.error);
		return 0;
	}
	seen = e2e_now_ns();
	e2e_conv_pauses(c, &pauses, &resumes);
	if (pauses != 1 || !e2e_writer_is_parked(&c->src.writer))
		e2e_fail(&c->src.failures,
			 "pre-switchover, yet the guest was paused %u time(s) (parked: %s)", pauses,
			 e2e_writer_is_parked(&c->src.writer) ? "yes" : "no");
	iter = e2e_writer_iter(&c->src.writer);
	e2e_sleep_ms(HOLD_MS);
	tern_stats_get(c->src.s, &st);
	if (st.status != TERN_STATUS_PRE_SWITCHOVER)
		e2e_fail(&c->src.failures, "left pre-switchover by itself: %s %u ms later (%s)",
			 tern_status_name(st.status), HOLD_MS, st.error);
	if (e2e_writer_iter(&c->src.writer) != iter)
		e2e_fail(&c->src.failures, "the guest wrote %" PRIu64 " pages in pre-switchover",
			 e2e_writer_iter(&c->src.writer) - iter);
	if (!e2e_mgmt_wait_event(&c->m, "state", "pre-switchover", 5000))
		e2e_fail(&c->src.failures, "no state event to pre-switchover");
	return seen;
}

static void drive_continue(struct e2e_conv *c)
{
	uint64_t seen = hold(c), now;

	if (!seen)
		return;
	now = e2e_now_ns();
	c->waited_us = (now - seen) / 1000;
	e2e_conv_expect(c, "{\"cmd\":\"continue\"}", true, NULL);
}

static void after_continue(struct e2e_conv *c, const struct e2e_report *rep)
{
	if (!c->st.verified || !rep->stats.verified)
		e2e_fail(&c->src.failures, "verify-ram: source %s, destination %s",
			 c->st.verified ? "verified" : "not verified",
			 rep->stats.verified ? "verified" : "not verified");
	e2e_conv_expect(c, "{\"cmd\":\"continue\"}", false, "completed, not pre-switchover");
}

const struct e2e_scenario e2e_scen_pause_continue = {
    .name = "pause-continue",
    .configure = configure,
    .before = before,
    .drive = drive_continue,
    .after = after_continue,
    .completes = true,
};

static void drive_cancel(struct e2e_conv *c)
{
	if (hold(c))
		e2e_conv_expect(c, "{\"cmd\":\"cancel\"}", true, NULL);
}

static void after_cancel(struct e2e_conv *c, const struct e2e_report *rep)
{
	unsigned int pauses, resumes;

	e2e_conv_pauses(c, &pauses, &resumes);
	if (pauses != 1 || resumes != 1)
		e2e_fail(
		    &c->src.failures,
		    "cancelled in pre-switchover: paused %u time(s), resumed %u (expected 1, 1)",
		    pauses, resumes);
}

const struct e2e_scenario e2e_scen_pause_cancel = {
    .name = "pause-cancel",
    .configure = configure,
    .before = before,
    .drive = drive_cancel,
    .after = after_cancel,
    .completes = false,
};
