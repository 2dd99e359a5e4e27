/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for tcp/zc_track.c: the bookkeeping of MSG_ZEROCOPY completions.
 * Ranges in order, out of order, merged by the kernel, reported twice or for
 * sends never made, the copied flag, and the wrap of the kernel's u32 counter.
 */
#include <errno.h>
#include <stdlib.h>

#include "tests/cmocka_compat.h"
#include "tcp/zc_track.h"

static int setup(void **state)
{
	struct zc_track *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	zc_track_init(t);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

static void send_n(struct zc_track *t, uint32_t n)
{
	while (n--)
		zc_track_sent(t);
}

static void test_in_order(void **state)
{
	struct zc_track *t = *state;

	assert_true(zc_track_idle(t));
	assert_uint_equal(zc_track_sent(t), 0);
	assert_uint_equal(zc_track_sent(t), 1);
	assert_uint_equal(zc_track_sent(t), 2);
	assert_uint_equal(zc_track_inflight(t), 3);
	assert_int_equal(zc_track_complete(t, 0, 0, false), 1);
	assert_uint_equal(zc_track_inflight(t), 2);
	assert_int_equal(zc_track_complete(t, 1, 2, false), 2);
	assert_true(zc_track_idle(t));
	assert_uint_equal(zc_track_span(t), 0);
	assert_uint_equal(t->sent, 3);
	assert_uint_equal(t->completed, 3);
	assert_uint_equal(t->copied, 0);
}

/* The oldest send completes last: nothing is idle until it does. */
static void test_out_of_order(void **state)
{
	struct zc_track *t = *state;

	send_n(t, 6);
	assert_int_equal(zc_track_complete(t, 4, 4, false), 1);
	assert_int_equal(zc_track_complete(t, 2, 2, false), 1);
	assert_uint_equal(t->nr, 2);
	assert_uint_equal(zc_track_inflight(t), 4);
	assert_uint_equal(zc_track_span(t), 6);
	/* 3 joins 2 and 4 into one range */
	assert_int_equal(zc_track_complete(t, 3, 3, false), 1);
	assert_uint_equal(t->nr, 1);
	assert_int_equal(zc_track_complete(t, 5, 5, false), 1);
	assert_uint_equal(t->nr, 1);
	assert_false(zc_track_idle(t));
	assert_uint_equal(zc_track_inflight(t), 2);
	assert_int_equal(zc_track_complete(t, 1, 1, false), 1);
	assert_int_equal(zc_track_complete(t, 0, 0, false), 1);
	assert_true(zc_track_idle(t));
	assert_uint_equal(t->nr, 0);
	assert_uint_equal(t->completed, 6);
}

/* A range the kernel merged from several notifications, in reverse. */
static void test_merged_ranges(void **state)
{
	struct zc_track *t = *state;

	send_n(t, 10);
	assert_int_equal(zc_track_complete(t, 6, 9, false), 4);
	assert_uint_equal(zc_track_span(t), 10);
	assert_int_equal(zc_track_complete(t, 0, 2, false), 3);
	assert_uint_equal(t->base, 3);
	assert_uint_equal(zc_track_span(t), 7);
	assert_int_equal(zc_track_complete(t, 3, 5, false), 3);
	assert_true(zc_track_idle(t));
	/* more sends after idle: numbering goes on */
	assert_uint_equal(zc_track_sent(t), 10);
	assert_int_equal(zc_track_complete(t, 10, 10, false), 1);
	assert_true(zc_track_idle(t));
}

static void test_copied(void **state)
{
	struct zc_track *t = *state;

	send_n(t, 5);
	assert_int_equal(zc_track_complete(t, 0, 1, true), 2);
	assert_int_equal(zc_track_complete(t, 3, 4, false), 2);
	assert_int_equal(zc_track_complete(t, 2, 2, true), 1);
	assert_uint_equal(t->completed, 5);
	assert_uint_equal(t->copied, 3);
}

/* Nothing changes on a range that is not wholly in flight. */
static void test_bad_ranges(void **state)
{
	struct zc_track *t = *state;

	assert_rc_equal(zc_track_complete(t, 0, 0, false), -EPROTO); /* none sent */
	send_n(t, 4);
	assert_rc_equal(zc_track_complete(t, 0, 4, false), -EPROTO); /* 4 not sent */
	assert_rc_equal(zc_track_complete(t, 2, 1, false), -EPROTO); /* backwards */
	assert_rc_equal(zc_track_complete(t, 7, 9, false), -EPROTO);
	assert_int_equal(zc_track_complete(t, 1, 2, false), 2);
	assert_rc_equal(zc_track_complete(t, 2, 2, false), -EPROTO); /* twice */
	assert_rc_equal(zc_track_complete(t, 0, 1, false), -EPROTO); /* overlaps */
	assert_rc_equal(zc_track_complete(t, 2, 3, false), -EPROTO);
	assert_uint_equal(zc_track_inflight(t), 2);
	assert_int_equal(zc_track_complete(t, 0, 0, false), 1);
	assert_uint_equal(t->base, 3);
	assert_rc_equal(zc_track_complete(t, 0, 0, false), -EPROTO); /* behind base */
	assert_int_equal(zc_track_complete(t, 3, 3, false), 1);
	assert_true(zc_track_idle(t));
	assert_uint_equal(t->completed, 4);
}

/* The kernel's counter wraps at 2^32; a range may straddle it. */
static void test_wrap(void **state)
{
	struct zc_track *t = *state;

	t->base = t->next = UINT32_MAX - 2;
	send_n(t, 6); /* UINT32_MAX - 2 .. 2 */
	assert_uint_equal(t->next, 3);
	assert_int_equal(zc_track_complete(t, 1, 2, true), 2);
	assert_int_equal(zc_track_complete(t, UINT32_MAX - 1, 0, false), 3);
	assert_uint_equal(zc_track_inflight(t), 1);
	assert_rc_equal(zc_track_complete(t, 3, 3, false), -EPROTO);
	assert_int_equal(zc_track_complete(t, UINT32_MAX - 2, UINT32_MAX - 2, false), 1);
	assert_true(zc_track_idle(t));
	assert_uint_equal(t->copied, 2);
}

/* Every other send of a full window completes first: the most ranges the
 * tracker ever holds; then the rest, from the newest down. */
static void test_full_window(void **state)
{
	struct zc_track *t = *state;
	uint32_t i;

	send_n(t, ZC_TRACK_MAX);
	for (i = 1; i < ZC_TRACK_MAX; i += 2)
		assert_int_equal(zc_track_complete(t, i, i, false), 1);
	assert_uint_equal(t->nr, ZC_TRACK_MAX / 2);
	assert_uint_equal(zc_track_inflight(t), ZC_TRACK_MAX / 2);
	for (i = ZC_TRACK_MAX - 2; i > 0; i -= 2)
		assert_int_equal(zc_track_complete(t, i, i, false), 1);
	assert_uint_equal(t->nr, 1);
	assert_false(zc_track_idle(t));
	assert_int_equal(zc_track_complete(t, 0, 0, false), 1);
	assert_true(zc_track_idle(t));
	assert_uint_equal(t->completed, ZC_TRACK_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_merged_ranges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_copied, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_ranges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_window, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
