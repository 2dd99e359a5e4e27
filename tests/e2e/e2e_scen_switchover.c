/* SPDX-License-Identifier: MIT */
/*
 * The switchover's rate under max-bandwidth (issue 14), on loopback, with
 * a writer that re-dirties its working set faster than the limit carries
 * it: priced at max-bandwidth's rate, no round would ever fit downtime-limit
 * (8 MiB dirtied per round against the 1.2 MiB that 300 ms at 4 MiB/s
 * carries), and the migration would run into its timeout.
 *
 * switchover-learned: nothing declared. The rounds' unthrottled tails show
 *	the path far faster than the limit: the estimate must say "learned",
 *	at a rate well above max-bandwidth, and the migration complete with
 *	the downtime within the limit.
 *
 * switchover-declared: avail-switchover-bandwidth 1 GB/s, set through the
 *	socket before the start: the estimate must use exactly it ("declared")
 *	and the migration complete within the limit.
 *
 * The shaped link (the path itself is the limit) and a declaration far
 * above what the path gives are tests/e2e/switchover-link.sh.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "e2e_converge.h"

#define DECLARED_BPS 1000000000ull

static void configure_switchover(struct e2e_cfg *cfg)
{
	cfg->ram = 32 * MiB;
	cfg->ws = 8 * MiB;
	cfg->zero_pct = 50;
	cfg->dirty_rate = 16 * MiB;
	cfg->downtime_limit = 300;
	cfg->max_bandwidth = 4 * MiB;
	cfg->channels = 2;
}

static int before_declared(struct e2e_conv *c)
{
	return e2e_conv_set(c, "avail-switchover-bandwidth", DECLARED_BPS) ? 0 : -1;
}

static void check_downtime(struct e2e_conv *c)
{
	if (c->st.downtime_ms > c->src.cfg->downtime_limit)
		e2e_fail(
		    &c->src.failures,
		    "downtime %" PRIu64 " ms over downtime-limit %" PRIu64 " ms (ram part %" PRIu64
		    " us, estimated %" PRIu64 " us at %" PRIu64 " B/s, %s)",
		    c->st.downtime_ms, c->src.cfg->downtime_limit, c->st.downtime_ram_us,
		    c->st.expected_ram_us, c->st.switchover_bandwidth_bps, c->st.switchover_rate);
}

static void after_learned(struct e2e_conv *c, const struct e2e_report *rep)
{
	(void)rep;
	e2e_note("switchover priced at %" PRIu64 " B/s (%s), max-bandwidth %" PRIu64 " B/s",
		 c->st.switchover_bandwidth_bps, c->st.switchover_rate, c->src.cfg->max_bandwidth);
	if (strcmp(c->st.switchover_rate, "learned"))
		e2e_fail(&c->src.failures,
			 "the estimate's rate is \"%s\", not \"learned\" from the rounds' "
			 "unthrottled tails",
			 c->st.switchover_rate);
	if (c->st.switchover_bandwidth_bps < 4 * c->src.cfg->max_bandwidth)
		e2e_fail(&c->src.failures,
			 "learned %" PRIu64 " B/s on loopback: not above 4x max-bandwidth",
			 c->st.switchover_bandwidth_bps);
	check_downtime(c);
}

static void after_declared(struct e2e_conv *c, const struct e2e_report *rep)
{
	(void)rep;
	if (strcmp(c->st.switchover_rate, "declared") ||
	    c->st.switchover_bandwidth_bps != DECLARED_BPS)
		e2e_fail(&c->src.failures,
			 "the estimate used %" PRIu64 " B/s (%s), not the declared %llu",
			 c->st.switchover_bandwidth_bps, c->st.switchover_rate,
			 (unsigned long long)DECLARED_BPS);
	check_downtime(c);
}

const struct e2e_scenario e2e_scen_switchover_learned = {
    .name = "switchover-learned",
    .configure = configure_switchover,
    .after = after_learned,
    .completes = true,
    .pending = true,
};

const struct e2e_scenario e2e_scen_switchover_declared = {
    .name = "switchover-declared",
    .configure = configure_switchover,
    .before = before_declared,
    .after = after_declared,
    .completes = true,
    .pending = true,
};
