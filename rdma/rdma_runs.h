/* SPDX-License-Identifier: MIT */
/*
 * rdma_runs: a packet's pages as RDMA WRITEs. Each work request costs the
 * device a descriptor, so pages whose offsets follow each other become one
 * run; a run is cut where one work request cannot cover it: at chunk
 * boundaries (a write names one registration's key; pass chunk_shift 63 for
 * "no chunks", pin-all) and at @max_len bytes (the device's max message
 * size, or a tuning bound).
 */
#ifndef TERN_RDMA_RUNS_H
#define TERN_RDMA_RUNS_H

#include <stdint.h>

/**
 * struct rdma_run - one RDMA WRITE
 * @off: byte offset in the region
 * @len: bytes (npages * page_size)
 * @first: index of its first page in the packet
 * @npages: pages in the run
 */
struct rdma_run {
	uint64_t off;
	uint64_t len;
	uint32_t first;
	uint32_t npages;
};

/**
 * rdma_runs_build() - cut a packet's pages into runs
 * @off: @n page offsets (host order, page-aligned, in packet order)
 * @max_len: most bytes in one run; less than a page counts as one page
 * @runs: room for @n runs (never more are written: each run holds a page)
 *
 * Runs keep packet order, so the payload of the packet (pages in its order)
 * is the runs' data laid end to end. Returns how many runs were written.
 */
uint32_t rdma_runs_build(const uint64_t *off, uint32_t n, uint32_t page_size, uint32_t chunk_shift,
			 uint64_t max_len, struct rdma_run *runs);

#endif /* TERN_RDMA_RUNS_H */
