/* SPDX-License-Identifier: MIT */
/*
 * Live changes through the management socket, with a migration that
 * cannot converge on its own (downtime-limit 1 ms, a writer dirtying faster
 * than the link carries):
 *
 * bandwidth: max-bandwidth 8 MiB/s, then 32, then 4. After each change
 *	(and a settling time: bytes written under the old limit are still
 *	paid for under the new one) the bytes on the wire over a window must
 *	follow the limit: at least half of it, at most the limit plus the
 *	burst the limiter allows. Then unlimited and a large downtime-limit:
 *	it switches over within a few syncs.
 *
 * downtime: early in a round that re-sends the working set, downtime-limit
 *	goes from 1 ms to 2000 s. The round must end at once (the switchover
 *	rule is applied again) instead of sending the rest of it first: by
 *	the next sync, less than half of what the round still had to send has
 *	gone, and the whole migration moves less than finishing the round,
 *	then switching over, would have.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "e2e_converge.h"

/* ---- bandwidth ------------------------------------------------------------ */

static void configure_bandwidth(struct e2e_cfg *cfg)
{
	cfg->ram = 64 * MiB;
	cfg->ws = 32 * MiB;
	cfg->zero_pct = 50;
	cfg->dirty_rate = 64 * MiB;
	cfg->downtime_limit = 1;
	cfg->max_bandwidth = 8 * MiB;
	/* one channel: the burst the limiter allows is smaller (see below) */
	cfg->channels = 1;
}

/*
 * The limiter's promise (core/ratelimit.c): over any span, the wire carries
 * at most max-bandwidth x span plus one rate window's worth (100 ms) plus
 * what was queued to the workers (2 x channels + 1 batches of 2 MiB) --
 * the sender queues a batch or two before it sees their bytes written. The
 * windows below are long enough that this burst is under a third of what
 * they carry.
 */
static uint64_t burst_bytes(struct e2e_conv *c, uint64_t limit)
{
	return limit / 10 + (2ull * c->src.cfg->channels + 1) * 2 * MiB;
}

static void drive_bandwidth(struct e2e_conv *c)
{
	static const struct {
		uint64_t limit;
		unsigned int settle_ms, window_ms;
	} phases[] = {
	    {8 * MiB, 300, 3000},
	    {32 * MiB, 300, 1500},
	    /* the sender may owe a burst written at 32 MiB/s: 1 s pays for it */
	    {4 * MiB, 1000, 5000},
	};
	struct tern_stats st, a, b;
	size_t i;

	if (!e2e_conv_wait_status(c, TERN_STATUS_ACTIVE, 30000, &st)) {
		e2e_fail(&c->src.failures, "never active (status %s: %s)",
			 tern_status_name(st.status), st.error);
		return;
	}
	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		uint64_t limit = phases[i].limit, t0, t1, bytes, most, least;

		if (i && !e2e_conv_set(c, "max-bandwidth", limit))
			return;
		e2e_sleep_ms(phases[i].settle_ms);
		tern_stats_get(c->src.s, &a);
		t0 = e2e_now_ns();
		e2e_sleep_ms(phases[i].window_ms);
		tern_stats_get(c->src.s, &b);
		t1 = e2e_now_ns();
		if (a.status != TERN_STATUS_ACTIVE || b.status != TERN_STATUS_ACTIVE) {
			e2e_fail(&c->src.failures,
				 "max-bandwidth %" PRIu64 " MiB/s: the migration left active (%s) "
				 "before the rate could be measured",
				 limit / MiB, tern_status_name(b.status));
			return;
		}
		bytes = b.wire_bytes - a.wire_bytes;
		most = (uint64_t)((double)limit * (double)(t1 - t0) / 1e9) + burst_bytes(c, limit);
		least = (uint64_t)((double)limit * (double)(t1 - t0) / 1e9 / 2);
		e2e_note("max-bandwidth %" PRIu64 " MiB/s: %" PRIu64 " bytes in %" PRIu64
			 " ms: %.2f MiB/s (%.2fx; allowed %" PRIu64 " .. %" PRIu64 " bytes)",
			 limit / MiB, bytes, (t1 - t0) / 1000000,
			 (double)bytes * 1e9 / (double)(t1 - t0) / MiB,
			 (double)bytes * 1e9 / (double)(t1 - t0) / (double)limit, least, most);
		if (bytes < least || bytes > most)
			e2e_fail(
			    &c->src.failures,
			    "max-bandwidth %" PRIu64 " MiB/s, set live through the socket: the "
			    "wire carried %" PRIu64 " bytes in %" PRIu64 " ms (allowed %" PRIu64
			    " .. %" PRIu64 ": half the limit .. the limit plus its burst)",
			    limit / MiB, bytes, (t1 - t0) / 1000000, least, most);
	}
	/* Let it finish: no limit, and a downtime anything fits in. */
	tern_stats_get(c->src.s, &st);
	c->mark_rounds = st.rounds;
	e2e_conv_set(c, "max-bandwidth", 0);
	e2e_conv_set(c, "downtime-limit", 2000000);
}

/*
 * With nothing limiting it any more, the next sync must find that what
 * remains fits: the round ends (the limit changed), one sync decides, one
 * more after the destination caught up confirms, one with the guest
 * paused. A fourth is slack for a round that ended by itself meanwhile.
 */
static void after_bandwidth(struct e2e_conv *c, const struct e2e_report *rep)
{
	if (c->st.rounds <= c->mark_rounds + 4)
		return;
	e2e_fail(&c->src.failures,
		 "max-bandwidth 0 and downtime-limit 2000000 ms at round %" PRIu64
		 ", yet the switchover came only after round %" PRIu64,
		 c->mark_rounds, c->st.rounds);
	e2e_conv_note_rounds(c, c->mark_rounds);
}

const struct e2e_scenario e2e_scen_bandwidth = {
    .name = "bandwidth",
    .configure = configure_bandwidth,
    .drive = drive_bandwidth,
    .after = after_bandwidth,
    .completes = true,
};

/* ---- downtime -------------------------------------------------------------- */

static void configure_downtime(struct e2e_cfg *cfg)
{
	configure_bandwidth(cfg);
	/* one channel: fewer packets in flight blur "at once" less */
	/* every write a data page: each re-send counts in ram_transferred */
	cfg->no_zero_writes = true;
}

static void drive_downtime(struct e2e_conv *c)
{
	const uint64_t ws = c->src.cfg->ws;
	uint64_t deadline = e2e_now_ns() + 60000000000ull, left, moved, x0;
	struct tern_stats st, at;

	/* Early in a round (not the first) that re-sends most of the working set. */
	for (;;) {
		tern_stats_get(c->src.s, &st);
		if (st.status == TERN_STATUS_ACTIVE && st.rounds >= 2 && st.round_bytes >= ws / 2 &&
		    st.round_sent_bytes <= st.round_bytes / 5)
			break;
		if (e2e_status_final(st.status) || e2e_now_ns() > deadline) {
			e2e_fail(
			    &c->src.failures,
			    "no round >= 2 with round_bytes >= %" PRIu64
			    " and round_sent_bytes <= 20%% of it within 60 s (status %s, round "
			    "%" PRIu64 ", round_bytes %" PRIu64 ", round_sent_bytes %" PRIu64 ")",
			    ws / 2, tern_status_name(st.status), st.rounds, st.round_bytes,
			    st.round_sent_bytes);
			return;
		}
		e2e_sleep_ms(5);
	}
	left = st.round_bytes - st.round_sent_bytes;
	x0 = st.ram_transferred;
	if (!e2e_conv_set(c, "downtime-limit", 2000000))
		return;

	/* The next sync (or the switchover) must come before half the rest went. */
	deadline = e2e_now_ns() + 60000000000ull;
	for (;;) {
		tern_stats_get(c->src.s, &at);
		if (at.rounds > st.rounds || at.status != TERN_STATUS_ACTIVE)
			break;
		if (e2e_now_ns() > deadline) {
			e2e_fail(&c->src.failures, "round %" PRIu64 " did not end within 60 s",
				 st.rounds);
			return;
		}
		e2e_sleep_ms(2);
	}
	moved = at.ram_transferred - x0;
	e2e_note("downtime-limit 1 -> 2000000 ms in round %" PRIu64 " with %" PRIu64 " of %" PRIu64
		 " bytes left: %" PRIu64 " bytes later the round had ended (%s)",
		 st.rounds, left, st.round_bytes, moved, tern_status_name(at.status));
	if (moved >= left / 2)
		e2e_fail(&c->src.failures,
			 "downtime-limit raised live: round %" PRIu64 " went on for %" PRIu64
			 " more bytes (of %" PRIu64 " left) before the switchover rule was applied "
			 "again",
			 st.rounds, moved, left);
	c->mark_ram = x0;
	c->mark_left = left;
	c->mark_rounds = st.rounds;
}

/*
 * Finishing the round would have sent what it had left, and the switchover
 * then what the writer dirtied meanwhile: with every write a data page, most
 * of the working set. Ending it at once sends the working set (what was
 * left plus what was dirtied since) once, plus the packets in flight.
 */
static void after_downtime(struct e2e_conv *c, const struct e2e_report *rep)
{
	uint64_t bound = c->mark_ram + c->src.cfg->ws + c->mark_left / 2;

	if (!c->mark_left)
		return;
	e2e_note("ram_transferred %" PRIu64 " at the change, %" PRIu64 " at the end (bound %" PRIu64
		 ")",
		 c->mark_ram, c->st.ram_transferred, bound);
	if (c->st.ram_transferred >= bound)
		e2e_fail(&c->src.failures,
			 "ram_transferred %" PRIu64 " at the end, %" PRIu64
			 " when downtime-limit was raised: not below %" PRIu64
			 " (the working set plus half the round left): more was sent before "
			 "switching over",
			 c->st.ram_transferred, c->mark_ram, bound);
	/* the cut round's sync, the one after the destination caught up, the
	 * switchover's, and one of slack */
	if (c->st.rounds > c->mark_rounds + 4)
		e2e_fail(&c->src.failures,
			 "downtime-limit 2000000 ms in round %" PRIu64
			 ", yet the switchover came only after round %" PRIu64,
			 c->mark_rounds, c->st.rounds);
	if (c->src.failures)
		e2e_conv_note_rounds(c, c->mark_rounds);
}

const struct e2e_scenario e2e_scen_downtime = {
    .name = "downtime",
    .configure = configure_downtime,
    .drive = drive_downtime,
    .after = after_downtime,
    .completes = true,
    .pending = true,
};
