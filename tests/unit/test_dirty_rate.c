/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the guest's dirty rate (core/dirty_rate.c) and for what a
 * dirty-log sync counts as newly dirtied (core/ram.c).
 *
 * The windows get their clock from the test: syncs every 5 ms (and one long
 * round) at known rates, checking that nothing is published before a window
 * of 1 s closes, that the first all-set sync and the bulk round are left
 * out, that paused time is not run time, and that the published figure is
 * the rate that was fed in. The sync tests use a provider that behaves like
 * KVM's manual-protect log: a page stays reported until its chunk is
 * re-armed.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "tests/cmocka_compat.h"
#include "core/core_priv.h"
#include "util/util.h"

#define MS 1000000ull
#define T0 7000000000ull

/* A sync every @step_ns from @*now for @n syncs, @pages each. Returns how
 * many closed a window. */
static int feed(struct dirty_rate *dr, uint64_t *now, uint64_t step_ns, uint64_t pages, int n)
{
	int closed = 0, i;

	for (i = 0; i < n; i++) {
		*now += step_ns;
		closed += dirty_rate_sync(dr, *now, pages, 0);
	}
	return closed;
}

static void assert_near(uint64_t got, double want, double tol)
{
	if ((double)got < want * (1 - tol) || (double)got > want * (1 + tol))
		fail_msg("rate %" PRIu64 " not within %.0f%% of %.0f", got, tol * 100, want);
}

static void test_nothing_before_a_second(void **state)
{
	struct dirty_rate dr;
	uint64_t now = T0;

	dirty_rate_init(&dr);
	/* the all-set sync and the end of the bulk round */
	assert_false(dirty_rate_sync(&dr, now, 262144, 0));
	dirty_rate_bulk_sent(&dr);
	now += 800 * MS;
	assert_false(dirty_rate_sync(&dr, now, 9000, 0));
	/* 199 syncs 5 ms apart: 995 ms of run time, no window yet */
	assert_int_equal(feed(&dr, &now, 5 * MS, 64, 199), 0);
	assert_true(dr.rate == 0 && dr.rate_win_ns == 0);
	/* the 200th makes it a second */
	assert_int_equal(feed(&dr, &now, 5 * MS, 64, 1), 1);
	assert_near(dr.rate, 12800, 0.001);
	assert_true(dr.rate_win_ns == 1000 * MS);
}

static void test_steady_rate(void **state)
{
	struct dirty_rate dr;
	uint64_t now = T0;
	int closed;

	dirty_rate_init(&dr);
	dirty_rate_sync(&dr, now, 262144, 0);
	dirty_rate_bulk_sent(&dr);
	now += 300 * MS;
	dirty_rate_sync(&dr, now, 3000, 0);
	/* 12207 pages/s (50 MB/s of 4 KiB pages) in 5 ms syncs of 61 or 62
	 * pages, as a guest writing that fast is seen; 10 s of it */
	closed = 0;
	for (int i = 0; i < 2000; i++) {
		now += 5 * MS;
		closed += dirty_rate_sync(&dr, now, i % 3 == 0 ? 62 : 61, 0);
		/* what was published is always near the rate, never the
		 * 5 ms figure of one sync */
		if (dr.rate)
			assert_near(dr.rate, 12207, 0.02);
	}
	assert_int_equal(closed, 10);
	/* the rate changes: the next full window says so */
	closed = feed(&dr, &now, 5 * MS, 20, 200);
	assert_int_equal(closed, 1);
	assert_near(dr.rate, 4000, 0.001);
}

static void test_bulk_excluded(void **state)
{
	struct dirty_rate dr;
	uint64_t now = T0;

	dirty_rate_init(&dr);
	/* the first sync reports all 1 GiB, and all of it seemed to fit the
	 * downtime: the loop synced again before sending anything */
	assert_false(dirty_rate_sync(&dr, now, 262144, 0));
	now += 5 * MS;
	assert_false(dirty_rate_sync(&dr, now, 262144, 0));
	/* it did not fit; the bulk round took 2 s and its sync reports what
	 * the sender saw of it (here: a lot) */
	dirty_rate_bulk_sent(&dr);
	now += 2000 * MS;
	assert_false(dirty_rate_sync(&dr, now, 200000, 0));
	assert_true(dr.rate == 0);
	/* then 1000 pages/s */
	assert_int_equal(feed(&dr, &now, 10 * MS, 10, 100), 1);
	assert_near(dr.rate, 1000, 0.001);
}

static void test_long_round_is_its_window(void **state)
{
	struct dirty_rate dr;
	uint64_t now = T0;

	dirty_rate_init(&dr);
	dirty_rate_sync(&dr, now, 262144, 0);
	dirty_rate_bulk_sent(&dr);
	now += 5000 * MS;
	dirty_rate_sync(&dr, now, 50000, 0);
	/* 0.4 s, then a 3 s round: one window of 3.4 s */
	assert_int_equal(feed(&dr, &now, 400 * MS, 400, 1), 0);
	assert_int_equal(feed(&dr, &now, 3000 * MS, 9000, 1), 1);
	assert_near(dr.rate, 9400 / 3.4, 0.001);
	assert_true(dr.rate_win_ns == 3400 * MS);
	/* a 2 s round alone */
	assert_int_equal(feed(&dr, &now, 2000 * MS, 1000, 1), 1);
	assert_near(dr.rate, 500, 0.001);
}

static void test_paused_time_excluded(void **state)
{
	struct dirty_rate dr;
	uint64_t now = T0;

	dirty_rate_init(&dr);
	dirty_rate_sync(&dr, now, 262144, 0);
	dirty_rate_bulk_sent(&dr);
	now += 100 * MS;
	dirty_rate_sync(&dr, now, 10, 0);
	assert_int_equal(feed(&dr, &now, 100 * MS, 100, 9), 0); /* 900 ms */
	/* the switchover: 100 ms of running, then paused for 400 ms */
	now += 500 * MS;
	assert_true(dirty_rate_sync(&dr, now, 100, 400 * MS));
	assert_near(dr.rate, 1000, 0.001);
	assert_true(dr.rate_win_ns == 1000 * MS);
}

/* ---- what a sync counts ------------------------------------------------- */

/*
 * A provider like KVM's manual-protect log: a page written is reported by
 * every sync until the library re-arms its chunk (clear).
 */
struct kvm_like {
	struct tern_ram_block *block;
	uint64_t map[8]; /* 512 pages */
	uint64_t npages;
	bool initially_set;
};

static int kl_start(void *opaque, struct tern_error *err)
{
	struct kvm_like *k = opaque;

	if (k->initially_set)
		bitmap_set_range(k->map, 0, k->npages);
	return 0;
}

static int kl_sync(void *opaque, struct tern_error *err)
{
	struct kvm_like *k = opaque;

	return tern_dirty_report(k->block, 0, k->map, k->npages);
}

static int kl_clear(void *opaque, struct tern_ram_block *b, uint64_t first, uint64_t n,
		    struct tern_error *err)
{
	struct kvm_like *k = opaque;
	uint64_t i;

	for (i = first; i < first + n; i++)
		bitmap_clear_bit(k->map, i);
	return 0;
}

static const struct tern_dirty_source_ops kl_ops = {
    .name = "kvm-like",
    .start = kl_start,
    .sync = kl_sync,
    .clear = kl_clear,
};

struct fixture {
	struct tern_session *s;
	void *ram;
	size_t len;
	struct kvm_like k;
	struct tern_ram_block *b;
	struct tern_error err;
};

static int fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	tern_session_free(f->s);
	if (f->ram)
		munmap(f->ram, f->len);
	free(f);
	return 0;
}

/* A 512-page block with the kvm-like provider and 64-page clear chunks. */
static void kl_setup(struct fixture *f, bool initially_set)
{
	assert_rc_equal(tern_session_new(NULL, NULL, &f->s, NULL), 0);
	f->len = 512 * (size_t)f->s->page_size;
	f->ram = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(f->ram != MAP_FAILED);
	assert_rc_equal(tern_ram_register(f->s, "ram", f->ram, f->len, &f->b, NULL), 0);
	assert_rc_equal(tern_param_set(f->s, "clear-bitmap-shift", 6, NULL), 0);
	f->k.block = f->b;
	f->k.npages = 512;
	f->k.initially_set = initially_set;
	assert_rc_equal(tern_dirty_source_add(f->s, &kl_ops, &f->k, NULL), 0);
	assert_rc_equal(ram_prepare_source(f->s, &f->err), 0);
}

/* The send loop, as send_round() does it: re-arm a reported chunk, then
 * take its pages. Only the chunks in [@c0, @c1). */
static void send_chunks(struct fixture *f, uint64_t c0, uint64_t c1)
{
	uint64_t c;

	for (c = c0; c < c1; c++) {
		if (bitmap_test(f->b->clear_chunks, c)) {
			bitmap_clear_bit(f->b->clear_chunks, c);
			assert_rc_equal(kl_clear(&f->k, f->b, c * 64, 64, NULL), 0);
		}
		f->b->send[c] = 0; /* 64 pages a word, one word a chunk */
	}
}

static void guest_writes(struct fixture *f, uint64_t first, uint64_t n)
{
	uint64_t i;

	/* a page still reported (not re-armed) is not write-protected: KVM
	 * cannot see the write, its bit is set already */
	for (i = first; i < first + n; i++)
		bitmap_set(f->k.map, i);
}

static void test_sync_repeat_not_counted(void **state)
{
	struct fixture *f = *state;
	uint64_t n = 0;

	kl_setup(f, true);
	/* the first sync: every page (KVM_DIRTY_LOG_INITIALLY_SET) */
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 512);
	send_chunks(f, 0, 8); /* the bulk round */
	guest_writes(f, 10, 20);
	guest_writes(f, 300, 5);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 25);
	/* synced again at once (the loop waited for an acknowledgement): the
	 * log repeats those 25 pages, nothing was written */
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 0);
	/* new writes in those chunks, and in one nobody reported yet, count */
	guest_writes(f, 40, 2);
	guest_writes(f, 450, 3);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 5);
	assert_true(ram_pending_pages(f->s) == 30);
	/* the round sends chunk 0 only; the guest rewrites page 10 (chunk 0,
	 * re-armed: seen) and page 300 (chunk 4, not: unseen, and it needs no
	 * second send, its copy is still to be read) */
	send_chunks(f, 0, 1);
	guest_writes(f, 10, 1);
	guest_writes(f, 300, 1);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 1);
	assert_true(ram_pending_pages(f->s) == 30 - 22 + 1);
}

static void test_sync_pending_rewrite_counted(void **state)
{
	struct fixture *f = *state;
	uint64_t n = 0, P;

	kl_setup(f, false);
	P = f->s->page_size;
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 0);
	send_chunks(f, 0, 8);
	guest_writes(f, 0, 64);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 64);
	/* the round is cut after the chunk was re-armed: its pages wait in
	 * send for the next round, and the guest writes them again. Written
	 * in this interval: they count, though pending already. */
	bitmap_clear_bit(f->b->clear_chunks, 0);
	assert_rc_equal(kl_clear(&f->k, f->b, 0, 64, NULL), 0);
	guest_writes(f, 0, 64);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 64);
	/* the VMM's own marks count each time too, pending or not */
	assert_rc_equal(tern_ram_mark_dirty(f->b, 100 * P, 2 * P), 0);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 2);
	assert_rc_equal(tern_ram_mark_dirty(f->b, 100 * P, 2 * P), 0);
	assert_rc_equal(ram_sync(f->s, &n, &f->err), 0);
	assert_true(n == 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nothing_before_a_second),
	    cmocka_unit_test(test_steady_rate),
	    cmocka_unit_test(test_bulk_excluded),
	    cmocka_unit_test(test_long_round_is_its_window),
	    cmocka_unit_test(test_paused_time_excluded),
	    cmocka_unit_test_setup_teardown(test_sync_repeat_not_counted, fixture_setup,
					    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_sync_pending_rewrite_counted, fixture_setup,
					    fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
