/* SPDX-License-Identifier: MIT */
/* rdma_regcache: skeleton, implementation follows. */
#include <stdlib.h>

#include "rdma_regcache.h"

int rdma_regcache_new(const struct tern_ram_region *regions, uint32_t nregions,
		      uint32_t chunk_shift, uint64_t limit, const struct rdma_reg_ops *ops,
		      void *opaque, struct rdma_regcache **ret, struct tern_error *err)
{
	return tern_error_set(err, -ENOSYS, "rdma_regcache: not implemented yet");
}

int rdma_regcache_get(struct rdma_regcache *c, uint32_t region, uint64_t off, uint64_t len,
		      uint64_t seq, uint32_t *ret_key, struct tern_error *err)
{
	return tern_error_set(err, -ENOSYS, "rdma_regcache: not implemented yet");
}

void rdma_regcache_completed(struct rdma_regcache *c, uint64_t seq)
{
}

void rdma_regcache_clear(struct rdma_regcache *c)
{
}

void rdma_regcache_stats(const struct rdma_regcache *c, struct rdma_regcache_stats *st)
{
	memset(st, 0, sizeof(*st));
}

void rdma_regcache_free(struct rdma_regcache *c)
{
}
