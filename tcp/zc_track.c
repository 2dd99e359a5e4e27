/* SPDX-License-Identifier: MIT */
/*
 * Completion bookkeeping of MSG_ZEROCOPY sends (see zc_track.h). Offsets from
 * base make the u32 wrap of the kernel's counter a non-event: a range is
 * valid iff its offsets fall below next - base, whatever the numbers are.
 */
#include <errno.h>
#include <string.h>

#include "zc_track.h"

void zc_track_init(struct zc_track *t)
{
	memset(t, 0, sizeof(*t));
}

uint32_t zc_track_sent(struct zc_track *t)
{
	t->sent++;
	return t->next++;
}

uint32_t zc_track_inflight(const struct zc_track *t)
{
	uint32_t n = zc_track_span(t), i;

	for (i = 0; i < t->nr; i++)
		n -= t->done[i].hi - t->done[i].lo;
	return n;
}

/* Drop ranges that start at 0 (they are complete up to their end): move base. */
static void advance_base(struct zc_track *t)
{
	uint32_t shift, i;

	if (!t->nr || t->done[0].lo)
		return;
	shift = t->done[0].hi;
	t->base += shift;
	t->nr--;
	memmove(&t->done[0], &t->done[1], t->nr * sizeof(t->done[0]));
	for (i = 0; i < t->nr; i++) {
		t->done[i].lo -= shift;
		t->done[i].hi -= shift;
	}
}

int zc_track_complete(struct zc_track *t, uint32_t lo, uint32_t hi, bool copied)
{
	uint32_t span = zc_track_span(t), a = lo - t->base, b = hi - t->base + 1, n, i, j;

	/* a..b-1 must lie within the sends in flight */
	if (a >= span || b > span || b <= a)
		return -EPROTO;
	/* the first range that ends after a; it must not overlap a..b */
	for (i = 0; i < t->nr && t->done[i].hi <= a; i++)
		;
	if (i < t->nr && t->done[i].lo < b)
		return -EPROTO;
	n = b - a;
	/* merge with the range before (ends at a) and the one after (starts at b) */
	if (i > 0 && t->done[i - 1].hi == a) {
		t->done[i - 1].hi = b;
		if (i < t->nr && t->done[i].lo == b) {
			t->done[i - 1].hi = t->done[i].hi;
			t->nr--;
			memmove(&t->done[i], &t->done[i + 1], (t->nr - i) * sizeof(t->done[0]));
		}
	} else if (i < t->nr && t->done[i].lo == b) {
		t->done[i].lo = a;
	} else {
		/* a new range; with span <= ZC_TRACK_MAX there is room (ranges
		 * are separated by at least one incomplete send) */
		if (t->nr >= sizeof(t->done) / sizeof(t->done[0]))
			return -EPROTO;
		for (j = t->nr; j > i; j--)
			t->done[j] = t->done[j - 1];
		t->done[i] = (struct zc_range){a, b};
		t->nr++;
	}
	advance_base(t);
	t->completed += n;
	if (copied)
		t->copied += n;
	return (int)n;
}
