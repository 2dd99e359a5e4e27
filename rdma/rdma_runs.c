/* SPDX-License-Identifier: MIT */
/*
 * rdma_runs: pages that follow each other in a region, as few RDMA WRITEs
 * as the chunking and the device's message size allow (rdma_runs.h).
 */
#include "rdma_runs.h"

uint32_t rdma_runs_build(const uint64_t *off, uint32_t n, uint32_t page_size, uint32_t chunk_shift,
			 uint64_t max_len, struct rdma_run *runs)
{
	uint64_t max_pages = max_len / page_size; /* 0: a page per run, as 1 */
	uint32_t nruns = 0;

	if (chunk_shift > 63)
		chunk_shift = 63; /* "no chunks" whatever the caller says: >> 64 is undefined */

	for (uint32_t i = 0; i < n;) {
		struct rdma_run *run = &runs[nruns++];
		uint64_t chunk = off[i] >> chunk_shift;

		run->off = off[i];
		run->first = i;
		run->npages = 1;
		for (i++; i < n; i++) {
			uint64_t next = off[i - 1] + page_size;

			if (off[i] != next || off[i] >> chunk_shift != chunk ||
			    run->npages >= max_pages)
				break;
			run->npages++;
		}
		run->len = (uint64_t)run->npages * page_size;
	}
	return nruns;
}
