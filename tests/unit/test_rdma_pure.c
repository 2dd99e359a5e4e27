/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the parts of rdma/ that make no verbs call, and so run on
 * every machine: the registration cache (against a fake reg/dereg that
 * counts calls and checks handles), the staging ring (against a byte-level
 * model of which ring bytes hold live spans) and the cutting of a packet's
 * pages into RDMA WRITE runs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/cmocka_compat.h"
#include "util/util.h"
#include "rdma/rdma_regcache.h"
#include "rdma/rdma_ring.h"
#include "rdma/rdma_runs.h"

/* xorshift64: reproducible pseudo-random numbers for the tests. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- registration cache: a fake backend ---------------------------------- */

#define SHIFT 12 /* the smallest chunk: 4 KiB, so the test's RAM stays small */
#define CH ((uint64_t)1 << SHIFT)
#define R0_CHUNKS 16
#define R1_SIZE (2 * CH + CH / 2) /* a short last chunk */
#define NREGIONS 2
#define MAX_CHUNKS 16
#define LOG_MAX 256

struct fake_reg {
	uint8_t *host[NREGIONS];
	unsigned int reg_calls, dereg_calls;
	int fail_next;	   /* reg() returns this once, when nonzero */
	uint64_t delay_ns; /* reg() busy-waits this long: reg_ns must see it */
	/* per chunk: registered now?, registrations, releases, handle given */
	bool live[NREGIONS][MAX_CHUNKS];
	unsigned int regs[NREGIONS][MAX_CHUNKS], deregs[NREGIONS][MAX_CHUNKS];
	int handle[NREGIONS][MAX_CHUNKS];
	uint64_t last_len;
	uint8_t *last_addr;
	/* dereg order, as region * 100 + chunk */
	unsigned int log[LOG_MAX], nlog;
};

static uint32_t fake_key(uint32_t region, uint64_t chunk)
{
	return 0xabc00000u | region << 8 | (uint32_t)chunk;
}

static int fake_reg(void *opaque, uint32_t region, uint64_t chunk, uint8_t *addr, uint64_t len,
		    uint32_t *ret_key, void **ret_handle, struct tern_error *err)
{
	struct fake_reg *f = opaque;
	int rc = f->fail_next;

	assert_true(region < NREGIONS && chunk < MAX_CHUNKS);
	assert_false(f->live[region][chunk]);
	f->reg_calls++;
	f->last_len = len;
	f->last_addr = addr;
	if (f->delay_ns) {
		uint64_t t0 = tern_now_ns();

		while (tern_now_ns() - t0 < f->delay_ns)
			;
	}
	if (rc) {
		f->fail_next = 0;
		return tern_error_set(err, rc, "fake reg refused chunk %" PRIu64, chunk);
	}
	assert_ptr_equal(addr, f->host[region] + (chunk << SHIFT));
	f->live[region][chunk] = true;
	f->regs[region][chunk]++;
	*ret_key = fake_key(region, chunk);
	*ret_handle = &f->handle[region][chunk];
	return 0;
}

static void fake_dereg(void *opaque, uint32_t region, uint64_t chunk, void *handle)
{
	struct fake_reg *f = opaque;

	assert_true(region < NREGIONS && chunk < MAX_CHUNKS);
	assert_true(f->live[region][chunk]);
	assert_ptr_equal(handle, &f->handle[region][chunk]);
	f->live[region][chunk] = false;
	f->deregs[region][chunk]++;
	f->dereg_calls++;
	if (f->nlog < LOG_MAX)
		f->log[f->nlog++] = region * 100 + (unsigned int)chunk;
}

static const struct rdma_reg_ops fake_ops = {
    .reg = fake_reg,
    .dereg = fake_dereg,
};

struct rc_fixture {
	struct tern_ram_region regions[NREGIONS];
	struct fake_reg fake;
	struct rdma_regcache *c;
	struct tern_error err;
};

static int rc_setup(void **state)
{
	struct rc_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	f->regions[0].size = R0_CHUNKS * CH;
	f->regions[1].size = R1_SIZE;
	for (int i = 0; i < NREGIONS; i++) {
		f->regions[i].host = calloc(1, f->regions[i].size);
		if (!f->regions[i].host)
			return -1;
		f->fake.host[i] = f->regions[i].host;
	}
	return 0;
}

static int rc_teardown(void **state)
{
	struct rc_fixture *f = *state;

	if (f) {
		rdma_regcache_free(f->c);
		for (int i = 0; i < NREGIONS; i++)
			free(f->regions[i].host);
		free(f);
	}
	return 0;
}

static void rc_open(struct rc_fixture *f, uint64_t limit)
{
	assert_rc_equal(rdma_regcache_new(f->regions, NREGIONS, SHIFT, limit, &fake_ops, &f->fake,
					  &f->c, &f->err),
			0);
}

/* Gets chunk @chunk of region 0 whole, for work request @seq; returns the rc. */
static int rc_get_chunk(struct rc_fixture *f, uint64_t chunk, uint64_t seq)
{
	uint32_t key = 0;
	int rc = rdma_regcache_get(f->c, 0, chunk * CH, CH, seq, &key, &f->err);

	if (!rc)
		assert_uint_equal(key, fake_key(0, chunk));
	return rc;
}

static struct rdma_regcache_stats rc_stats(const struct rc_fixture *f)
{
	struct rdma_regcache_stats st;

	rdma_regcache_stats(f->c, &st);
	return st;
}

static void test_rc_hit_miss(void **state)
{
	struct rc_fixture *f = *state;
	uint32_t key = 0;

	rc_open(f, 0);
	assert_rc_equal(rdma_regcache_get(f->c, 0, 3 * CH + 8, 64, 1, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(0, 3));
	assert_uint_equal(f->fake.reg_calls, 1);
	assert_ptr_equal(f->fake.last_addr, f->regions[0].host + 3 * CH);
	assert_uint_equal(f->fake.last_len, CH);

	key = 0;
	assert_rc_equal(rdma_regcache_get(f->c, 0, 3 * CH, CH, 2, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(0, 3));
	assert_rc_equal(rdma_regcache_get(f->c, 1, 0, 16, 3, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(1, 0));
	assert_rc_equal(rdma_regcache_get(f->c, 0, 3 * CH + CH - 1, 1, 4, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(0, 3));
	assert_uint_equal(f->fake.reg_calls, 2);

	struct rdma_regcache_stats st = rc_stats(f);

	assert_uint_equal(st.hits, 2);
	assert_uint_equal(st.misses, 2);
	assert_uint_equal(st.chunks_registered, 2);
	assert_int_equal(f->err.code, 0);
}

static void test_rc_span_two_chunks_refused(void **state)
{
	struct rc_fixture *f = *state;
	uint32_t key = 7;

	rc_open(f, 0);
	assert_rc_equal(rdma_regcache_get(f->c, 0, CH - 8, 16, 1, &key, &f->err), -EINVAL);
	assert_non_null(strstr(f->err.msg, "chunk"));
	assert_rc_equal(rdma_regcache_get(f->c, 0, 2 * CH, CH + 1, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 0, CH - 1, 2, 1, &key, &f->err), -EINVAL);
	assert_uint_equal(key, 7); /* not written on failure */
	assert_uint_equal(f->fake.reg_calls, 0);
	/* ending exactly at the boundary is inside */
	assert_rc_equal(rdma_regcache_get(f->c, 0, CH - 8, 8, 1, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(0, 0));
}

static void test_rc_region_bounds(void **state)
{
	struct rc_fixture *f = *state;
	uint64_t end0 = R0_CHUNKS * CH;
	uint32_t key = 7;

	rc_open(f, 0);
	assert_rc_equal(rdma_regcache_get(f->c, NREGIONS, 0, 8, 1, &key, &f->err), -EINVAL);
	assert_non_null(strstr(f->err.msg, "region"));
	assert_rc_equal(rdma_regcache_get(f->c, 0, end0, 8, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 0, end0 - 8, 16, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 0, 8, 0, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 0, 8, UINT64_MAX, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 0, UINT64_MAX, 2, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 1, R1_SIZE, 1, 1, &key, &f->err), -EINVAL);
	assert_uint_equal(key, 7);
	assert_uint_equal(f->fake.reg_calls, 0);
	assert_rc_equal(rdma_regcache_get(f->c, 0, end0 - 8, 8, 1, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(0, R0_CHUNKS - 1));
}

static void test_rc_short_last_chunk(void **state)
{
	struct rc_fixture *f = *state;
	uint32_t key = 0;

	rc_open(f, 0);
	assert_rc_equal(rdma_regcache_get(f->c, 1, 2 * CH, CH / 2 + 1, 1, &key, &f->err), -EINVAL);
	assert_rc_equal(rdma_regcache_get(f->c, 1, 2 * CH + 16, CH / 2 - 16, 1, &key, &f->err), 0);
	assert_uint_equal(key, fake_key(1, 2));
	assert_uint_equal(f->fake.last_len, CH / 2);
	assert_ptr_equal(f->fake.last_addr, f->regions[1].host + 2 * CH);
	assert_uint_equal(rc_stats(f).pinned_bytes, CH / 2);
	assert_rc_equal(rdma_regcache_get(f->c, 1, CH, CH, 2, &key, &f->err), 0);
	assert_uint_equal(f->fake.last_len, CH);
	assert_uint_equal(rc_stats(f).pinned_bytes, CH + CH / 2);
	rdma_regcache_clear(f->c);
	assert_uint_equal(rc_stats(f).pinned_bytes, 0);
}

/* Limit 4 chunks: the least recently used idle chunk goes first. */
static void test_rc_lru_order(void **state)
{
	struct rc_fixture *f = *state;

	rc_open(f, 4 * CH);
	for (uint64_t k = 0; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, k + 1), 0);
	/* use 0 and 2 again: the LRU order becomes 1, 3, 0, 2 */
	assert_rc_equal(rc_get_chunk(f, 0, 5), 0);
	assert_rc_equal(rc_get_chunk(f, 2, 6), 0);
	rdma_regcache_completed(f->c, 6);
	assert_rc_equal(rc_get_chunk(f, 4, 7), 0);
	assert_rc_equal(rc_get_chunk(f, 5, 8), 0);
	assert_rc_equal(rc_get_chunk(f, 6, 9), 0);
	assert_uint_equal(f->fake.nlog, 3);
	assert_uint_equal(f->fake.log[0], 1);
	assert_uint_equal(f->fake.log[1], 3);
	assert_uint_equal(f->fake.log[2], 0);
	assert_true(f->fake.live[0][2]);
	assert_uint_equal(rc_stats(f).evictions, 3);
	assert_uint_equal(rc_stats(f).pinned_bytes, 4 * CH);
}

/* A chunk named by a work request in flight stays, whatever its LRU place. */
static void test_rc_never_evict_in_flight(void **state)
{
	struct rc_fixture *f = *state;
	struct rdma_regcache_stats st;

	rc_open(f, 4 * CH);
	/* chunk 0 is the oldest in LRU order but its work request (100) is late */
	assert_rc_equal(rc_get_chunk(f, 0, 100), 0);
	for (uint64_t k = 1; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, k), 0);

	/* nothing completed yet: nothing can go */
	assert_rc_equal(rc_get_chunk(f, 4, 101), -EBUSY);
	assert_int_equal(f->err.code, 0); /* flow control, not an error */
	assert_uint_equal(f->fake.reg_calls, 4);
	assert_uint_equal(f->fake.dereg_calls, 0);

	rdma_regcache_completed(f->c, 1);
	assert_rc_equal(rc_get_chunk(f, 4, 101), 0);
	assert_uint_equal(f->fake.log[0], 1); /* not 0: in flight */
	/* a hit raises a chunk's sequence number: 2 is reused by 102 */
	assert_rc_equal(rc_get_chunk(f, 2, 102), 0);
	rdma_regcache_completed(f->c, 99);
	assert_rc_equal(rc_get_chunk(f, 5, 103), 0);
	assert_uint_equal(f->fake.log[1], 3);
	/* left: 0 (100), 4 (101), 2 (102), 5 (103); completed 99 */
	assert_rc_equal(rc_get_chunk(f, 6, 104), -EBUSY);
	assert_uint_equal(f->fake.dereg_calls, 2);
	/* completions never go backwards */
	rdma_regcache_completed(f->c, 100);
	rdma_regcache_completed(f->c, 50);
	assert_rc_equal(rc_get_chunk(f, 6, 104), 0);
	assert_uint_equal(f->fake.log[2], 0);
	assert_rc_equal(rc_get_chunk(f, 7, 105), -EBUSY);
	rdma_regcache_completed(f->c, 101);
	assert_rc_equal(rc_get_chunk(f, 7, 105), 0);
	assert_uint_equal(f->fake.log[3], 4);
	st = rc_stats(f);
	assert_uint_equal(st.evictions, 4);
	assert_uint_equal(st.pinned_bytes, 4 * CH);
	assert_uint_equal(st.pinned_peak, 4 * CH);

	/* a later use with a lower number does not shorten a chunk's life */
	rdma_regcache_clear(f->c);
	assert_rc_equal(rc_get_chunk(f, 0, 200), 0);
	assert_rc_equal(rc_get_chunk(f, 0, 150), 0);
	for (uint64_t k = 1; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, 150), 0);
	rdma_regcache_completed(f->c, 150);
	assert_rc_equal(rc_get_chunk(f, 4, 201), 0);
	assert_true(f->fake.live[0][0]);
	assert_false(f->fake.live[0][1]);

	/* a chunk registered again starts afresh, not with its old number */
	rdma_regcache_clear(f->c);
	assert_rc_equal(rc_get_chunk(f, 0, 160), 0);
	for (uint64_t k = 1; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, 250), 0);
	rdma_regcache_completed(f->c, 160);
	assert_rc_equal(rc_get_chunk(f, 4, 251), 0);
	assert_false(f->fake.live[0][0]);
}

/* A limit under 4 chunks is raised to 4; seq 0 is a valid work request. */
static void test_rc_limit_raised(void **state)
{
	struct rc_fixture *f = *state;

	rc_open(f, 1);
	for (uint64_t k = 0; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, 0), 0);
	assert_rc_equal(rc_get_chunk(f, 4, 0), -EBUSY);
	rdma_regcache_completed(f->c, 0);
	assert_rc_equal(rc_get_chunk(f, 4, 0), 0);
	assert_uint_equal(rc_stats(f).evictions, 1);
	assert_uint_equal(rc_stats(f).pinned_peak, 4 * CH);
	rdma_regcache_free(f->c);
	f->c = NULL;

	/* and a limit above is kept, not rounded down */
	rc_open(f, 6 * CH);
	for (uint64_t k = 0; k < 6; k++)
		assert_rc_equal(rc_get_chunk(f, k, 1), 0);
	assert_rc_equal(rc_get_chunk(f, 6, 1), -EBUSY);
}

static void test_rc_stats(void **state)
{
	struct rc_fixture *f = *state;
	struct rdma_regcache_stats st;
	uint32_t key;

	f->fake.delay_ns = 2000000;
	rc_open(f, 4 * CH);
	assert_rc_equal(rc_get_chunk(f, 0, 1), 0);
	assert_rc_equal(rc_get_chunk(f, 1, 2), 0);
	assert_rc_equal(rdma_regcache_get(f->c, 1, 2 * CH, 8, 3, &key, &f->err), 0);
	st = rc_stats(f);
	assert_uint_equal(st.pinned_bytes, 2 * CH + CH / 2);
	assert_uint_equal(st.pinned_peak, 2 * CH + CH / 2);
	assert_true(st.reg_ns >= 3 * f->fake.delay_ns);
	assert_true(st.reg_ns < 3 * f->fake.delay_ns + 1000000000ull);

	/* hits cost no registration time */
	uint64_t reg_ns = st.reg_ns;

	assert_rc_equal(rc_get_chunk(f, 0, 4), 0);
	assert_rc_equal(rc_get_chunk(f, 1, 5), 0);
	st = rc_stats(f);
	assert_uint_equal(st.reg_ns, reg_ns);

	rdma_regcache_completed(f->c, 5);
	for (uint64_t k = 2; k < 5; k++)
		assert_rc_equal(rc_get_chunk(f, k, 6), 0);
	st = rc_stats(f);
	assert_uint_equal(st.pinned_bytes, 4 * CH);
	assert_uint_equal(st.pinned_peak, 4 * CH);
	assert_uint_equal(st.chunks_registered, 6);
	assert_uint_equal(st.misses, 6);
	assert_uint_equal(st.hits, 2);
	assert_uint_equal(st.evictions, 2); /* region 1's half chunk and chunk 0 */

	rdma_regcache_clear(f->c);
	st = rc_stats(f);
	assert_uint_equal(st.pinned_bytes, 0);
	assert_uint_equal(st.pinned_peak, 4 * CH);
	assert_uint_equal(st.evictions, 2); /* clear() is not eviction */
	assert_uint_equal(st.chunks_registered, 6);
	assert_rc_equal(rc_get_chunk(f, 0, 7), 0);
	st = rc_stats(f);
	assert_uint_equal(st.pinned_bytes, CH);
	assert_uint_equal(st.pinned_peak, 4 * CH); /* a peak stays */
}

/* A failed reg() leaves no trace but its error; the next get tries again. */
static void test_rc_reg_failure(void **state)
{
	struct rc_fixture *f = *state;
	struct rdma_regcache_stats st;
	uint32_t key = 7;

	rc_open(f, 4 * CH);
	f->fake.fail_next = -ENOMEM;
	assert_rc_equal(rdma_regcache_get(f->c, 0, 0, 8, 1, &key, &f->err), -ENOMEM);
	assert_int_equal(f->err.code, -ENOMEM);
	assert_non_null(strstr(f->err.msg, "fake reg refused chunk 0"));
	assert_uint_equal(key, 7);
	st = rc_stats(f);
	assert_uint_equal(st.pinned_bytes, 0);
	assert_uint_equal(st.chunks_registered, 0);
	assert_uint_equal(st.misses, 0);
	tern_error_clear(&f->err);

	/* the slot was not left half-made: the next get registers again */
	assert_rc_equal(rc_get_chunk(f, 0, 1), 0);
	assert_uint_equal(f->fake.reg_calls, 2);
	assert_rc_equal(rc_get_chunk(f, 0, 2), 0);
	assert_uint_equal(f->fake.reg_calls, 2);

	/* and after an eviction made room */
	for (uint64_t k = 1; k < 4; k++)
		assert_rc_equal(rc_get_chunk(f, k, 3), 0);
	rdma_regcache_completed(f->c, 3);
	f->fake.fail_next = -EPERM;
	assert_rc_equal(rc_get_chunk(f, 4, 4), -EPERM);
	assert_false(f->fake.live[0][4]);
	assert_rc_equal(rc_get_chunk(f, 4, 4), 0);
	rdma_regcache_free(f->c);
	f->c = NULL;
	for (int k = 0; k < MAX_CHUNKS; k++)
		assert_uint_equal(f->fake.regs[0][k], f->fake.deregs[0][k]);
	assert_uint_equal(f->fake.reg_calls, 7);
	assert_uint_equal(f->fake.dereg_calls, 5);
}

/* clear() and free() release every chunk exactly once. */
static void test_rc_clear_and_free(void **state)
{
	struct rc_fixture *f = *state;
	uint32_t key;

	rc_open(f, 8 * CH);
	for (uint64_t k = 0; k < 5; k++)
		assert_rc_equal(rc_get_chunk(f, k, k), 0);
	assert_rc_equal(rdma_regcache_get(f->c, 1, 2 * CH, 8, 6, &key, &f->err), 0);
	rdma_regcache_clear(f->c); /* in flight or not: the caller knows */
	assert_uint_equal(f->fake.dereg_calls, 6);
	for (int k = 0; k < MAX_CHUNKS; k++) {
		assert_false(f->fake.live[0][k]);
		assert_uint_equal(f->fake.deregs[0][k], k < 5 ? 1 : 0);
	}
	assert_uint_equal(f->fake.deregs[1][2], 1);
	rdma_regcache_clear(f->c);
	assert_uint_equal(f->fake.dereg_calls, 6);

	/* still usable */
	assert_rc_equal(rc_get_chunk(f, 2, 7), 0);
	assert_uint_equal(rc_stats(f).misses, 7);
	assert_rc_equal(rc_get_chunk(f, 9, 8), 0);
	rdma_regcache_free(f->c);
	f->c = NULL;
	assert_uint_equal(f->fake.dereg_calls, 8);
	assert_uint_equal(f->fake.deregs[0][2], 2);
	assert_uint_equal(f->fake.deregs[0][9], 1);
	rdma_regcache_free(NULL);
}

static void test_rc_new_refuses(void **state)
{
	struct rc_fixture *f = *state;
	struct rdma_reg_ops no_dereg = {.reg = fake_reg};
	struct tern_ram_region bad[2] = {f->regions[0], {NULL, CH}};
	struct rdma_regcache *c = NULL;

	assert_rc_equal(
	    rdma_regcache_new(f->regions, NREGIONS, 11, 0, &fake_ops, &f->fake, &c, &f->err),
	    -EINVAL);
	assert_non_null(strstr(f->err.msg, "shift"));
	assert_rc_equal(
	    rdma_regcache_new(f->regions, NREGIONS, 41, 0, &fake_ops, &f->fake, &c, NULL), -EINVAL);
	assert_rc_equal(
	    rdma_regcache_new(f->regions, NREGIONS, SHIFT, 0, &no_dereg, &f->fake, &c, NULL),
	    -EINVAL);
	assert_rc_equal(rdma_regcache_new(bad, 2, SHIFT, 0, &fake_ops, &f->fake, &c, NULL),
			-EINVAL);
	assert_null(c);
	/* no regions, or an empty one, is fine */
	assert_rc_equal(rdma_regcache_new(NULL, 0, SHIFT, 0, &fake_ops, &f->fake, &c, NULL), 0);
	rdma_regcache_free(c);
	bad[1].size = 0;
	assert_rc_equal(rdma_regcache_new(bad, 2, 40, 0, &fake_ops, &f->fake, &c, NULL), 0);
	assert_rc_equal(rdma_regcache_get(c, 1, 0, 1, 1, &(uint32_t){0}, NULL), -EINVAL);
	rdma_regcache_free(c);
}

/* ---- staging ring --------------------------------------------------------- */

struct span {
	uint64_t off, len, end;
	uint64_t skip_from; /* the bytes skipped before it: [skip_from, size) */
};

/* Macros, not functions: a failure names the test's line. */
#define RING_ALLOC_OK(r, len, want_off, want_end)                                                  \
	do {                                                                                       \
		uint64_t _off = 0, _end = 0;                                                       \
		assert_rc_equal(rdma_ring_alloc(r, len, &_off, &_end), 0);                         \
		assert_uint_equal(_off, want_off);                                                 \
		assert_uint_equal(_end, want_end);                                                 \
	} while (0)

/* -EAGAIN, and neither the ring nor the outputs change. */
#define RING_ALLOC_FULL(r, len)                                                                    \
	do {                                                                                       \
		struct rdma_ring _before = *(r);                                                   \
		uint64_t _off = 7, _end = 7;                                                       \
		assert_rc_equal(rdma_ring_alloc(r, len, &_off, &_end), -EAGAIN);                   \
		assert_uint_equal(_off, 7);                                                        \
		assert_uint_equal(_end, 7);                                                        \
		assert_memory_equal(r, &_before, sizeof(_before));                                 \
	} while (0)

static void test_ring_alloc_in_order(void **state)
{
	struct rdma_ring r;

	rdma_ring_init(&r, 100);
	RING_ALLOC_OK(&r, 30, 0, 30);
	RING_ALLOC_OK(&r, 30, 30, 60);
	RING_ALLOC_OK(&r, 40, 60, 100);
	RING_ALLOC_FULL(&r, 1);
	assert_rc_equal(rdma_ring_release(&r, 30), 0);
	RING_ALLOC_OK(&r, 30, 0, 130);
	RING_ALLOC_FULL(&r, 1);
	assert_rc_equal(rdma_ring_release(&r, 130), 0);
	RING_ALLOC_OK(&r, 70, 30, 200); /* up to the end exactly */
	RING_ALLOC_FULL(&r, 31);	/* 0..30 is free, no more */
	assert_rc_equal(rdma_ring_release(&r, 200), 0);
	RING_ALLOC_OK(&r, 100, 0, 300);
}

/* A span that does not fit before the end starts at 0; the tail is used. */
static void test_ring_skip_at_end(void **state)
{
	struct rdma_ring r;

	rdma_ring_init(&r, 100);
	RING_ALLOC_OK(&r, 90, 0, 90);
	assert_rc_equal(rdma_ring_release(&r, 90), 0);
	RING_ALLOC_OK(&r, 10, 90, 100); /* fits exactly: no skip */
	RING_ALLOC_OK(&r, 20, 0, 120);
	RING_ALLOC_OK(&r, 50, 20, 170);
	/* 30 free at 70..100, but 40 does not fit there: skip 30, then 0..40 */
	RING_ALLOC_FULL(&r, 40);
	assert_rc_equal(rdma_ring_release(&r, 120), 0);
	RING_ALLOC_OK(&r, 20, 70, 190);
	/* 10 to the end: skipped; 0..20 was released with 120 */
	RING_ALLOC_OK(&r, 20, 0, 220);
	RING_ALLOC_FULL(&r, 1);
	assert_rc_equal(rdma_ring_release(&r, 190), 0);
	/* 20..90 is free, and so would be 90..100, but the skip stays used
	 * until the span after it (ending at 220) is released */
	RING_ALLOC_FULL(&r, 71);
	RING_ALLOC_OK(&r, 70, 20, 290);
	RING_ALLOC_FULL(&r, 1);
	assert_rc_equal(rdma_ring_release(&r, 220), 0);
	/* 90..100 and 0..20 are free: 21 must skip to 0 and does not fit */
	RING_ALLOC_FULL(&r, 21);
	RING_ALLOC_OK(&r, 10, 90, 300);
	RING_ALLOC_OK(&r, 10, 0, 310);
}

/* An empty ring takes any span up to its size, even after a skip. */
static void test_ring_empty_takes_full_span(void **state)
{
	struct rdma_ring r;

	rdma_ring_init(&r, 100);
	RING_ALLOC_OK(&r, 99, 0, 99);
	RING_ALLOC_FULL(&r, 2); /* 1 byte to the end, then 0..2 is live */
	assert_rc_equal(rdma_ring_release(&r, 99), 0);
	RING_ALLOC_OK(&r, 100, 0, 200);
	RING_ALLOC_FULL(&r, 1);
	assert_rc_equal(rdma_ring_release(&r, 200), 0);
	RING_ALLOC_OK(&r, 1, 0, 201);

	uint64_t off = 7, end = 7;

	assert_rc_equal(rdma_ring_alloc(&r, 0, &off, &end), -EMSGSIZE);
	assert_rc_equal(rdma_ring_alloc(&r, 101, &off, &end), -EMSGSIZE);
	assert_rc_equal(rdma_ring_alloc(&r, UINT64_MAX, &off, &end), -EMSGSIZE);
	assert_uint_equal(off, 7);
	assert_uint_equal(r.head, 201);
}

static void test_ring_release_out_of_range(void **state)
{
	struct rdma_ring r, before;

	rdma_ring_init(&r, 100);
	RING_ALLOC_OK(&r, 30, 0, 30);
	RING_ALLOC_OK(&r, 30, 30, 60);
	assert_rc_equal(rdma_ring_release(&r, 61), -EPROTO);
	assert_rc_equal(rdma_ring_release(&r, UINT64_MAX), -EPROTO);
	assert_rc_equal(rdma_ring_release(&r, 30), 0);
	before = r;
	assert_rc_equal(rdma_ring_release(&r, 29), -EPROTO);
	assert_rc_equal(rdma_ring_release(&r, 0), -EPROTO);
	assert_memory_equal(&r, &before, sizeof(r));
	assert_rc_equal(rdma_ring_release(&r, 30), 0); /* the same again is no error */
	assert_rc_equal(rdma_ring_release(&r, 60), 0);
	assert_uint_equal(r.tail, 60);
}

/*
 * Many laps with random span sizes against a model that knows which ring
 * bytes hold a live span: alloc() must succeed exactly when the place the
 * rule gives is free, never overlap a live span, and produce spans that
 * rdma_ring_check() accepts; the receiver releases spans in order.
 */
static void ring_model_run(uint64_t size, uint64_t seed, unsigned int iters)
{
	struct rdma_ring r;
	uint8_t *busy = calloc(size, 1);
	struct span *live = calloc(size, sizeof(*live)); /* FIFO: at most size spans */
	unsigned int head = 0, count = 0, allocs = 0, fulls = 0;
	uint64_t expect = 0, s = seed;
	struct tern_error err = {0};

	assert_non_null(busy);
	assert_non_null(live);
	rdma_ring_init(&r, size);
	for (unsigned int i = 0; i < iters; i++) {
		uint64_t x = rnd_next(&s);
		uint64_t len = x % 8 ? 1 + x % (size / 3 + 1) : 1 + x % size;
		uint64_t pos = expect % size;
		uint64_t want_off = len <= size - pos ? pos : 0;
		uint64_t skip_from = want_off == pos ? size : pos; /* skipped: [skip_from, size) */
		bool fits = true;

		for (uint64_t b = want_off; b < want_off + len; b++)
			fits &= !busy[b];
		for (uint64_t b = skip_from; b < size; b++)
			fits &= !busy[b];

		uint64_t off = 0, end = 0;
		int rc = rdma_ring_alloc(&r, len, &off, &end);

		assert_rc_equal(rc, fits ? 0 : -EAGAIN);
		if (!rc) {
			assert_uint_equal(off, want_off);
			assert_true(off + len <= size);
			assert_rc_equal(rdma_ring_check(size, expect, off, len, end, size, &err),
					0);
			memset(busy + off, 1, len);
			memset(busy + skip_from, 1, size - skip_from);
			live[(head + count++) % size] = (struct span){off, len, end, skip_from};
			expect = end;
			allocs++;
		} else {
			fulls++;
		}
		/* the receiver frees some spans, oldest first */
		unsigned int nfree = (rc || x % 3 == 0) ? (unsigned int)(x >> 40) % (count + 1) : 0;

		for (unsigned int k = 0; k < nfree; k++) {
			struct span *sp = &live[head];

			memset(busy + sp->off, 0, sp->len);
			memset(busy + sp->skip_from, 0, size - sp->skip_from);
			assert_rc_equal(rdma_ring_release(&r, sp->end), 0);
			head = (head + 1) % size;
			count--;
		}
		assert_true(r.tail <= r.head);
	}
	assert_true(r.head / size > iters / 20); /* many laps */
	if (allocs < iters / 4 || !fulls)
		fail_msg("size %" PRIu64 ": %u allocs, %u full", size, allocs, fulls);
	assert_int_equal(err.code, 0);
	free(busy);
	free(live);
}

static void test_ring_model_wraps(void **state)
{
	ring_model_run(100, 1, 200000);
	ring_model_run(4096, 7, 100000);
	ring_model_run(1, 3, 1000);
	ring_model_run(2, 5, 10000);
	ring_model_run(997, 11, 100000);
}

/* What check() refuses: each way a span can lie. */
static void ring_check_bad(uint64_t size, uint64_t expect, uint64_t off, uint64_t len, uint64_t end,
			   uint64_t max_len, const char *field)
{
	struct tern_error err = {0};

	assert_rc_equal(rdma_ring_check(size, expect, off, len, end, max_len, &err), -EPROTO);
	assert_int_equal(err.code, -EPROTO);
	if (!strstr(err.msg, field))
		fail_msg("\"%s\" does not name %s", err.msg, field);
}

static void test_ring_check_refuses(void **state)
{
	struct tern_error err = {0};

	/* valid: at expect % size; skip to 0 when it does not fit */
	assert_rc_equal(rdma_ring_check(100, 230, 30, 70, 300, 100, &err), 0);
	assert_rc_equal(rdma_ring_check(100, 230, 0, 71, 371, 100, &err), 0);
	assert_rc_equal(rdma_ring_check(100, 300, 0, 100, 400, 100, &err), 0);
	assert_rc_equal(rdma_ring_check(100, 0, 0, 1, 1, 1, &err), 0);
	assert_int_equal(err.code, 0);

	ring_check_bad(100, 230, 31, 10, 241, 100, "off 31"); /* not where expected */
	ring_check_bad(100, 230, 29, 10, 240, 100, "off 29");
	ring_check_bad(100, 230, 0, 10, 240, 100, "off 0");    /* skip without need */
	ring_check_bad(100, 230, 30, 71, 301, 100, "off 30");  /* would need a skip */
	ring_check_bad(100, 230, 30, 10, 241, 100, "end 241"); /* end lies */
	ring_check_bad(100, 230, 30, 10, 239, 100, "end 239");
	ring_check_bad(100, 230, 0, 71, 301, 100, "end 301"); /* skip not counted */
	ring_check_bad(100, 230, 30, 0, 230, 100, "len 0");
	ring_check_bad(100, 230, 30, 11, 241, 10, "len 11 > max 10");
	ring_check_bad(100, 230, 95, 10, 240, 100, "off 95 + len 10");
	ring_check_bad(100, 230, UINT64_MAX, 2, 232, 100, "off 18446744073709551615 + len 2");
	ring_check_bad(100, 230, 30, UINT64_MAX, 229, UINT64_MAX,
		       "off 30 + len 18446744073709551615");
	ring_check_bad(100, 0, 0, 101, 101, 200, "len 101");
	ring_check_bad(0, 0, 0, 1, 1, 1, "size 0");
	/* positions near the u64 end do not wrap around */
	ring_check_bad(100, UINT64_MAX - 5, 0, 10, 9, 100, "end");
	ring_check_bad(100, UINT64_MAX - 5, 0, 10, UINT64_MAX, 100, "end");
	ring_check_bad(100, UINT64_MAX - 5, 10, 10, 4, 100, "end 4"); /* wrapped */
}

/* ---- runs of pages --------------------------------------------------------- */

#define PAGE 4096u
#define NO_CHUNKS 63

static void run_eq(const struct rdma_run *r, uint64_t off, uint32_t npages, uint32_t first)
{
	assert_uint_equal(r->off, off);
	assert_uint_equal(r->npages, npages);
	assert_uint_equal(r->len, (uint64_t)npages * PAGE);
	assert_uint_equal(r->first, first);
}

static void test_runs_merge_and_split(void **state)
{
	const uint64_t contig[] = {5 * PAGE, 6 * PAGE, 7 * PAGE};
	const uint64_t gaps[] = {0, PAGE, 3 * PAGE, 4 * PAGE, 9 * PAGE};
	struct rdma_run runs[8];

	assert_uint_equal(rdma_runs_build(contig, 3, PAGE, NO_CHUNKS, 1 << 30, runs), 1);
	run_eq(&runs[0], 5 * PAGE, 3, 0);
	assert_uint_equal(rdma_runs_build(contig, 3, PAGE, 64, 1 << 30, runs), 1);
	run_eq(&runs[0], 5 * PAGE, 3, 0);
	assert_uint_equal(rdma_runs_build(gaps, 5, PAGE, NO_CHUNKS, 1 << 30, runs), 3);
	run_eq(&runs[0], 0, 2, 0);
	run_eq(&runs[1], 3 * PAGE, 2, 2);
	run_eq(&runs[2], 9 * PAGE, 1, 4);
	assert_uint_equal(rdma_runs_build(contig, 1, PAGE, NO_CHUNKS, 1 << 30, runs), 1);
	run_eq(&runs[0], 5 * PAGE, 1, 0);
	assert_uint_equal(rdma_runs_build(contig, 0, PAGE, NO_CHUNKS, 1 << 30, runs), 0);
	/* a repeated page is not contiguous with itself */
	const uint64_t twice[] = {PAGE, PAGE};

	assert_uint_equal(rdma_runs_build(twice, 2, PAGE, NO_CHUNKS, 1 << 30, runs), 2);
}

static void test_runs_chunk_and_max_len(void **state)
{
	uint64_t off[7];
	struct rdma_run runs[8];

	for (int i = 0; i < 7; i++)
		off[i] = (uint64_t)(3 + i) * PAGE; /* pages 3..9 */
	/* 4-page chunks: boundaries at pages 4 and 8 */
	assert_uint_equal(rdma_runs_build(off, 7, PAGE, 14, 1 << 30, runs), 3);
	run_eq(&runs[0], 3 * PAGE, 1, 0);
	run_eq(&runs[1], 4 * PAGE, 4, 1);
	run_eq(&runs[2], 8 * PAGE, 2, 5);
	/* max_len 3 pages (or a little more) */
	for (uint64_t max = 3 * PAGE; max < 4 * PAGE; max += PAGE - 1) {
		assert_uint_equal(rdma_runs_build(off, 7, PAGE, NO_CHUNKS, max, runs), 3);
		run_eq(&runs[0], 3 * PAGE, 3, 0);
		run_eq(&runs[1], 6 * PAGE, 3, 3);
		run_eq(&runs[2], 9 * PAGE, 1, 6);
	}
	/* both: chunks of 4, max 3 */
	assert_uint_equal(rdma_runs_build(off, 7, PAGE, 14, 3 * PAGE, runs), 4);
	run_eq(&runs[0], 3 * PAGE, 1, 0);
	run_eq(&runs[1], 4 * PAGE, 3, 1);
	run_eq(&runs[2], 7 * PAGE, 1, 4);
	run_eq(&runs[3], 8 * PAGE, 2, 5);
	/* max_len under a page still moves a page per run */
	assert_uint_equal(rdma_runs_build(off, 7, PAGE, NO_CHUNKS, 100, runs), 7);
	run_eq(&runs[6], 9 * PAGE, 1, 6);
	assert_uint_equal(rdma_runs_build(off, 7, PAGE, NO_CHUNKS, 0, runs), 7);
}

static void test_runs_packet_order(void **state)
{
	const uint64_t off[] = {4 * PAGE, 5 * PAGE, 0, 20 * PAGE, 21 * PAGE, 3 * PAGE};
	struct rdma_run runs[6];

	assert_uint_equal(rdma_runs_build(off, 6, PAGE, NO_CHUNKS, 1 << 30, runs), 4);
	run_eq(&runs[0], 4 * PAGE, 2, 0);
	run_eq(&runs[1], 0, 1, 2);
	run_eq(&runs[2], 20 * PAGE, 2, 3);
	run_eq(&runs[3], 3 * PAGE, 1, 5);
	/* descending pages never merge */
	const uint64_t down[] = {2 * PAGE, PAGE, 0};

	assert_uint_equal(rdma_runs_build(down, 3, PAGE, NO_CHUNKS, 1 << 30, runs), 3);
	run_eq(&runs[0], 2 * PAGE, 1, 0);
	run_eq(&runs[2], 0, 1, 2);
}

/* 512 pages: a 2 MiB packet across 1 MiB chunks, then random layouts. */
static void test_runs_512_pages(void **state)
{
	uint64_t off[512];
	struct rdma_run runs[512];
	uint64_t s = 42;

	for (int i = 0; i < 512; i++)
		off[i] = 0x180000 + (uint64_t)i * PAGE; /* starts mid-chunk */
	assert_uint_equal(rdma_runs_build(off, 512, PAGE, 20, UINT64_MAX, runs), 3);
	run_eq(&runs[0], 0x180000, 128, 0);
	run_eq(&runs[1], 0x200000, 256, 128);
	run_eq(&runs[2], 0x300000, 128, 384);
	assert_uint_equal(rdma_runs_build(off, 512, PAGE, NO_CHUNKS, UINT64_MAX, runs), 1);
	run_eq(&runs[0], 0x180000, 512, 0);

	for (int round = 0; round < 200; round++) {
		uint32_t shift = 13 + (uint32_t)(rnd_next(&s) % 10);
		uint64_t max = PAGE * (1 + rnd_next(&s) % 64);
		uint64_t page = rnd_next(&s) % 1024;
		uint32_t n, want;

		for (int i = 0; i < 512; i++) {
			uint64_t x = rnd_next(&s);

			page = x % 4 ? page + 1 : x % 2048; /* mostly contiguous */
			off[i] = page * PAGE;
		}
		n = rdma_runs_build(off, 512, PAGE, shift, max, runs);
		/* a run per page where a WRITE must stop, counted independently */
		want = 1;
		for (uint32_t i = 1, npages = 1; i < 512; i++, npages++) {
			if (off[i] != off[i - 1] + PAGE || off[i] >> shift != off[i - 1] >> shift ||
			    (uint64_t)(npages + 1) * PAGE > max) {
				want++;
				npages = 0;
			}
		}
		assert_uint_equal(n, want);
		for (uint32_t k = 0, i = 0; k < n; k++) {
			assert_uint_equal(runs[k].first, i);
			assert_uint_equal(runs[k].off, off[i]);
			assert_uint_equal(runs[k].len, (uint64_t)runs[k].npages * PAGE);
			assert_true(runs[k].len <= max);
			assert_uint_equal(runs[k].off >> shift,
					  (runs[k].off + runs[k].len - 1) >> shift);
			for (uint32_t j = 1; j < runs[k].npages; j++)
				assert_uint_equal(off[i + j], off[i] + (uint64_t)j * PAGE);
			i += runs[k].npages;
			if (k == n - 1)
				assert_uint_equal(i, 512);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rc_hit_miss, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_span_two_chunks_refused, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_region_bounds, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_short_last_chunk, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_lru_order, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_never_evict_in_flight, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_limit_raised, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_stats, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_reg_failure, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_clear_and_free, rc_setup, rc_teardown),
	    cmocka_unit_test_setup_teardown(test_rc_new_refuses, rc_setup, rc_teardown),
	    cmocka_unit_test(test_ring_alloc_in_order),
	    cmocka_unit_test(test_ring_skip_at_end),
	    cmocka_unit_test(test_ring_empty_takes_full_span),
	    cmocka_unit_test(test_ring_release_out_of_range),
	    cmocka_unit_test(test_ring_model_wraps),
	    cmocka_unit_test(test_ring_check_refuses),
	    cmocka_unit_test(test_runs_merge_and_split),
	    cmocka_unit_test(test_runs_chunk_and_max_len),
	    cmocka_unit_test(test_runs_packet_order),
	    cmocka_unit_test(test_runs_512_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
