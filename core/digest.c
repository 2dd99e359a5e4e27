/* SPDX-License-Identifier: MIT */
/*
 * The RAM digest for verify-ram: what it is, and how to compute it from
 * scratch. digest_track.c keeps it up to date during a migration, so that
 * only what changed late is hashed with the guest paused.
 *
 * Every block is cut into regions of 64 KiB (or one page, when pages are
 * larger); the last region of a block may be shorter. Each region is hashed
 * on its own, seeded with its block and index, and the region hashes are
 * folded in block and region order, with each block's size after its
 * regions. So the digest is a function of the RAM's content and layout
 * alone: which thread hashed a region, and when, cannot change it, and a
 * region hashed long ago stands for its content now as long as nothing was
 * written there since.
 *
 * The region hash is digest_hash.c's: eight lanes of products over 64-byte
 * stripes, vectorised where the CPU can, at memory bandwidth. It is a
 * checksum against lost or misplaced pages, not a cryptographic hash.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core_priv.h"

#define DIGEST_MAX_THREADS 8
/* items a thread should have at least before another one is started */
#define DIGEST_ITEMS_PER_THREAD 16
/* the caller's tick, every so many of its items */
#define DIGEST_TICK_ITEMS 64
#define P1 0x9e3779b97f4a7c15ull
#define P2 0xc2b2ae3d27d4eb4full

static inline uint64_t mix(uint64_t a, uint64_t w)
{
	a = (a ^ w) * P1;
	return a ^ (a >> 29);
}

static uint64_t fold(uint64_t h)
{
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	return h;
}

unsigned int digest_region_shift(uint32_t page_size)
{
	unsigned int shift = DIGEST_REGION_SHIFT;

	while ((1ull << shift) < page_size)
		shift++;
	return shift;
}

uint64_t digest_regions(const struct tern_ram_block *b, unsigned int shift)
{
	return DIV_ROUND_UP(b->size, 1ull << shift);
}

void digest_region_hash(const struct tern_ram_block *b, unsigned int shift, uint64_t r,
			struct ram_digest *out)
{
	uint64_t off = r << shift;

	digest_hash_bytes(b->host + off, MIN(1ull << shift, b->size - off),
			  ((uint64_t)b->index << 48) ^ (r + 1), out->h);
}

void digest_fold_init(struct ram_digest *f)
{
	f->h[0] = P1;
	f->h[1] = P2;
}

void digest_fold_region(struct ram_digest *f, uint32_t block, uint64_t r,
			const struct ram_digest *h)
{
	f->h[0] = fold(mix(f->h[0], h->h[0]) ^ block);
	f->h[1] = fold(mix(f->h[1], h->h[1]) ^ r);
}

void digest_fold_block_end(struct ram_digest *f, const struct tern_ram_block *b)
{
	f->h[0] = fold(mix(f->h[0], b->size));
	f->h[1] = fold(mix(f->h[1], b->npages));
}

/* ---- hashing many regions on a few threads -------------------------------- */

struct digest_job {
	struct tern_session *s;
	unsigned int shift;
	const uint64_t *items;
	struct ram_digest *const *out;
	uint64_t n;
	uint64_t next; /* atomic */
	/* the calling thread's, between its items (immutable) */
	void (*tick)(struct tern_session *s);
	pthread_t caller;
	uint32_t named; /* atomic: the threads that named themselves */
};

static void *digest_worker(void *arg)
{
	struct digest_job *j = arg;
	bool caller = j->tick && pthread_equal(pthread_self(), j->caller);
	uint64_t done = 0;

	for (;;) {
		uint64_t k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		uint64_t r;
		uint32_t bi;

		if (k >= j->n)
			return NULL;
		bi = DIGEST_ITEM_BLOCK(j->items[k]);
		r = DIGEST_ITEM_REGION(j->items[k]);
		digest_region_hash(j->s->blocks[bi], j->shift, r, &j->out[bi][r]);
		if (caller && ++done % DIGEST_TICK_ITEMS == 0)
			j->tick(j->s);
	}
}

/* A thread of the digest's own (the caller works too, in its own class). */
static void *digest_thread(void *arg)
{
	struct digest_job *j = arg;
	CPU_THREAD(cpu, &j->s->cpu, TERN_CPU_DIGEST, "tern-digest/%u",
		   __atomic_add_fetch(&j->named, 1, __ATOMIC_RELAXED));

	return digest_worker(j);
}

void digest_hash_items(struct tern_session *s, unsigned int shift, const uint64_t *items,
		       uint64_t n, struct ram_digest *const *out,
		       void (*tick)(struct tern_session *s))
{
	pthread_t threads[DIGEST_MAX_THREADS];
	struct digest_job j = {
	    .s = s,
	    .shift = shift,
	    .items = items,
	    .out = out,
	    .n = n,
	    .tick = tick,
	    .caller = pthread_self(),
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t want = DIV_ROUND_UP(n, DIGEST_ITEMS_PER_THREAD);
	int nthreads, started = 0, i;

	nthreads = (int)MIN(MIN((uint64_t)MAX(ncpu, 1), DIGEST_MAX_THREADS), MAX(want, 1));
	/* This thread is one of the workers; one that cannot start leaves its
	 * share to the others. */
	for (i = 1; i < nthreads; i++)
		if (!pthread_create(&threads[started + 1], NULL, digest_thread, &j))
			started++;
	cpu_thread_switch(&s->cpu_main, TERN_CPU_DIGEST);
	digest_worker(&j);
	cpu_thread_switch(&s->cpu_main, TERN_CPU_MIGRATION);
	for (i = 1; i <= started; i++)
		pthread_join(threads[i], NULL);
}

int ram_digest_compute(struct tern_session *s, struct ram_digest *ret_digest,
		       void (*tick)(struct tern_session *s), struct tern_error *err)
{
	unsigned int shift = digest_region_shift(s->page_size);
	struct ram_digest *out[MAX_BLOCKS] = {0}, f;
	uint64_t n = 0, k = 0, r, *items;
	uint32_t bi;
	int ret = 0;

	for (bi = 0; bi < s->nblocks; bi++)
		n += digest_regions(s->blocks[bi], shift);
	items = calloc(n + 1, sizeof(*items));
	for (bi = 0; bi < s->nblocks && items; bi++) {
		out[bi] = calloc(digest_regions(s->blocks[bi], shift), sizeof(**out));
		if (!out[bi])
			break;
		for (r = 0; r < digest_regions(s->blocks[bi], shift); r++)
			items[k++] = DIGEST_ITEM(bi, r);
	}
	if (!items || bi < s->nblocks) {
		ret = tern_error_set(err, -ENOMEM, "RAM digest: out of memory");
		goto out;
	}
	digest_hash_items(s, shift, items, n, out, tick);
	digest_fold_init(&f);
	for (bi = 0; bi < s->nblocks; bi++) {
		for (r = 0; r < digest_regions(s->blocks[bi], shift); r++)
			digest_fold_region(&f, bi, r, &out[bi][r]);
		digest_fold_block_end(&f, s->blocks[bi]);
	}
	*ret_digest = f;
out:
	for (bi = 0; bi < s->nblocks; bi++)
		free(out[bi]);
	free(items);
	return ret;
}
