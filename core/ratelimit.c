/* SPDX-License-Identifier: MIT */
/*
 * Rate windows and the bandwidth limit.
 *
 * Measurement: the sender reports its running totals after every batch;
 * every RATE_WINDOW_NS of sending the window closes and yields the wire
 * bandwidth and the RAM rate (pages moved, zero or not, times the page size)
 * over it. Time the sender spends idle at sync points is not counted, so a
 * short round does not make the link look slow; a partial window at the end
 * of a round counts only if it lasted RATE_MIN_PARTIAL_NS and carried 1 MiB,
 * so a burst into empty socket buffers does not make it look fast.
 *
 * Limit: a token bucket on the bytes the workers actually wrote. Credit
 * grows at max-bandwidth and is capped at one window's worth; bytes written
 * are debited whenever they are seen, including those that drained from the
 * queue while the sender slept, so the long-run rate is max-bandwidth
 * whatever the queue depth, and the burst is at most one window plus what
 * was queued.
 */
#include "core_priv.h"

#define RATE_MIN_PARTIAL_NS 20000000ull /* 20 ms */

void ratelimit_init(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram)
{
	memset(rl, 0, sizeof(*rl));
	rl->win_start_ns = now_ns;
	rl->win_start_bytes = wire_bytes;
	rl->win_start_ram = ram;
	rl->busy_start_ns = now_ns;
	rl->bucket_ns = now_ns;
	rl->bucket_bytes = wire_bytes;
}

static void close_window(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram)
{
	uint64_t dt = now_ns - rl->win_start_ns;

	/* A window in which nothing was written -- the sender slept off its
	 * max-bandwidth debt (one 2 MiB batch every 250 ms at 8 MiB/s) -- says
	 * nothing of the link: let it run on, so the next figure spreads the
	 * next bytes over all the time since the last ones, instead of reading
	 * 0 B/s (no switchover could be estimated) or one batch per window. */
	if (wire_bytes == rl->win_start_bytes)
		return;
	if (dt) {
		rl->bw_bps = (uint64_t)((double)(wire_bytes - rl->win_start_bytes) * 1e9 / dt);
		rl->ram_bps = (uint64_t)((double)(ram - rl->win_start_ram) * 1e9 / dt);
	}
	rl->win_start_ns = now_ns;
	rl->win_start_bytes = wire_bytes;
	rl->win_start_ram = ram;
}

/* Refill and debit the bucket; returns the ns to wait until it is not in debt. */
static uint64_t bucket_charge(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes,
			      uint64_t max_bps)
{
	double cap = (double)max_bps * RATE_WINDOW_NS / 1e9;

	rl->credit += (double)max_bps * (double)(now_ns - rl->bucket_ns) / 1e9;
	if (rl->credit > cap)
		rl->credit = cap;
	rl->credit -= (double)(wire_bytes - rl->bucket_bytes);
	rl->bucket_ns = now_ns;
	rl->bucket_bytes = wire_bytes;
	if (rl->credit >= 0)
		return 0;
	return (uint64_t)(-rl->credit * 1e9 / (double)max_bps);
}

uint64_t ratelimit_account(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram,
			   uint64_t max_bps)
{
	uint64_t wait;

	if (!rl->busy_start_ns) {
		/* Resuming after a sync point: a fresh measurement window. */
		rl->busy_start_ns = now_ns;
		rl->win_start_ns = now_ns;
		rl->win_start_bytes = wire_bytes;
		rl->win_start_ram = ram;
	}
	if (now_ns - rl->win_start_ns >= RATE_WINDOW_NS)
		close_window(rl, now_ns, wire_bytes, ram);
	if (max_bps && rl->bw_bps > max_bps)
		rl->bw_bps = max_bps;
	if (!max_bps) {
		/* Unlimited: keep the bucket current so a limit set later
		 * starts from now, not from a debt of everything sent. */
		rl->bucket_ns = now_ns;
		rl->bucket_bytes = wire_bytes;
		rl->credit = 0;
		return 0;
	}
	wait = bucket_charge(rl, now_ns, wire_bytes, max_bps);
	return MIN(wait, RATE_WINDOW_NS);
}

void ratelimit_idle(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram,
		    uint64_t max_bps)
{
	if (rl->busy_start_ns && wire_bytes - rl->win_start_bytes >= (1u << 20) &&
	    now_ns - rl->win_start_ns >= RATE_MIN_PARTIAL_NS)
		close_window(rl, now_ns, wire_bytes, ram);
	if (max_bps && rl->bw_bps > max_bps)
		rl->bw_bps = max_bps;
	rl->busy_start_ns = 0;
}
