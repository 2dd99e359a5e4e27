/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for verify-ram's digest kept up to date (core/digest_track.c):
 * its final digest must equal a from-scratch digest of the same memory
 * (core/digest.c) whatever was written when, as long as the writes were
 * told the way each side learns of them -- a landed packet on the
 * destination (mf_block_note_written()), a dirty-log report and a sync on
 * the source. Negative controls show that a reused hash really is reused: a
 * write nobody is told of after the hash is not seen.
 *
 * The background thread runs for real; the tests wait for it by its figure
 * of bytes hashed, which each stale region adds to exactly once per change
 * here (every region is changed at most once between two waits). A wait is
 * bounded only to guard against a hang; nothing is timed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "tests/cmocka_compat.h"
#include "core/core_priv.h"
#include "multifd/multifd.h"
#include "tern/tern.h"

#define HANG_GUARD_MS 30000
#define NBLOCKS 3

struct fixture {
	struct tern_session *s;
	uint8_t *ram[NBLOCKS];
	uint64_t size[NBLOCKS];
	struct digest_track *d;
	uint64_t page, region;
	uint64_t rng;
};

static uint64_t rnd(struct fixture *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 7;
	f->rng ^= f->rng << 17;
	return f->rng;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/*
 * Three blocks: two whole regions and a half, one page (a region shorter
 * than the others), and 40 regions. Random bytes in a few pages only: the
 * rest stays untouched anonymous memory, zero.
 */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint32_t i;

	if (!f)
		return -1;
	if (tern_session_new(NULL, NULL, &f->s, NULL))
		return -1;
	f->page = f->s->page_size;
	f->region = 1ull << digest_region_shift(f->s->page_size);
	f->size[0] = 2 * f->region + f->region / 2;
	f->size[1] = f->page;
	f->size[2] = 40 * f->region;
	f->rng = 0x9e3779b97f4a7c15ull;
	for (i = 0; i < NBLOCKS; i++) {
		char name[8];

		f->ram[i] = mmap(NULL, f->size[i], PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (f->ram[i] == MAP_FAILED)
			return -1;
		snprintf(name, sizeof(name), "b%u", i);
		if (tern_ram_register(f->s, name, f->ram[i], f->size[i], NULL, NULL))
			return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	uint32_t i;

	digest_track_free(f->d);
	tern_session_free(f->s);
	for (i = 0; i < NBLOCKS; i++)
		munmap(f->ram[i], f->size[i]);
	free(f);
	return 0;
}

static bool digest_eq(const struct ram_digest *a, const struct ram_digest *b)
{
	return a->h[0] == b->h[0] && a->h[1] == b->h[1];
}

static void scratch(struct fixture *f, struct ram_digest *ret)
{
	struct tern_error err = {0};

	assert_rc_equal(ram_digest_compute(f->s, ret, NULL, &err), 0);
}

static void final(struct fixture *f, struct ram_digest *ret)
{
	struct tern_error err = {0};

	assert_rc_equal(digest_track_final(f->d, ret, NULL, &err), 0);
}

static uint64_t total_bytes(struct fixture *f)
{
	return f->size[0] + f->size[1] + f->size[2];
}

static uint64_t region_len(struct fixture *f, uint32_t bi, uint64_t r)
{
	return MIN(f->region, f->size[bi] - r * f->region);
}

static uint64_t hashed(struct fixture *f)
{
	struct digest_track_stats st;

	digest_track_get_stats(f->d, &st);
	return st.background_bytes;
}

static uint64_t worker_hashed(struct fixture *f)
{
	struct digest_track_stats st;

	digest_track_get_stats(f->d, &st);
	return st.worker_bytes;
}

/* Wait until the background has hashed @want bytes in all. */
static void wait_hashed(struct fixture *f, uint64_t want)
{
	int waited;

	for (waited = 0; waited < HANG_GUARD_MS && hashed(f) < want; waited++)
		sleep_ms(1);
	assert_uint_equal(hashed(f), want);
}

/* Give the background a few of its passes: what it may hash, it has. */
static void let_it_run(void)
{
	sleep_ms(50);
}

/* Write page @pg of block @bi with random bytes. */
static void write_page_at(struct fixture *f, uint32_t bi, uint64_t pg)
{
	uint64_t *p = (uint64_t *)(f->ram[bi] + pg * f->page), i;

	for (i = 0; i < f->page / 8; i++)
		p[i] = rnd(f);
}

/* Write a random page of block @bi with random bytes (or zero it). */
static uint64_t write_page(struct fixture *f, uint32_t bi, bool zero)
{
	uint64_t pg = rnd(f) % (f->size[bi] / f->page), i;
	uint64_t *p = (uint64_t *)(f->ram[bi] + pg * f->page);

	for (i = 0; i < f->page / 8; i++)
		p[i] = zero ? 0 : rnd(f);
	return pg;
}

/* ---- destination ----------------------------------------------------------- */

/* A packet of @n pages of block @bi landed (offsets as on the wire). */
static void landed(struct fixture *f, uint32_t bi, const uint64_t *pages, uint32_t n)
{
	uint8_t off[8 * 16];
	uint32_t i;

	assert_true(n <= 16);
	for (i = 0; i < n; i++)
		put_be64(off + 8 * i, pages[i] * f->page);
	mf_block_note_written(&f->s->mf_blocks[bi], off, n);
}

/* The same for any number of pages, 16 at a time (a packet's order kept). */
static void landed_many(struct fixture *f, uint32_t bi, const uint64_t *pages, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i += 16)
		landed(f, bi, pages + i, (uint32_t)MIN(16, n - i));
}

static void dest_start(struct fixture *f)
{
	struct tern_error err = {0};

	assert_rc_equal(ram_prepare_dest(f->s, &err), 0);
	assert_rc_equal(digest_track_new(f->s, false, &f->d, &err), 0);
	assert_non_null(f->s->mf_blocks[0].gen);
}

/* Before round 1 has landed, a region nothing landed in is left alone; after
 * it, every region is hashed once, and the final digest hashes nothing. */
static void test_dest_round1(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;
	uint64_t pg;

	dest_start(f);
	pg = write_page(f, 2, false);
	write_page(f, 2, false); /* not landed: invisible until round 1 */
	let_it_run();
	assert_uint_equal(hashed(f), 0);
	landed(f, 2, &pg, 1);
	wait_hashed(f, region_len(f, 2, pg * f->page / f->region));
	digest_track_round(f->d, 1);
	wait_hashed(f, total_bytes(f));
	final(f, &a);
	scratch(f, &b);
	/* the page written but never "landed" was in memory when round 1's
	 * hashes were taken: seen all the same */
	assert_true(digest_eq(&a, &b));
}

/* A page landing after its region was hashed makes the hash stale. */
static void test_dest_landing_after_hash(void **state)
{
	struct fixture *f = *state;
	struct digest_track_stats st;
	struct ram_digest a, b;
	uint64_t pg;

	dest_start(f);
	digest_track_round(f->d, 1);
	wait_hashed(f, total_bytes(f));
	digest_track_round(f->d, 2);
	pg = write_page(f, 0, false);
	landed(f, 0, &pg, 1);
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
	digest_track_get_stats(f->d, &st);
	/* the background may have rehashed it first; the final, or it, did */
	assert_uint_equal(st.background_bytes + st.final_bytes,
			  total_bytes(f) + region_len(f, 0, pg * f->page / f->region));
}

/*
 * A receive worker hashes the regions its packet carried whole, and only
 * those: not a region it carried in part, nor pages out of order, out of
 * range or repeated (a hostile packet's offsets are validated, but need
 * not be sorted); the background leaves what a worker hashed alone, and a
 * later landing makes the worker's hash stale like any other.
 */
static void test_dest_worker_hashes(void **state)
{
	struct fixture *f = *state;
	const uint64_t rp = f->region / f->page;
	uint64_t whole[64], part[32], odd[64], i;
	struct digest_track_stats st;
	struct ram_digest a, b;

	dest_start(f);
	for (i = 0; i < 2 * rp; i++) /* block 2's regions 1 and 2, whole */
		whole[i] = rp + i;
	for (i = 0; i < rp / 2; i++) /* region 5's first half, region 6 but its last page */
		part[i] = 5 * rp + i;
	for (i = 0; i < rp - 1; i++)
		part[rp / 2 + i] = 6 * rp + i;
	for (i = 0; i < rp; i++) /* region 7's pages, two of them swapped */
		odd[i] = 7 * rp + i;
	odd[3] = 7 * rp + 4, odd[4] = 7 * rp + 3;
	for (i = 0; i < 2 * rp; i++)
		write_page_at(f, 2, whole[i]);
	for (i = 0; i < rp / 2 + rp - 1; i++)
		write_page_at(f, 2, part[i]);
	landed_many(f, 2, whole, 2 * rp);
	digest_track_packet(f->d, 2, whole, (uint32_t)(2 * rp));
	assert_uint_equal(worker_hashed(f), 2 * f->region);
	landed_many(f, 2, part, rp / 2 + rp - 1);
	digest_track_packet(f->d, 2, part, (uint32_t)(rp / 2 + rp - 1));
	digest_track_packet(f->d, 2, odd, (uint32_t)rp);
	for (i = 0; i < rp; i++) /* a page past the block, and repeats */
		odd[i] = i < rp / 2 ? 40 * rp + i : 9 * rp;
	digest_track_packet(f->d, 2, odd, (uint32_t)rp);
	digest_track_packet(f->d, NBLOCKS, whole, (uint32_t)rp); /* no such block */
	assert_uint_equal(worker_hashed(f), 2 * f->region);
	/* the background takes regions 5 and 6 (written, in part), not 1, 2 */
	wait_hashed(f, 2 * f->region);
	let_it_run();
	assert_uint_equal(hashed(f), 2 * f->region);
	/* a page of region 2 lands again after the worker's hash */
	write_page_at(f, 2, 2 * rp + 3);
	landed_many(f, 2, &whole[rp + 3], 1);
	digest_track_round(f->d, 1);
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
	digest_track_get_stats(f->d, &st);
	/* every region once, and region 2 again */
	assert_uint_equal(st.worker_bytes + st.background_bytes + st.final_bytes,
			  total_bytes(f) + f->region);
}

/* Negative control: a write into a region after its hash that no packet
 * reports is not seen -- the hash is reused, as designed. */
static void test_dest_unreported_write_unseen(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;

	dest_start(f);
	digest_track_round(f->d, 1);
	wait_hashed(f, total_bytes(f));
	write_page(f, 2, false);
	final(f, &a);
	scratch(f, &b);
	assert_false(digest_eq(&a, &b));
}

/*
 * Random rounds: packets of random pages (data, and zero pages over pages
 * that held data), landed in random order while the background runs;
 * between rounds the test waits or not. The final digest must equal the
 * from-scratch one every time.
 */
static void test_dest_random(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;
	uint32_t round, k, i;

	dest_start(f);
	for (round = 1; round <= 12; round++) {
		uint32_t npk = (uint32_t)(rnd(f) % 24);

		for (k = 0; k < npk; k++) {
			uint32_t bi = (uint32_t)(rnd(f) % NBLOCKS), n = 1 + (uint32_t)(rnd(f) % 16);
			uint64_t pages[16];

			for (i = 0; i < n; i++)
				pages[i] = write_page(f, bi, rnd(f) % 4 == 0);
			landed(f, bi, pages, n);
			if (rnd(f) % 2) { /* a worker hashes what it carried whole */
				uint64_t first = pages[0] / (f->region / f->page) *
						 (f->region / f->page),
					 run[16];

				for (i = 0; i < 16; i++)
					run[i] = first + i;
				digest_track_packet(f->d, bi, pages, n);
				if (first + 16 <= f->size[bi] / f->page) {
					for (i = 0; i < 16; i++)
						write_page_at(f, bi, run[i]);
					landed(f, bi, run, 16);
					digest_track_packet(f->d, bi, run, 16);
				}
			}
		}
		digest_track_round(f->d, round);
		if (rnd(f) % 2)
			let_it_run();
	}
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
}

/* ---- source ---------------------------------------------------------------- */

static void src_start(struct fixture *f)
{
	struct tern_error err = {0};

	/* every page in the send maps, as the first round has it */
	assert_rc_equal(ram_prepare_source(f->s, &err), 0);
	assert_rc_equal(digest_track_new(f->s, true, &f->d, &err), 0);
}

/* The guest wrote page @pg of block @bi and a sync will report it. */
static void src_report(struct fixture *f, uint32_t bi, uint64_t pg)
{
	bitmap_set(f->s->blocks[bi]->send, pg);
}

/* A round as src_send_round() goes: each 64-page word off the send map (its
 * chunk re-armed), then passed; @upto: stop after that many words of block
 * 2 (a round cut short). With @workers, each word is a batch: queued, and
 * -- unless the worker fails, a time in four -- hashed by its worker. */
static void src_round_with(struct fixture *f, uint64_t upto, bool workers)
{
	uint32_t bi, n;
	uint64_t w, v, pages[64];

	for (bi = 0; bi < NBLOCKS; bi++) {
		struct tern_ram_block *b = f->s->blocks[bi];

		for (w = 0; w < BITMAP_WORDS(b->npages); w++) {
			if (bi == 2 && w == upto)
				return;
			if (!b->send[w])
				continue;
			for (n = 0, v = b->send[w]; v; v &= v - 1)
				pages[n++] = w * 64 + (uint64_t)__builtin_ctzll(v);
			b->send[w] = 0;
			if (workers)
				digest_track_queued(f->d, bi, pages, n);
			digest_track_passed(f->d, bi, pages[n - 1]);
			if (workers && rnd(f) % 4)
				digest_track_packet(f->d, bi, pages, n);
		}
		digest_track_passed(f->d, bi, b->npages - 1);
	}
}

static void src_round(struct fixture *f, uint64_t upto)
{
	src_round_with(f, upto, false);
}

/* A region with a page still to send is not hashed; once the round passed
 * it, it is. */
static void test_src_armed_only(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;

	src_start(f);
	digest_track_synced(f->d); /* round 1's sync: everything to send */
	let_it_run();
	assert_uint_equal(hashed(f), 0);
	src_round(f, 1); /* block 2: only its first word's regions */
	wait_hashed(f, f->size[0] + f->size[1] + 64 * f->page);
	let_it_run();
	assert_uint_equal(hashed(f), f->size[0] + f->size[1] + 64 * f->page);
	src_round(f, UINT64_MAX);
	wait_hashed(f, total_bytes(f));
	digest_track_synced(f->d);
	digest_track_paused(f->d);
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
}

/*
 * A region queued whole to a worker is the worker's: the background leaves
 * it alone, the worker hashes it after its send; once the guest is paused a
 * worker hashes nothing (that would be downtime), and the final takes what
 * is left.
 */
static void test_src_worker_pending(void **state)
{
	struct fixture *f = *state;
	struct digest_track_stats st;
	uint64_t pages[64], i;
	struct ram_digest a, b;

	src_start(f);
	digest_track_synced(f->d); /* round 1: everything to send */
	for (i = 0; i < 64; i++)
		pages[i] = i;
	f->s->blocks[2]->send[0] = 0;
	digest_track_queued(f->d, 2, pages, 64); /* before it is armed */
	digest_track_passed(f->d, 2, 63);
	let_it_run();
	assert_uint_equal(hashed(f), 0); /* pending: the worker's */
	digest_track_packet(f->d, 2, pages, 64);
	assert_uint_equal(worker_hashed(f), 64 * f->page);
	/* the next word: queued, but the guest pauses before its worker sends */
	for (i = 0; i < 64; i++)
		pages[i] = 64 + i;
	f->s->blocks[2]->send[1] = 0;
	digest_track_queued(f->d, 2, pages, 64);
	digest_track_passed(f->d, 2, 127);
	src_round(f, UINT64_MAX);
	digest_track_synced(f->d);
	digest_track_paused(f->d);
	digest_track_packet(f->d, 2, pages, 64);
	assert_uint_equal(worker_hashed(f), 64 * f->page);
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
	digest_track_get_stats(f->d, &st);
	assert_uint_equal(st.worker_bytes + st.background_bytes + st.final_bytes, total_bytes(f));
}

/* A region dirtied (and reported) after its hash is hashed again. */
static void test_src_redirtied(void **state)
{
	struct fixture *f = *state;
	struct digest_track_stats st;
	struct ram_digest a, b;
	uint64_t pg;

	src_start(f);
	digest_track_synced(f->d);
	src_round(f, UINT64_MAX);
	wait_hashed(f, total_bytes(f));
	pg = write_page(f, 2, false);
	src_report(f, 2, pg);
	digest_track_synced(f->d); /* the final sync: guest paused */
	digest_track_paused(f->d);
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
	digest_track_get_stats(f->d, &st);
	assert_uint_equal(st.background_bytes + st.final_bytes, total_bytes(f) + f->region);
}

/* Negative control: a write the dirty log never reports, after the hash,
 * is not seen (what the source's proof rests on). */
static void test_src_unreported_write_unseen(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;

	src_start(f);
	digest_track_synced(f->d);
	src_round(f, UINT64_MAX);
	wait_hashed(f, total_bytes(f));
	write_page(f, 0, false);
	digest_track_synced(f->d);
	digest_track_paused(f->d);
	final(f, &a);
	scratch(f, &b);
	assert_false(digest_eq(&a, &b));
}

/*
 * The guest writes page @pg of block @bi between a sync and the round that
 * sends it. KVM's manual-protect log: a page the sync fetched and that is
 * still waiting to be sent is not write-protected, and the clear before it
 * is sent forgets the write -- never reported; the send reads it anyway.
 * Any other page is reported at the next sync.
 */
static void src_guest_write(struct fixture *f, uint32_t bi, uint64_t (*pending)[64],
			    uint32_t *npending)
{
	const struct tern_ram_block *b = f->s->blocks[bi];
	uint64_t pg = rnd(f) % b->npages, i;
	uint64_t *p;

	/* half the time a page waiting to be sent, if there is one */
	if (rnd(f) % 2 && bitmap_find_next(b->send, b->npages, 0) < b->npages)
		while (!bitmap_test(b->send, pg))
			pg = (pg + 1) % b->npages;
	p = (uint64_t *)(f->ram[bi] + pg * f->page);
	for (i = 0; i < f->page / 8; i++)
		p[i] = rnd(f);
	if (bitmap_test(b->send, pg) || npending[bi] == 64)
		return;
	pending[bi][npending[bi]++] = pg;
}

/*
 * Random rounds as a guest and the precopy loop make them: writes (reported
 * at the next sync, or forgotten as KVM forgets them) between a sync and
 * its round and after the round, rounds cut short, syncs twice in a row;
 * then the paused final sync. The final digest must equal the from-scratch
 * one.
 */
static void test_src_random(void **state)
{
	struct fixture *f = *state;
	struct ram_digest a, b;
	uint64_t pending[NBLOCKS][64];
	uint32_t npending[NBLOCKS] = {0};
	uint32_t round, bi, i, k;

	src_start(f);
	for (round = 1; round <= 12; round++) {
		/* the sync: what was written since the last one is reported */
		for (bi = 0; bi < NBLOCKS; bi++) {
			for (i = 0; i < npending[bi]; i++)
				src_report(f, bi, pending[bi][i]);
			npending[bi] = 0;
		}
		digest_track_synced(f->d);
		if (rnd(f) % 4 == 0) /* waiting for an acknowledgement: sync again */
			digest_track_synced(f->d);
		if (rnd(f) % 2)
			let_it_run();
		for (k = (uint32_t)(rnd(f) % 12); k; k--)
			src_guest_write(f, (uint32_t)(rnd(f) % NBLOCKS), pending, npending);
		/* the round, perhaps cut short; then the guest writes on */
		src_round_with(f, rnd(f) % 3 ? UINT64_MAX : rnd(f) % 8, rnd(f) % 2);
		for (k = (uint32_t)(rnd(f) % 12); k; k--)
			src_guest_write(f, (uint32_t)(rnd(f) % NBLOCKS), pending, npending);
		if (rnd(f) % 2)
			let_it_run();
	}
	/* pause: the final sync reports the last writes */
	for (bi = 0; bi < NBLOCKS; bi++)
		for (i = 0; i < npending[bi]; i++)
			src_report(f, bi, pending[bi][i]);
	digest_track_synced(f->d);
	digest_track_paused(f->d);
	if (rnd(f) % 2)
		let_it_run();
	final(f, &a);
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
}

/* ---- the digest itself ---------------------------------------------------- */

/* A byte at either end of a region, or past the last whole region of a
 * block, changes the digest; the region is a part of the definition. */
static void test_digest_region_edges(void **state)
{
	struct fixture *f = *state;
	const uint64_t offs[] = {0, f->region - 1, f->region, 2 * f->region, f->size[0] - 1};
	struct ram_digest a, b;
	uint64_t i;

	scratch(f, &a);
	for (i = 0; i < ARRAY_SIZE(offs); i++) {
		f->ram[0][offs[i]] ^= 0x20;
		scratch(f, &b);
		f->ram[0][offs[i]] ^= 0x20;
		assert_false(digest_eq(&a, &b));
	}
	scratch(f, &b);
	assert_true(digest_eq(&a, &b));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_dest_round1),
	    T(test_dest_landing_after_hash),
	    T(test_dest_worker_hashes),
	    T(test_dest_unreported_write_unseen),
	    T(test_dest_random),
	    T(test_src_armed_only),
	    T(test_src_worker_pending),
	    T(test_src_redirtied),
	    T(test_src_unreported_write_unseen),
	    T(test_src_random),
	    T(test_digest_region_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
