/* SPDX-License-Identifier: MIT */
/*
 * The RAM digest for verify-ram. Both sides hash every block in chunks of
 * 64 MiB on a few threads at once (memory bandwidth, not one core, is the
 * limit), then fold the chunk hashes in block and chunk order, so the result
 * does not depend on which thread took which chunk.
 *
 * The chunk hash runs four independent multiply-xorshift lanes over 8-byte
 * words (one lane per word of each 32 bytes) so the multiplies overlap; it
 * is a checksum against lost or misplaced pages, not a cryptographic hash.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "core_priv.h"

#define DIGEST_CHUNK (64ull << 20)
#define DIGEST_MAX_THREADS 8
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

static void hash_chunk(const uint8_t *p, uint64_t len, uint64_t seed, uint64_t out[2])
{
	uint64_t a = seed, b = seed ^ P2, c = ~seed, d = seed * P1, i, w[4];

	for (i = 0; i + 32 <= len; i += 32) {
		memcpy(w, p + i, 32);
		a = mix(a, w[0]);
		b = mix(b, w[1]);
		c = mix(c, w[2]);
		d = mix(d, w[3]);
	}
	for (; i + 8 <= len; i += 8) {
		memcpy(w, p + i, 8);
		a = mix(a, w[0]);
	}
	out[0] = fold(a ^ fold(b) ^ (len * P2));
	out[1] = fold(c ^ fold(d) ^ len);
}

struct digest_job {
	struct tern_session *s;
	uint64_t nchunks;
	uint64_t *chunk_block; /* block index per chunk */
	uint64_t *chunk_off;
	uint64_t (*out)[2];
	uint64_t next; /* atomic */
	/* the calling thread's, between its chunks (immutable) */
	void (*tick)(struct tern_session *s);
	pthread_t caller;
	uint32_t named; /* atomic: the threads that named themselves */
};

static void *digest_worker(void *arg)
{
	struct digest_job *j = arg;

	for (;;) {
		uint64_t k = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		const struct tern_ram_block *b;
		uint64_t len;

		if (k >= j->nchunks)
			return NULL;
		b = j->s->blocks[j->chunk_block[k]];
		len = MIN(DIGEST_CHUNK, b->size - j->chunk_off[k]);
		hash_chunk(b->host + j->chunk_off[k], len, k + 1, j->out[k]);
		if (j->tick && pthread_equal(pthread_self(), j->caller))
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

int ram_digest_compute(struct tern_session *s, struct ram_digest *ret,
		       void (*tick)(struct tern_session *s), struct tern_error *err)
{
	pthread_t threads[DIGEST_MAX_THREADS];
	struct digest_job j = {.s = s, .tick = tick, .caller = pthread_self()};
	uint64_t k = 0, h0 = P1, h1 = P2;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nthreads, started = 0, i;
	uint32_t bi;

	for (bi = 0; bi < s->nblocks; bi++)
		j.nchunks += DIV_ROUND_UP(s->blocks[bi]->size, DIGEST_CHUNK);
	j.chunk_block = calloc(j.nchunks + 1, sizeof(*j.chunk_block));
	j.chunk_off = calloc(j.nchunks + 1, sizeof(*j.chunk_off));
	j.out = calloc(j.nchunks + 1, sizeof(*j.out));
	if (!j.chunk_block || !j.chunk_off || !j.out) {
		free(j.chunk_block);
		free(j.chunk_off);
		free(j.out);
		return tern_error_set(err, -ENOMEM, "RAM digest: out of memory");
	}
	for (bi = 0; bi < s->nblocks; bi++) {
		uint64_t off;

		for (off = 0; off < s->blocks[bi]->size; off += DIGEST_CHUNK) {
			j.chunk_block[k] = bi;
			j.chunk_off[k] = off;
			k++;
		}
	}
	nthreads = (int)MIN(MAX(ncpu, 1), DIGEST_MAX_THREADS);
	if ((uint64_t)nthreads > j.nchunks)
		nthreads = (int)MAX(j.nchunks, 1);
	/* This thread is one of the workers. */
	for (i = 1; i < nthreads; i++)
		if (!pthread_create(&threads[i], NULL, digest_thread, &j))
			started++;
	cpu_thread_switch(&s->cpu_main, TERN_CPU_DIGEST);
	digest_worker(&j);
	cpu_thread_switch(&s->cpu_main, TERN_CPU_MIGRATION);
	for (i = 1; i <= started; i++)
		pthread_join(threads[i], NULL);

	for (k = 0; k < j.nchunks; k++) {
		h0 = fold(mix(h0, j.out[k][0]) ^ j.chunk_block[k]);
		h1 = fold(mix(h1, j.out[k][1]) ^ j.chunk_off[k]);
	}
	ret->h[0] = h0;
	ret->h[1] = h1;
	free(j.chunk_block);
	free(j.chunk_off);
	free(j.out);
	return 0;
}
