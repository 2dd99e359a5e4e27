/* SPDX-License-Identifier: MIT */
/*
 * Session events for subscribers (core/observe.c): what a VMM, or the
 * management server, sees through tern_observer_add(), and that the state
 * machine and the precopy loop report through it, not to the server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/cmocka_compat.h"
#include "core/core_priv.h"
#include "tern/tern.h"

struct seen {
	unsigned int states, rounds, closings;
	enum tern_status from, to;
	struct tern_round_info last;
};

static void on_state(void *opaque, enum tern_status from, enum tern_status to)
{
	struct seen *w = opaque;

	w->states++;
	w->from = from;
	w->to = to;
}

static void on_round(void *opaque, const struct tern_round_info *info)
{
	struct seen *w = opaque;

	w->rounds++;
	w->last = *info;
}

static void on_closing(void *opaque)
{
	((struct seen *)opaque)->closings++;
}

static const struct tern_observer_ops all_ops = {
    .state = on_state,
    .round = on_round,
    .closing = on_closing,
};
static const struct tern_observer_ops no_ops = {0};

struct fix {
	struct tern_session *s;
	struct seen a, b;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tern_session_new(NULL, NULL, &f->s, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	tern_session_free(f->s);
	free(f);
	return 0;
}

/* A transition and a round reach every subscriber, with their figures. */
static void test_events_reach_subscribers(void **state)
{
	struct fix *f = *state;

	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->a, NULL), 0);
	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->b, NULL), 0);
	assert_true(session_transition(f->s, TERN_STATUS_NONE, TERN_STATUS_SETUP));
	assert_int_equal(f->a.states, 1);
	assert_int_equal(f->b.states, 1);
	assert_int_equal(f->a.from, TERN_STATUS_NONE);
	assert_int_equal(f->a.to, TERN_STATUS_SETUP);
	/* a refused transition is no event */
	assert_false(session_transition(f->s, TERN_STATUS_NONE, TERN_STATUS_ACTIVE));
	assert_int_equal(f->a.states, 1);

	__atomic_store_n(&f->s->remaining_pages, 10, __ATOMIC_RELAXED);
	__atomic_store_n(&f->s->throttle_pct, 30, __ATOMIC_RELAXED);
	observers_round(f->s, 3, 77);
	assert_int_equal(f->a.rounds, 1);
	assert_int_equal(f->a.last.round, 3);
	assert_int_equal(f->a.last.dirty_pages, 77);
	assert_int_equal(f->a.last.ram_remaining, 10 * (uint64_t)f->s->page_size);
	assert_int_equal(f->a.last.cpu_throttle_percent, 30);
	assert_int_equal(f->b.rounds, 1);
}

/* Removed means silent; twice is -ENOENT; the same pair twice is -EEXIST. */
static void test_remove_and_duplicates(void **state)
{
	struct fix *f = *state;
	struct tern_error err = {0};

	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->a, NULL), 0);
	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->a, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "already"));
	assert_ptr_equal(tern_observer_find(f->s, &all_ops), &f->a);
	assert_int_equal(tern_observer_remove(f->s, &all_ops, &f->a), 0);
	assert_int_equal(tern_observer_remove(f->s, &all_ops, &f->a), -ENOENT);
	assert_null(tern_observer_find(f->s, &all_ops));
	assert_true(session_transition(f->s, TERN_STATUS_NONE, TERN_STATUS_SETUP));
	assert_int_equal(f->a.states, 0);
}

/* Hooks are optional; the list is bounded. */
static void test_bounded_and_optional(void **state)
{
	struct fix *f = *state;
	struct seen many[TERN_MAX_OBSERVERS + 1];
	uint32_t i;

	memset(many, 0, sizeof(many));
	for (i = 0; i < TERN_MAX_OBSERVERS; i++)
		assert_int_equal(tern_observer_add(f->s, i ? &all_ops : &no_ops, &many[i], NULL),
				 0);
	assert_int_equal(tern_observer_add(f->s, &all_ops, &many[i], NULL), -ENOSPC);
	assert_true(session_transition(f->s, TERN_STATUS_NONE, TERN_STATUS_SETUP));
	observers_round(f->s, 1, 0);
	assert_int_equal(many[0].states, 0); /* no hooks: nothing called */
	for (i = 1; i < TERN_MAX_OBSERVERS; i++) {
		assert_int_equal(many[i].states, 1);
		assert_int_equal(many[i].rounds, 1);
	}
	assert_int_equal(many[TERN_MAX_OBSERVERS].states, 0);
	/* @many dies with this frame: free the session (its closing hooks
	 * write there) before returning */
	tern_session_free(f->s);
	f->s = NULL;
	for (i = 1; i < TERN_MAX_OBSERVERS; i++)
		assert_int_equal(many[i].closings, 1);
}

/* Freeing the session says so once to each subscriber, which is gone then. */
static void test_closing_on_free(void **state)
{
	struct fix *f = *state;

	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->a, NULL), 0);
	assert_int_equal(tern_observer_add(f->s, &all_ops, &f->b, NULL), 0);
	tern_session_free(f->s);
	f->s = NULL;
	assert_int_equal(f->a.closings, 1);
	assert_int_equal(f->b.closings, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_events_reach_subscribers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_and_duplicates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounded_and_optional, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_closing_on_free, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
