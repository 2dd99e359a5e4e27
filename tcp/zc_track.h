/* SPDX-License-Identifier: MIT */
/*
 * zc_track: which MSG_ZEROCOPY sends of one socket the kernel still holds.
 * Pure bookkeeping (no syscall), used by tcp_zc.c and its unit test.
 *
 * The kernel numbers a socket's zero-copy sends 0, 1, 2, ... (u32, wrapping):
 * every sendmsg(MSG_ZEROCOPY) that moved at least one byte takes the next
 * number, and one that failed without moving any takes none. When it lets go
 * of the memory of sends lo..hi it queues a notification on the socket's
 * error queue saying so (SO_EE_ORIGIN_ZEROCOPY, ee_info = lo, ee_data = hi,
 * inclusive), with SO_EE_CODE_ZEROCOPY_COPIED when it copied the data after
 * all (loopback, a device without scatter-gather). Ranges may come out of
 * order, and the kernel merges notifications of consecutive ranges into one
 * (keeping the first one's code, so "copied" is exact per notification, not
 * per send, where two merged).
 *
 * The tracker keeps the oldest send not yet completed (base), the next
 * number (next) and the ranges completed above base, sorted and merged, so
 * that "everything completed" is base == next. It holds ranges for at most
 * ZC_TRACK_MAX sends between base and next: the caller waits for
 * completions before it sends more (zc_track_span()).
 */
#ifndef TERN_ZC_TRACK_H
#define TERN_ZC_TRACK_H

#include <stdbool.h>
#include <stdint.h>

/* Sends between the oldest incomplete one and the next, at most. */
#define ZC_TRACK_MAX 64

/* [lo, hi) as offsets from ->base */
struct zc_range {
	uint32_t lo, hi;
};

struct zc_track {
	uint32_t base; /* oldest send not completed (== next: none in flight) */
	uint32_t next; /* the number the next send takes */
	uint32_t nr;   /* ranges in ->done */
	/* completed ranges above base: sorted, disjoint, never adjacent, never
	 * starting at 0 (that one moves base); at most ZC_TRACK_MAX / 2 */
	struct zc_range done[ZC_TRACK_MAX / 2 + 1];
	/* totals since init */
	uint64_t sent;
	uint64_t completed;
	uint64_t copied;
};

void zc_track_init(struct zc_track *t);

/* Record one send that moved bytes; returns its number. The caller checks
 * zc_track_span() < ZC_TRACK_MAX first. */
uint32_t zc_track_sent(struct zc_track *t);

/*
 * zc_track_complete() - the kernel reported sends @lo..@hi (inclusive, as in
 * the notification) done; @copied: with SO_EE_CODE_ZEROCOPY_COPIED.
 * Returns how many sends that completed, or -EPROTO (nothing changed) when
 * the range names a send that was never made or completed already.
 */
int zc_track_complete(struct zc_track *t, uint32_t lo, uint32_t hi, bool copied);

/* Sends from the oldest incomplete one to the last one made. */
static inline uint32_t zc_track_span(const struct zc_track *t)
{
	return t->next - t->base;
}

/* Sends made and not completed. */
uint32_t zc_track_inflight(const struct zc_track *t);

static inline bool zc_track_idle(const struct zc_track *t)
{
	return t->base == t->next;
}

#endif /* TERN_ZC_TRACK_H */
