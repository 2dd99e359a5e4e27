/* SPDX-License-Identifier: MIT */
/*
 * Region hints: fault destination memory in ahead of the pages.
 *
 * Writing into memory the destination never touched costs a page fault and
 * a cleared huge page per 2 MiB, and on a host that reclaims idle guest
 * memory much more (measured here: 1.5 s per GiB on one thread, 0.86 s on
 * two). Paid inside the receive path, it is paid serially with the copy.
 * So before round 1 the source tells the destination which 2 MiB regions
 * hold data (RAM_HINT), and threads there populate exactly those while
 * the pages travel. Regions that are all zero are not in the map, so they
 * stay unallocated, as the zero-page rule wants.
 *
 * Finding the regions is cheap: mincore() says which pages the source never
 * touched (zero without reading them); of the others, only the first cache
 * line of each page is read, and the first one that is not zero ends the
 * test for its region (on data: one line per region). A page whose data
 * starts past its first line leaves its region out of the map if every
 * other page does too: it then faults in as it lands, a cost and no error.
 * Reading resident zero memory in full cost the migration thread about
 * half of its CPU per GiB (a KVM guest's touched but zero pages).
 *
 * The map is a hint, never trusted for correctness: a page written after
 * the scan is caught by the dirty log like any other, and populating memory
 * never changes its content, so a stale or wrong map costs time, not data.
 *
 *   RAM_HINT payload: block u32 | region shift u8 (21) | regions u64 |
 *                     bitmap, one bit per region, LSB first
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compress/compress.h"
#include "core_priv.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define HINT_REGION_SHIFT 21
/* what region_has_data() reads of each resident page: its first cache line */
#define HINT_SAMPLE_BYTES 64

static uint64_t block_regions(const struct tern_ram_block *b)
{
	return DIV_ROUND_UP(b->size, 1ull << HINT_REGION_SHIFT);
}

/* Whether region @r of @b may hold a non-zero page. */
static bool region_has_data(const struct tern_ram_block *b, uint64_t r, uint32_t page,
			    unsigned char *vec)
{
	uint64_t off = r << HINT_REGION_SHIFT;
	uint64_t len = MIN(1ull << HINT_REGION_SHIFT, b->size - off), i;
	bool resident_known = !mincore(b->host + off, len, vec);

	for (i = 0; i < len / page; i++) {
		if (resident_known && !(vec[i] & 1))
			continue; /* never touched: zero */
		if (!page_is_zero(b->host + off + i * page, HINT_SAMPLE_BYTES))
			return true;
	}
	return false;
}

int hint_send(struct tern_session *s, uint64_t *ret_regions, struct tern_error *err)
{
	unsigned char *vec = malloc((1u << HINT_REGION_SHIFT) / s->page_size);
	uint64_t with_data = 0;
	struct buf b;
	uint32_t bi;
	int ret = 0;

	if (!vec)
		return tern_error_set(err, -ENOMEM, "RAM hint: out of memory");
	buf_init(&b);
	for (bi = 0; bi < s->nblocks && !ret; bi++) {
		const struct tern_ram_block *blk = s->blocks[bi];
		uint64_t n = block_regions(blk), r;

		buf_reset(&b);
		buf_put_u32(&b, bi);
		buf_put_u8(&b, HINT_REGION_SHIFT);
		buf_put_u64(&b, n);
		for (r = 0; r < n; r += 8) {
			uint8_t byte = 0;
			uint64_t k;

			for (k = 0; k < 8 && r + k < n; k++) {
				if (region_has_data(blk, r + k, s->page_size, vec)) {
					byte |= (uint8_t)(1u << k);
					with_data++;
				}
			}
			buf_put_u8(&b, byte);
		}
		if (b.oom || b.len > CTL_HINT_MAX) {
			ret = tern_error_set(err, -ENOMEM, "RAM hint for block '%s': %zu bytes",
					     blk->name, b.len);
			break;
		}
		ret = ctl_send(s->ctl, CTL_RAM_HINT, b.data, b.len);
		if (ret)
			tern_error_set(err, ret, "sending RAM_HINT: %s", strerror(-ret));
		__atomic_fetch_add(&s->ctl_bytes, CTL_HDR_SIZE + b.len, __ATOMIC_RELAXED);
	}
	buf_fini(&b);
	free(vec);
	*ret_regions = with_data;
	return ret;
}

/* ---- destination --------------------------------------------------------- */

struct hint_map {
	uint64_t nregions;
	uint8_t *bits; /* NULL until the block's hint arrived */
};

/*
 * Populating is the destination's one stage that is not per channel: one
 * thread moved about 16 GB/s of fresh memory on a 16-core host, 91% busy,
 * and capped the 16-channel runs. So it runs on one thread per two
 * channels (as many as the host has CPUs, at most PREFAULT_MAX_THREADS),
 * which take 2 MiB regions in order from one atomic cursor: together they
 * move ahead of the pages as one front, and none waits for another.
 */
#define PREFAULT_MAX_THREADS 8

struct prefault_thread {
	struct prefault *pf;
	uint32_t index;
	pthread_t thread;
};

struct prefault {
	struct tern_session *s;
	struct prefault_thread threads[PREFAULT_MAX_THREADS];
	uint32_t nthreads; /* started */
	uint64_t cursor;   /* atomic: the next region, counted over all blocks */
	uint64_t nregions; /* over all blocks */
	bool stop;	   /* atomic */
	bool unsupported;  /* atomic: MADV_POPULATE_WRITE refused */
	struct hint_map maps[MAX_BLOCKS];
};

int hint_receive(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err)
{
	const struct tern_ram_block *blk;
	uint64_t n, nbytes;
	uint32_t bi;
	uint8_t shift;
	struct rd r;

	rd_init(&r, p, len);
	bi = rd_u32(&r);
	shift = rd_u8(&r);
	n = rd_u64(&r);
	if (r.bad)
		return tern_error_set(err, -EPROTO, "RAM_HINT: truncated (%u bytes)", len);
	if (bi >= s->nblocks)
		return tern_error_set(err, -EPROTO, "RAM_HINT: block %u of %u", bi, s->nblocks);
	blk = s->blocks[bi];
	if (shift != HINT_REGION_SHIFT || n != block_regions(blk))
		return tern_error_set(err, -EPROTO,
				      "RAM_HINT for block '%s': %" PRIu64
				      " regions of 2^%u bytes, expected %" PRIu64 " of 2^%u",
				      blk->name, n, shift, block_regions(blk), HINT_REGION_SHIFT);
	nbytes = DIV_ROUND_UP(n, 8);
	if (rd_left(&r) != nbytes)
		return tern_error_set(
		    err, -EPROTO, "RAM_HINT for block '%s': %zu bitmap bytes, expected %" PRIu64,
		    blk->name, rd_left(&r), nbytes);
	if (!s->prefault) {
		s->prefault = calloc(1, sizeof(*s->prefault));
		if (!s->prefault)
			return tern_error_set(err, -ENOMEM, "RAM_HINT: out of memory");
		s->prefault->s = s;
	}
	if (s->prefault->nthreads || s->prefault->maps[bi].bits)
		return tern_error_set(err, -EPROTO, "RAM_HINT for block '%s' sent twice",
				      blk->name);
	s->prefault->maps[bi].bits = malloc(nbytes);
	if (!s->prefault->maps[bi].bits)
		return tern_error_set(err, -ENOMEM, "RAM_HINT: out of memory");
	memcpy(s->prefault->maps[bi].bits, rd_bytes(&r, nbytes), nbytes);
	s->prefault->maps[bi].nregions = n;
	return 0;
}

/* Region @idx, counted over all blocks: its block and its index there. */
static bool region_at(const struct prefault *pf, uint64_t idx, uint32_t *bi, uint64_t *r)
{
	const struct tern_session *s = pf->s;
	uint32_t b;

	for (b = 0; b < s->nblocks; b++) {
		if (idx < pf->maps[b].nregions) {
			*bi = b;
			*r = idx;
			return true;
		}
		idx -= pf->maps[b].nregions;
	}
	return false;
}

static void *prefault_main(void *arg)
{
	struct prefault_thread *pt = arg;
	struct prefault *pf = pt->pf;
	struct tern_session *s = pf->s;
	CPU_THREAD(cpu, &s->cpu, TERN_CPU_PREFAULT, "tern-prefault/%u", pt->index);
	unsigned char resident;
	uint64_t idx, r;
	uint32_t bi;

	while (!__atomic_load_n(&pf->stop, __ATOMIC_RELAXED) &&
	       !__atomic_load_n(&pf->unsupported, __ATOMIC_RELAXED)) {
		const struct tern_ram_block *blk;
		uint64_t off;

		idx = __atomic_fetch_add(&pf->cursor, 1, __ATOMIC_RELAXED);
		if (idx >= pf->nregions || !region_at(pf, idx, &bi, &r))
			break;
		if (!(pf->maps[bi].bits[r / 8] & (1u << (r % 8))))
			continue;
		blk = s->blocks[bi];
		off = r << HINT_REGION_SHIFT;
		/* Pages landed there already (a worker faulted it in): the front
		 * passed this region, so skip ahead rather than race the workers
		 * for it -- two faults racing on one huge page each allocate and
		 * clear 2 MiB, and one copy is thrown away. */
		if (!mincore(blk->host + off, s->page_size, &resident) && (resident & 1))
			continue;
		/* Not supported (before Linux 5.14) or not anonymous memory:
		 * the pages fault in as they land instead. */
		if (madvise(blk->host + off, MIN(1ull << HINT_REGION_SHIFT, blk->size - off),
			    MADV_POPULATE_WRITE) &&
		    errno == EINVAL)
			__atomic_store_n(&pf->unsupported, true, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* One thread per two channels, within the CPUs and PREFAULT_MAX_THREADS. */
static uint32_t prefault_threads(const struct tern_session *s)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t n = DIV_ROUND_UP(MAX(s->nchannels, 1u), 2);

	n = MIN(n, PREFAULT_MAX_THREADS);
	if (cpus > 0 && n > (uint32_t)cpus)
		n = (uint32_t)cpus;
	return MAX(n, 1u);
}

void hint_prefault_start(struct tern_session *s)
{
	struct prefault *pf = s->prefault;
	uint32_t bi, i, n;

	if (!pf || pf->nthreads)
		return;
	for (bi = 0; bi < s->nblocks; bi++)
		if (pf->maps[bi].bits) /* a block without its hint: not populated */
			pf->nregions += pf->maps[bi].nregions;
		else
			break;
	n = prefault_threads(s);
	/* Best effort: without the threads, pages fault in as they land. */
	for (i = 0; i < n; i++) {
		pf->threads[i] = (struct prefault_thread){.pf = pf, .index = i};
		if (pthread_create(&pf->threads[i].thread, NULL, prefault_main, &pf->threads[i]))
			break;
		pf->nthreads++;
	}
}

void hint_prefault_stop(struct tern_session *s)
{
	struct prefault *pf = s->prefault;
	uint32_t bi, i;

	if (!pf)
		return;
	__atomic_store_n(&pf->stop, true, __ATOMIC_RELAXED);
	for (i = 0; i < pf->nthreads; i++)
		pthread_join(pf->threads[i].thread, NULL);
	for (bi = 0; bi < MAX_BLOCKS; bi++)
		free(pf->maps[bi].bits);
	free(pf);
	s->prefault = NULL;
}
