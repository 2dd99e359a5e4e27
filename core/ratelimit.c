/* SPDX-License-Identifier: MIT */
/*
 * Rate windows. The sender reports its running totals after every batch;
 * every RATE_WINDOW_NS of sending time the window closes and yields the wire
 * bandwidth and the RAM rate (pages moved, zero or not, times the page size)
 * over it. Time the sender spends idle at sync points is not counted, so a
 * short round does not make the link look slow.
 *
 * max-bandwidth is enforced over the same window: once a window has carried
 * its share (max x window), the sender sleeps until the window ends.
 */
#include "core_priv.h"

void ratelimit_init(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram)
{
	memset(rl, 0, sizeof(*rl));
	rl->win_start_ns = now_ns;
	rl->win_start_bytes = wire_bytes;
	rl->win_start_ram = ram;
	rl->busy_start_ns = now_ns;
}

static void close_window(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes,
			 uint64_t ram)
{
	uint64_t dt = now_ns - rl->win_start_ns;

	if (dt) {
		rl->bw_bps = (uint64_t)((double)(wire_bytes - rl->win_start_bytes) * 1e9 / dt);
		rl->ram_bps = (uint64_t)((double)(ram - rl->win_start_ram) * 1e9 / dt);
	}
	rl->win_start_ns = now_ns;
	rl->win_start_bytes = wire_bytes;
	rl->win_start_ram = ram;
}

uint64_t ratelimit_account(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes,
			   uint64_t ram, uint64_t max_bps)
{
	uint64_t elapsed, allowed, sent;

	if (!rl->busy_start_ns) {
		/* Resuming after a sync point: start a fresh window. */
		rl->busy_start_ns = now_ns;
		rl->win_start_ns = now_ns;
		rl->win_start_bytes = wire_bytes;
		rl->win_start_ram = ram;
	}
	elapsed = now_ns - rl->win_start_ns;
	if (elapsed >= RATE_WINDOW_NS) {
		close_window(rl, now_ns, wire_bytes, ram);
		return 0;
	}
	if (!max_bps)
		return 0;
	sent = wire_bytes - rl->win_start_bytes;
	allowed = (uint64_t)((double)max_bps * RATE_WINDOW_NS / 1e9);
	if (sent < allowed)
		return 0;
	return RATE_WINDOW_NS - elapsed;
}

void ratelimit_idle(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram)
{
	/* A partial window still tells the rate if it carried enough. */
	if (rl->busy_start_ns && wire_bytes - rl->win_start_bytes >= (1u << 20) &&
	    now_ns > rl->win_start_ns)
		close_window(rl, now_ns, wire_bytes, ram);
	rl->busy_start_ns = 0;
}
