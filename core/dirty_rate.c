/* SPDX-License-Identifier: MIT */
/*
 * The guest's dirty rate as an operator reads it (dirty_pages_rate): pages
 * newly dirtied per second of guest run time, over a window of at least
 * DIRTY_RATE_WINDOW_NS made of whole sync intervals.
 *
 * One sync interval alone says little. Syncs come every few milliseconds
 * when rounds are short (and twice in a row when the precopy loop waits for
 * an acknowledgement and syncs again), and a page count over 5 ms is mostly
 * noise; so intervals add up until their run time reaches the window, and
 * only then is a rate published (QEMU's dirty-pages-rate also waits for a
 * period of at least 1 s). A round longer than the window is a window of
 * its own: the rate is never split inside a sync interval.
 *
 * The first sync is not counted, nor the interval after it (the bulk round):
 * a KVM log with KVM_DIRTY_LOG_INITIALLY_SET reports every page at the
 * first sync, and while the bulk round sends everything the manual-protect
 * log only sees writes to chunks the sender has re-armed already, so what
 * the second sync reports depends on how far the sender got, not on the
 * guest. The clock starts at the first sync after the bulk round was sent
 * (dirty_rate_bulk_sent()); syncs before it (the first, and the one the
 * loop may add when all RAM fits the downtime at once) count for nothing.
 *
 * Run time is the wall time between syncs less the time the guest was
 * paused (the switchover's final sync). An auto-converge throttle is not
 * taken out: the throttled guest still runs, only slower, and the rate it
 * dirties at under the throttle is what the link has to beat (and how an
 * operator sees the throttle work); cpu_throttle_percent says how much of
 * that is the throttle.
 *
 * Until a window closes the published rate is 0, which means unknown, with
 * a window length of 0 beside it. Migration thread only; the session's
 * figures are stored atomically for the readers.
 */
#include "core_priv.h"

void dirty_rate_init(struct dirty_rate *dr)
{
	memset(dr, 0, sizeof(*dr));
}

void dirty_rate_bulk_sent(struct dirty_rate *dr)
{
	dr->bulk_sent = true;
}

bool dirty_rate_sync(struct dirty_rate *dr, uint64_t now_ns, uint64_t newly, uint64_t paused_ns)
{
	uint64_t run;

	if (!dr->bulk_sent || !dr->clock) {
		/* the clock starts at the end of the bulk round */
		dr->clock = dr->bulk_sent;
		dr->last_ns = now_ns;
		return false;
	}
	run = now_ns > dr->last_ns ? now_ns - dr->last_ns : 0;
	run = run > paused_ns ? run - paused_ns : 0;
	dr->last_ns = now_ns;
	dr->win_pages += newly;
	dr->win_ns += run;
	if (dr->win_ns < DIRTY_RATE_WINDOW_NS)
		return false;
	dr->rate = (uint64_t)((double)dr->win_pages * 1e9 / (double)dr->win_ns);
	dr->rate_win_ns = dr->win_ns;
	dr->win_pages = 0;
	dr->win_ns = 0;
	return true;
}
