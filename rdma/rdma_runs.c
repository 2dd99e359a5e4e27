/* SPDX-License-Identifier: MIT */
/* rdma_runs: skeleton, implementation follows. */
#include "rdma_runs.h"

uint32_t rdma_runs_build(const uint64_t *off, uint32_t n, uint32_t page_size, uint32_t chunk_shift,
			 uint64_t max_len, struct rdma_run *runs)
{
	return 0;
}
