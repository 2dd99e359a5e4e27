/* SPDX-License-Identifier: MIT */
/*
 * rdma_ring: span allocation in the destination's staging ring, and the
 * destination's check of what the source announced (rdma_ring.h).
 *
 * Both sides derive a span's place from the previous span's end alone: it
 * starts at (end % size) if it fits before the ring's end, at 0 otherwise.
 * So the receiver can tell exactly where the next span must be, and anything
 * else is a protocol error, not something to trust.
 */
#include "rdma_ring.h"

/* Bytes skipped before a span of @len that would start at position @pos. */
static uint64_t ring_skip(uint64_t size, uint64_t pos, uint64_t len)
{
	uint64_t to_end = size - pos % size;

	return len > to_end ? to_end : 0;
}

void rdma_ring_init(struct rdma_ring *r, uint64_t size)
{
	r->size = size;
	r->head = 0;
	r->tail = 0;
}

int rdma_ring_alloc(struct rdma_ring *r, uint64_t len, uint64_t *ret_off, uint64_t *ret_end)
{
	uint64_t skip, end;

	if (!len || len > r->size)
		return -EMSGSIZE;
	skip = ring_skip(r->size, r->head, len);
	end = r->head + skip + len;
	/*
	 * The span's bytes were last used one lap earlier, at positions
	 * [end - size, ...): they are free once the peer released them. An
	 * empty ring has nothing to overwrite, even if the skip plus the span
	 * are more than a lap (otherwise a large span after an odd position
	 * would never fit).
	 */
	if (r->head != r->tail && end - r->tail > r->size)
		return -EAGAIN;
	*ret_off = skip ? 0 : r->head % r->size;
	*ret_end = end;
	r->head = end;
	return 0;
}

int rdma_ring_release(struct rdma_ring *r, uint64_t end)
{
	if (end < r->tail || end > r->head)
		return -EPROTO;
	r->tail = end;
	return 0;
}

int rdma_ring_check(uint64_t size, uint64_t expect, uint64_t off, uint64_t len, uint64_t end,
		    uint64_t max_len, struct tern_error *err)
{
	uint64_t skip, want_off, want_end;

	if (!size)
		return tern_error_set(err, -EPROTO, "staging ring of size 0");
	if (!len)
		return tern_error_set(err, -EPROTO, "span len 0");
	if (len > max_len)
		return tern_error_set(err, -EPROTO, "span len %" PRIu64 " > max %" PRIu64, len,
				      max_len);
	if (off > size || len > size - off)
		return tern_error_set(err, -EPROTO,
				      "span off %" PRIu64 " + len %" PRIu64
				      " beyond the ring's %" PRIu64 " bytes",
				      off, len, size);
	skip = ring_skip(size, expect, len);
	want_off = skip ? 0 : expect % size;
	if (off != want_off)
		return tern_error_set(err, -EPROTO,
				      "span off %" PRIu64 ", expected %" PRIu64
				      " (previous end %" PRIu64 ", len %" PRIu64 ", ring %" PRIu64
				      ")",
				      off, want_off, expect, len, size);
	if (__builtin_add_overflow(expect, skip + len, &want_end))
		return tern_error_set(err, -EPROTO,
				      "span end %" PRIu64 ": previous end %" PRIu64
				      " + skip %" PRIu64 " + len %" PRIu64 " overflows",
				      end, expect, skip, len);
	if (end != want_end)
		return tern_error_set(err, -EPROTO,
				      "span end %" PRIu64 ", expected %" PRIu64
				      " (previous end %" PRIu64 " + skip %" PRIu64 " + len %" PRIu64
				      ")",
				      end, want_end, expect, skip, len);
	return 0;
}
