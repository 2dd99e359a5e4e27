/* SPDX-License-Identifier: MIT */
/*
 * rdma_ring: the staging ring for encoded payloads (compressed or xbzrle
 * pages cannot be written to their final address: the destination decodes
 * them first). The destination owns a registered ring of @size bytes per
 * channel; the source allocates spans in it in order, never wrapping a span
 * (an RDMA WRITE targets one contiguous range): a span that does not fit
 * before the end starts at 0, and the skipped tail counts as used. The source
 * RDMA-WRITEs the payload there and names (off, len, end) in the SEND that
 * follows. The destination frees spans in order by reporting the `end` of the
 * last span it is done with.
 *
 * Positions are monotonic u64 byte counts, never reduced modulo @size, so
 * "full" and "empty" cannot be confused and a wrap needs no special case;
 * 2^64 bytes are never reached.
 */
#ifndef TERN_RDMA_RING_H
#define TERN_RDMA_RING_H

#include <stdint.h>

#include "util/util.h"

/**
 * struct rdma_ring - the sender's view of the peer's staging ring
 * @size: bytes in the ring
 * @head: monotonic: bytes allocated, skips included
 * @tail: monotonic: bytes the peer released (tail <= head; head - tail <= size,
 *	except that a span allocated in an empty ring may follow a skip, so
 *	more than a lap apart: nothing else fits until the peer releases it)
 */
struct rdma_ring {
	uint64_t size;
	uint64_t head;
	uint64_t tail;
};

void rdma_ring_init(struct rdma_ring *r, uint64_t size);

/**
 * rdma_ring_alloc() - sender: room for @len contiguous bytes?
 * @ret_off: offset of the span in the ring
 * @ret_end: the monotonic position just after the span (what the peer
 *	reports once done)
 *
 * Returns 0; -EAGAIN: no room until the peer releases more (the ring is
 * unchanged, so a retry after rdma_ring_release() is safe); -EMSGSIZE: @len
 * is 0 or more than the ring's size.
 */
int rdma_ring_alloc(struct rdma_ring *r, uint64_t len, uint64_t *ret_off, uint64_t *ret_end);

/**
 * rdma_ring_release() - sender: the peer released up to @end
 *
 * -EPROTO when @end goes backwards or beyond what was allocated: the peer is
 * confused or hostile, and the ring is left unchanged.
 */
int rdma_ring_release(struct rdma_ring *r, uint64_t end);

/**
 * rdma_ring_check() - receiver: check a span the sender announced, before
 * reading it (the values come off the wire)
 * @expect: the end of the previous span (0 at first)
 *
 * The span must start at offset (expect % size) or, if @len would not fit
 * before the end, at 0; off + len <= size; end == the position after it;
 * 0 < len <= @max_len. Returns 0 or -EPROTO with a message naming the field
 * and values (the caller prefixes @err with the channel).
 */
int rdma_ring_check(uint64_t size, uint64_t expect, uint64_t off, uint64_t len, uint64_t end,
		    uint64_t max_len, struct tern_error *err);

#endif /* TERN_RDMA_RING_H */
