/* SPDX-License-Identifier: MIT */
/*
 * rdma_regcache: a channel's registration cache, used when rdma-pin-all is
 * off. Guest RAM is registered in chunks of 1 << chunk_shift bytes (default
 * 20: 1 MiB) as it is first used, so that a migration pins only what it
 * sends instead of the whole guest; at most @limit bytes stay registered, and
 * beyond that the least recently used chunk whose work requests have all
 * completed is released (a chunk still named by a work request in flight
 * must stay registered, or the device would fault on it).
 *
 * One cache per use (the source's own lkeys; the destination's rkeys as the
 * source holds them; ...), owned by one thread: no lock. The lookup is on the
 * per-packet path, so it is O(1) and allocates nothing. Registration itself
 * is done by the caller's ops (ibv_reg_mr() in the transport, a fake in the
 * unit tests): this file includes no rdma-core header.
 */
#ifndef TERN_RDMA_REGCACHE_H
#define TERN_RDMA_REGCACHE_H

#include <stdint.h>

#include "util/transport.h"
#include "util/util.h"

#define RDMA_CHUNK_SHIFT_DEFAULT 20

struct rdma_regcache;

/**
 * struct rdma_reg_ops - how the cache registers and releases a chunk
 * @reg: register chunk @chunk of region @region = [addr, addr + len) (len is
 *	the chunk size, shorter for a region's last chunk); *ret_key: what a
 *	work request names (lkey or rkey); *ret_handle: given back to dereg().
 *	Returns 0 or a negative errno with @err set; the cache keeps nothing of
 *	a failed call.
 * @dereg: release what reg() returned as @handle; called exactly once per
 *	successful reg().
 */
struct rdma_reg_ops {
	int (*reg)(void *opaque, uint32_t region, uint64_t chunk, uint8_t *addr, uint64_t len,
		   uint32_t *ret_key, void **ret_handle, struct tern_error *err);
	void (*dereg)(void *opaque, uint32_t region, uint64_t chunk, void *handle);
};

/**
 * struct rdma_regcache_stats - what the cache did, for xport_stats
 * @pinned_bytes: bytes registered now
 * @pinned_peak: the most bytes ever registered at once
 * @reg_ns: time spent in reg() (CLOCK_MONOTONIC), the cost pin-all avoids
 * @chunks_registered: successful reg() calls
 * @evictions: chunks released to stay under the limit (not by clear())
 * @hits: rdma_regcache_get() calls that found their chunk registered
 * @misses: rdma_regcache_get() calls that had to register it
 */
struct rdma_regcache_stats {
	uint64_t pinned_bytes, pinned_peak, reg_ns, chunks_registered, evictions, hits, misses;
};

/**
 * rdma_regcache_new() - a cache over @nregions guest RAM regions
 * @chunk_shift: log2 of the chunk size (RDMA_CHUNK_SHIFT_DEFAULT; 12..40)
 * @limit: most bytes registered at once; raised to at least 4 chunks, since
 *	a 2 MiB packet may straddle three and one more must be freeable
 * @ops, @opaque: registration backend; @ops is not copied and must outlive
 *	the cache
 *
 * @regions is read now (host, size) and not kept. Returns 0 or -EINVAL /
 * -ENOMEM with @err set.
 */
int rdma_regcache_new(const struct tern_ram_region *regions, uint32_t nregions,
		      uint32_t chunk_shift, uint64_t limit, const struct rdma_reg_ops *ops,
		      void *opaque, struct rdma_regcache **ret, struct tern_error *err);

/**
 * rdma_regcache_get() - the key covering [off, off + len) of @region
 *
 * The range must lie inside one chunk (-EINVAL otherwise, or when outside the
 * region or @len is 0): a work request names one key, so the caller cuts its
 * writes at chunk boundaries (rdma_runs_build()). The chunk is registered now
 * if it was not (reg() timed into reg_ns). @seq: the sequence number of the
 * work request that will use it; the chunk is not released before
 * rdma_regcache_completed(c, s) with s >= seq. -EBUSY when the limit is
 * reached and every registered chunk is still in use: reap completions, call
 * rdma_regcache_completed(), retry (@err is not set then: it is flow control,
 * and a message left there would hide a later real error). An error of reg()
 * is returned as is, and the chunk stays unregistered.
 */
int rdma_regcache_get(struct rdma_regcache *c, uint32_t region, uint64_t off, uint64_t len,
		      uint64_t seq, uint32_t *ret_key, struct tern_error *err);

/**
 * rdma_regcache_completed() - every work request with sequence number <= @seq
 * has completed; chunks used by none later become evictable. A @seq lower
 * than one reported before is ignored (completions are monotonic).
 */
void rdma_regcache_completed(struct rdma_regcache *c, uint64_t seq);

/**
 * rdma_regcache_clear() - release every chunk now (dereg() each), in flight
 * or not: the caller knows no work request uses them any more (the QP is
 * gone or drained). The cache stays usable.
 */
void rdma_regcache_clear(struct rdma_regcache *c);

void rdma_regcache_stats(const struct rdma_regcache *c, struct rdma_regcache_stats *st);

/* rdma_regcache_free() - clears first, then frees; NULL is a no-op. */
void rdma_regcache_free(struct rdma_regcache *c);

#endif /* TERN_RDMA_REGCACHE_H */
