/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for core/pc_dest.c, postcopy's destination side, on real
 * userfaultfd: a thread touching a missing page waits and its page is
 * requested once, however many threads fault on it; it goes on with
 * exactly the bytes placed, not the stale copy the destination held; pages
 * the destination holds are left alone, absent zero pages are answered
 * without a request; later copies are dropped; bad placements refused;
 * a failed request leaves the page missing and the thread waiting; fault
 * latency counted.
 *
 * Skipped, with the reason, where userfaultfd is not allowed. Helper
 * threads never call cmocka assertions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "core/postcopy.h"

#define PS 4096u
#define NPAGES 16
#define MAXREQ 64

struct toucher {
	pthread_t t;
	bool started;
	uint8_t *addr;
	uint8_t value;
	int done; /* atomic */
};

struct fixture {
	uint8_t *ram[2];
	struct pc_dest *pc;
	uint64_t *missing[2];
	struct toucher th[4];
	/* requests seen, under ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t nreq;
	uint32_t req_block[MAXREQ];
	uint64_t req_page[MAXREQ];
	int fail_requests;  /* the hook answers -EPIPE */
	bool answer;	    /* the hook places the page itself (a source) */
	uint8_t answer_val; /* ... filled with this */
	int failed;	    /* the failed hook ran */
	char failed_msg[256];
};

static int hook_request(void *opaque, uint32_t block, uint64_t page, struct tern_error *err)
{
	struct fixture *f = opaque;
	uint8_t buf[PS];

	pthread_mutex_lock(&f->lock);
	if (f->nreq < MAXREQ) {
		f->req_block[f->nreq] = block;
		f->req_page[f->nreq] = page;
	}
	f->nreq++;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (f->fail_requests)
		return tern_error_set(err, -EPIPE, "return path: broken pipe");
	if (f->answer) {
		memset(buf, f->answer_val, sizeof(buf));
		return pc_dest_place(f->pc, block, page, 1, buf, err);
	}
	return 0;
}

static void hook_failed(void *opaque, const struct tern_error *err)
{
	struct fixture *f = opaque;

	pthread_mutex_lock(&f->lock);
	f->failed++;
	snprintf(f->failed_msg, sizeof(f->failed_msg), "%s", err->msg);
	pthread_mutex_unlock(&f->lock);
}

static const struct pc_dest_ops ops = {.request = hook_request, .failed = hook_failed};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct pc_dest_block blocks[2];
	struct tern_error err = {0};
	int i;

	assert_non_null(f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	for (i = 0; i < 2; i++) {
		f->ram[i] = mmap(NULL, NPAGES * PS, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(f->ram[i] != MAP_FAILED);
		f->missing[i] = bitmap_new(NPAGES);
		blocks[i] = (struct pc_dest_block){.host = f->ram[i], .npages = NPAGES};
	}
	struct pc_dest_cfg cfg = {
	    .page_size = PS, .nblocks = 2, .blocks = blocks, .ops = &ops, .opaque = f};
	if (pc_dest_new(&cfg, &f->pc, &err)) {
		fprintf(stderr, "skipped: %s\n", err.msg);
		f->pc = NULL;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	/* unregistering wakes a thread still waiting (a failed test) */
	pc_dest_free(f->pc);
	for (i = 0; i < 4; i++)
		if (f->th[i].started)
			pthread_join(f->th[i].t, NULL);
	for (i = 0; i < 2; i++) {
		munmap(f->ram[i], NPAGES * PS);
		bitmap_free(f->missing[i]);
	}
	free(f);
	return 0;
}

static struct fixture *fixture_or_skip(void **state)
{
	struct fixture *f = *state;

	if (!f->pc)
		skip();
	return f;
}

static void arm_and_start(struct fixture *f)
{
	struct tern_error err = {0};

	assert_rc_equal(pc_dest_arm(f->pc, (const uint64_t *const *)f->missing, &err), 0);
	assert_rc_equal(pc_dest_start(f->pc, &err), 0);
}

static void *touch_fn(void *arg)
{
	struct toucher *t = arg;

	t->value = *(volatile uint8_t *)t->addr;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void touch_async(struct fixture *f, int i, uint8_t *addr)
{
	f->th[i].addr = addr;
	assert_int_equal(pthread_create(&f->th[i].t, NULL, touch_fn, &f->th[i]), 0);
	f->th[i].started = true;
}

static uint8_t touch_join(struct fixture *f, int i)
{
	pthread_join(f->th[i].t, NULL);
	f->th[i].started = false;
	return f->th[i].value;
}

/* Wait up to 5 s for @n requests; how many there were. */
static uint32_t wait_requests(struct fixture *f, uint32_t n)
{
	struct timespec ts;
	uint32_t got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&f->lock);
	while (f->nreq < n && pthread_cond_timedwait(&f->cond, &f->lock, &ts) == 0)
		;
	got = f->nreq;
	pthread_mutex_unlock(&f->lock);
	return got;
}

/* A missing page: requested, waited for, then read as placed -- not as the
 * stale copy held before the switch; a held page keeps its content. */
static void test_missing_page_requested_then_placed(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct pc_dest_stats st;
	uint8_t page[PS];

	memset(f->ram[0] + 2 * PS, 0x11, PS); /* stale */
	memset(f->ram[0] + 3 * PS, 0x33, PS); /* held, valid */
	bitmap_set(f->missing[0], 2);
	arm_and_start(f);
	assert_uint_equal(pc_dest_missing(f->pc), 1);
	assert_int_equal(f->ram[0][3 * PS + 5], 0x33);
	touch_async(f, 0, f->ram[0] + 2 * PS + 100);
	assert_uint_equal(wait_requests(f, 1), 1);
	assert_uint_equal(f->req_block[0], 0);
	assert_uint_equal(f->req_page[0], 2);
	usleep(20000);
	assert_int_equal(__atomic_load_n(&f->th[0].done, __ATOMIC_ACQUIRE), 0);
	memset(page, 0x22, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 0, 2, 1, page, &err), 0);
	assert_int_equal(touch_join(f, 0), 0x22);
	assert_rc_equal(pc_dest_wait_complete(f->pc, 1000), 0);
	pc_dest_stats(f->pc, &st);
	assert_uint_equal(st.missing_at_switch, 1);
	assert_uint_equal(st.missing, 0);
	assert_uint_equal(st.requested, 1);
	assert_uint_equal(st.placed, 1);
	assert_uint_equal(st.latency_count, 1);
	assert_true(st.latency_max_us >= 15000); /* it waited our 20 ms */
	assert_true(st.latency_p50_us <= st.latency_max_us);
}

/* A page the destination holds as zero (never received, not missing):
 * answered here with a zero page, nobody asked. */
static void test_zero_fault_answered_locally(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct pc_dest_stats st;

	bitmap_set(f->missing[0], 5);
	arm_and_start(f);
	touch_async(f, 0, f->ram[1] + 9 * PS);
	assert_int_equal(touch_join(f, 0), 0);
	pc_dest_stats(f->pc, &st);
	assert_uint_equal(st.zero_faults, 1);
	assert_uint_equal(st.requested, 0);
	assert_uint_equal(f->nreq, 0);
	assert_uint_equal(pc_dest_missing(f->pc), 1);
}

/* Three threads on one missing page, in the second block: one request. */
static void test_one_request_per_page(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	uint8_t page[PS];
	int i;

	bitmap_set(f->missing[1], 7);
	arm_and_start(f);
	for (i = 0; i < 3; i++)
		touch_async(f, i, f->ram[1] + 7 * PS + (uint64_t)i * 64);
	assert_uint_equal(wait_requests(f, 1), 1);
	usleep(50000);
	assert_uint_equal(f->nreq, 1);
	assert_uint_equal(f->req_block[0], 1);
	assert_uint_equal(f->req_page[0], 7);
	memset(page, 0x77, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 1, 7, 1, page, &err), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(touch_join(f, i), 0x77);
}

/* The first copy of a page wins; later ones are dropped and counted. */
static void test_later_copies_dropped(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct pc_dest_stats st;
	uint8_t a[2 * PS], b[PS];

	bitmap_set(f->missing[0], 1);
	bitmap_set(f->missing[0], 2);
	arm_and_start(f);
	memset(a, 0xaa, sizeof(a));
	memset(b, 0xbb, sizeof(b));
	assert_rc_equal(pc_dest_place(f->pc, 0, 1, 2, a, &err), 0);
	assert_rc_equal(pc_dest_place(f->pc, 0, 1, 1, b, &err), 0);
	/* a zero copy of a page that is not missing changes nothing either */
	assert_rc_equal(pc_dest_place(f->pc, 0, 2, 1, NULL, &err), 0);
	assert_int_equal(f->ram[0][PS + 9], 0xaa);
	assert_int_equal(f->ram[0][2 * PS + 9], 0xaa);
	pc_dest_stats(f->pc, &st);
	assert_uint_equal(st.placed, 2);
	assert_uint_equal(st.duplicates, 2);
	assert_uint_equal(st.missing, 0);
}

/* Zero pages placed for missing ones read as zero, however stale before. */
static void test_zero_placement(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};

	memset(f->ram[0] + 4 * PS, 0x44, PS);
	bitmap_set(f->missing[0], 4);
	arm_and_start(f);
	assert_rc_equal(pc_dest_place(f->pc, 0, 4, 1, NULL, &err), 0);
	assert_int_equal(f->ram[0][4 * PS + 1], 0);
	assert_uint_equal(pc_dest_missing(f->pc), 0);
}

static void test_place_out_of_range(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	uint8_t page[2 * PS] = {0};

	bitmap_set(f->missing[0], 0);
	arm_and_start(f);
	assert_rc_equal(pc_dest_place(f->pc, 0, NPAGES, 1, page, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "out of range"));
	err = (struct tern_error){0};
	assert_rc_equal(pc_dest_place(f->pc, 0, NPAGES - 1, 2, page, &err), -ERANGE);
	err = (struct tern_error){0};
	assert_rc_equal(pc_dest_place(f->pc, 2, 0, 1, page, &err), -ERANGE);
	assert_uint_equal(pc_dest_missing(f->pc), 1);
	assert_rc_equal(pc_dest_wait_complete(f->pc, 30), -ETIMEDOUT);
}

/* A request that cannot be sent fails postcopy with the reason, and the
 * page stays missing: its thread waits (for recovery), it does not read a
 * zero page. */
static void test_failed_request_keeps_waiting(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	uint8_t page[PS];

	f->fail_requests = 1;
	bitmap_set(f->missing[0], 6);
	arm_and_start(f);
	touch_async(f, 0, f->ram[0] + 6 * PS);
	assert_uint_equal(wait_requests(f, 1), 1);
	usleep(50000);
	pthread_mutex_lock(&f->lock);
	assert_int_equal(f->failed, 1);
	assert_non_null(strstr(f->failed_msg, "broken pipe"));
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(__atomic_load_n(&f->th[0].done, __ATOMIC_ACQUIRE), 0);
	assert_true(pc_dest_is_missing(f->pc, 0, 6));
	memset(page, 0x66, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 0, 6, 1, page, &err), 0);
	assert_int_equal(touch_join(f, 0), 0x66);
}

/*
 * Recovery: requests lost with the connection (here: the hook answers
 * nothing), then pc_dest_rerequest() asks again for exactly the pages
 * requested and still missing -- not a page placed meanwhile, not a
 * missing page nobody touched -- and the missing map says what is left.
 */
static void test_rerequest_after_loss(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	const uint64_t *map;
	uint8_t page[PS];

	bitmap_set(f->missing[0], 4);
	bitmap_set(f->missing[0], 5);
	bitmap_set(f->missing[1], 9);
	bitmap_set(f->missing[1], 10); /* never touched */
	arm_and_start(f);
	touch_async(f, 0, f->ram[0] + 4 * PS);
	touch_async(f, 1, f->ram[0] + 5 * PS);
	touch_async(f, 2, f->ram[1] + 9 * PS);
	assert_uint_equal(wait_requests(f, 3), 3);
	/* page 5 arrives after all, in the bulk stream */
	memset(page, 0x55, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 0, 5, 1, page, &err), 0);
	assert_int_equal(touch_join(f, 1), 0x55);
	pthread_mutex_lock(&f->lock);
	f->nreq = 0;
	pthread_mutex_unlock(&f->lock);
	assert_uint_equal(pc_dest_rerequest(f->pc), 2);
	pthread_mutex_lock(&f->lock);
	assert_uint_equal(f->nreq, 2);
	assert_uint_equal(f->req_block[0], 0);
	assert_uint_equal(f->req_page[0], 4);
	assert_uint_equal(f->req_block[1], 1);
	assert_uint_equal(f->req_page[1], 9);
	pthread_mutex_unlock(&f->lock);
	map = pc_dest_missing_map(f->pc, 0);
	assert_true(bitmap_test(map, 4));
	assert_false(bitmap_test(map, 5));
	map = pc_dest_missing_map(f->pc, 1);
	assert_true(bitmap_test(map, 9));
	assert_true(bitmap_test(map, 10));
	assert_int_equal(f->failed, 0);
	memset(page, 0x44, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 0, 4, 1, page, &err), 0);
	memset(page, 0x99, sizeof(page));
	assert_rc_equal(pc_dest_place(f->pc, 1, 9, 1, page, &err), 0);
	assert_int_equal(touch_join(f, 0), 0x44);
	assert_int_equal(touch_join(f, 2), 0x99);
}

static void *sweep_fn(void *arg)
{
	struct toucher *t = arg;
	unsigned int i, sum = 0;

	for (i = 0; i < NPAGES; i++)
		sum += *(volatile uint8_t *)(t->addr + (uint64_t)i * PS);
	t->value = (uint8_t)sum;
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A source that answers every request at once: every page of a block
 * fetched on demand, one latency figure per page. */
static void test_on_demand_sweep(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct pc_dest_stats st;
	int i;

	f->answer = true;
	f->answer_val = 3;
	for (i = 0; i < NPAGES; i++)
		bitmap_set(f->missing[1], (uint64_t)i);
	arm_and_start(f);
	f->th[0].addr = f->ram[1];
	assert_int_equal(pthread_create(&f->th[0].t, NULL, sweep_fn, &f->th[0]), 0);
	f->th[0].started = true;
	assert_int_equal(touch_join(f, 0), (uint8_t)(3 * NPAGES));
	assert_rc_equal(pc_dest_wait_complete(f->pc, 1000), 0);
	pc_dest_stats(f->pc, &st);
	assert_uint_equal(st.requested, NPAGES);
	assert_uint_equal(st.placed, NPAGES);
	assert_uint_equal(st.latency_count, NPAGES);
	assert_true(st.latency_p50_us <= st.latency_p99_us);
	assert_true(st.latency_p99_us <= st.latency_max_us);
	assert_true(st.latency_max_us < 5000000);
}

struct placer {
	struct pc_dest *pc;
	bool reverse;
	int ret;
};

static void *placer_fn(void *arg)
{
	struct placer *p = arg;
	uint8_t page[PS];
	int i;

	for (i = 0; i < 2 * NPAGES; i++) {
		int k = p->reverse ? 2 * NPAGES - 1 - i : i;

		memset(page, k + 1, sizeof(page));
		p->ret |= pc_dest_place(p->pc, (uint32_t)(k / NPAGES), (uint64_t)(k % NPAGES), 1,
					page, NULL);
	}
	return NULL;
}

/* Two channels place every page, in opposite orders, while two threads
 * read them all: each page lands once, with its bytes, and every reader
 * sees them. */
static void test_concurrent_placers(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct placer pl[2] = {{.pc = NULL}, {.pc = NULL, .reverse = true}};
	struct pc_dest_stats st;
	pthread_t t[2];
	unsigned int want0 = 0, want1 = 0;
	int i;

	for (i = 0; i < NPAGES; i++) {
		bitmap_set(f->missing[0], (uint64_t)i);
		bitmap_set(f->missing[1], (uint64_t)i);
		want0 += (unsigned int)i + 1;
		want1 += (unsigned int)(NPAGES + i) + 1;
	}
	arm_and_start(f);
	f->th[0].addr = f->ram[0];
	f->th[1].addr = f->ram[1];
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_create(&f->th[i].t, NULL, sweep_fn, &f->th[i]), 0);
		f->th[i].started = true;
	}
	for (i = 0; i < 2; i++) {
		pl[i].pc = f->pc;
		assert_int_equal(pthread_create(&t[i], NULL, placer_fn, &pl[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_rc_equal(pl[i].ret, 0);
	}
	assert_int_equal(touch_join(f, 0), (uint8_t)want0);
	assert_int_equal(touch_join(f, 1), (uint8_t)want1);
	pc_dest_stats(f->pc, &st);
	assert_uint_equal(st.placed, 2 * NPAGES);
	assert_uint_equal(st.duplicates, 2 * NPAGES);
	assert_uint_equal(st.missing, 0);
	for (i = 0; i < NPAGES; i++) {
		assert_int_equal(f->ram[0][(uint64_t)i * PS + 17], i + 1);
		assert_int_equal(f->ram[1][(uint64_t)i * PS + 17], NPAGES + i + 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_missing_page_requested_then_placed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_zero_fault_answered_locally, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_request_per_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_later_copies_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_placement, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_place_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_request_keeps_waiting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_demand_sweep, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rerequest_after_loss, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_placers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
