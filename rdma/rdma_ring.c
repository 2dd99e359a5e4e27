/* SPDX-License-Identifier: MIT */
/* rdma_ring: skeleton, implementation follows. */
#include "rdma_ring.h"

void rdma_ring_init(struct rdma_ring *r, uint64_t size)
{
	r->size = size;
	r->head = 0;
	r->tail = 0;
}

int rdma_ring_alloc(struct rdma_ring *r, uint64_t len, uint64_t *ret_off, uint64_t *ret_end)
{
	return -ENOSYS;
}

int rdma_ring_release(struct rdma_ring *r, uint64_t end)
{
	return -ENOSYS;
}

int rdma_ring_check(uint64_t size, uint64_t expect, uint64_t off, uint64_t len, uint64_t end,
		    uint64_t max_len, struct tern_error *err)
{
	return tern_error_set(err, -ENOSYS, "rdma_ring: not implemented yet");
}
