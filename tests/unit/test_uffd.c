/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for uffd/: a thread touching a page that was never placed
 * blocks, its fault is read with the right address, kind and thread, and
 * it goes on with exactly the bytes placed; pages present already are left
 * alone and counted; zero pages; bad ranges refused with a message; a
 * reader interrupted; unregistered memory no longer faults.
 *
 * Runs where userfaultfd is allowed (root, or vm.unprivileged_userfaultfd);
 * elsewhere every test is skipped with the reason. Helper threads never
 * call cmocka assertions; they record what they saw.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "uffd/uffd.h"

#define NPAGES 16

struct fixture {
	struct uffd *u;
	uint8_t *ram;
	uint64_t page;
	/* the toucher thread */
	pthread_t thread;
	bool started;
	uint64_t at;   /* page index it touches */
	bool write;    /* it writes 0x5a there instead of reading */
	uint8_t value; /* what it read */
	int done;      /* atomic: it got past the access */
	uint32_t tid;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct tern_error err = {0};

	assert_non_null(f);
	if (uffd_open(&f->u, &err)) {
		free(f);
		fprintf(stderr, "skipped: %s\n", err.msg);
		*state = NULL;
		return 0;
	}
	f->page = uffd_page_size(f->u);
	f->ram = mmap(NULL, NPAGES * f->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	assert_true(f->ram != MAP_FAILED);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	/* closing the descriptor wakes a toucher still blocked (a failed
	 * test): it then faults in a zero page and ends */
	uffd_close(f->u);
	if (f->started)
		pthread_join(f->thread, NULL);
	munmap(f->ram, NPAGES * f->page);
	free(f);
	return 0;
}

static struct fixture *fixture_or_skip(void **state)
{
	if (!*state)
		skip();
	return *state;
}

static void *toucher(void *arg)
{
	struct fixture *f = arg;
	volatile uint8_t *p = f->ram + f->at * f->page + 7;

	__atomic_store_n(&f->tid, (uint32_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (f->write)
		*p = 0x5a;
	else
		f->value = *p;
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void touch_async(struct fixture *f, uint64_t at, bool write)
{
	f->at = at;
	f->write = write;
	assert_int_equal(pthread_create(&f->thread, NULL, toucher, f), 0);
	f->started = true;
}

static void register_all(struct fixture *f)
{
	struct tern_error err = {0};

	assert_rc_equal(uffd_register(f->u, f->ram, NPAGES * f->page, &err), 0);
}

/* A read of a missing page waits for it and then sees the placed bytes. */
static void test_read_fault_waits_for_copy(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct uffd_fault flt[4];
	uint8_t *src = aligned_alloc(f->page, f->page);
	uint64_t present = 99;

	register_all(f);
	memset(src, 0xc3, f->page);
	touch_async(f, 5, false);
	assert_rc_equal(uffd_read_faults(f->u, flt, 4, 5000, &err), 1);
	assert_ptr_equal((void *)(uintptr_t)flt[0].addr, f->ram + 5 * f->page);
	assert_false(flt[0].write);
	if (flt[0].tid) /* the kernel says which thread, where it can */
		assert_uint_equal(flt[0].tid, __atomic_load_n(&f->tid, __ATOMIC_ACQUIRE));
	usleep(20000);
	assert_int_equal(__atomic_load_n(&f->done, __ATOMIC_ACQUIRE), 0); /* still waiting */
	assert_rc_equal(uffd_copy(f->u, f->ram + 5 * f->page, src, f->page, &present, &err), 0);
	assert_uint_equal(present, 0);
	pthread_join(f->thread, NULL);
	f->started = false;
	assert_int_equal(f->value, 0xc3);
	free(src);
}

/* A write fault is reported as one, and the write lands on the placed page. */
static void test_write_fault_then_zero(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct uffd_fault flt[4];

	register_all(f);
	touch_async(f, 2, true);
	assert_rc_equal(uffd_read_faults(f->u, flt, 4, 5000, &err), 1);
	assert_ptr_equal((void *)(uintptr_t)flt[0].addr, f->ram + 2 * f->page);
	assert_true(flt[0].write);
	assert_rc_equal(uffd_zero(f->u, f->ram + 2 * f->page, f->page, NULL, &err), 0);
	pthread_join(f->thread, NULL);
	f->started = false;
	assert_int_equal(f->ram[2 * f->page + 7], 0x5a);
	assert_int_equal(f->ram[2 * f->page + 6], 0);
	assert_int_equal(f->ram[2 * f->page + 8], 0);
}

/* A page already present stays as it is, is counted, and the rest of the
 * range is still placed. */
static void test_present_pages_left_alone(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	uint8_t *a = aligned_alloc(f->page, 4 * f->page), *b = aligned_alloc(f->page, f->page);
	uint64_t present = 99, i;

	register_all(f);
	memset(a, 0xaa, 4 * f->page);
	memset(b, 0xbb, f->page);
	assert_rc_equal(uffd_copy(f->u, f->ram + 2 * f->page, b, f->page, &present, &err), 0);
	assert_uint_equal(present, 0);
	assert_rc_equal(uffd_copy(f->u, f->ram, a, 4 * f->page, &present, &err), 0);
	assert_uint_equal(present, 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(f->ram[i * f->page + 100], i == 2 ? 0xbb : 0xaa);
	/* all present now: nothing written, all counted */
	assert_rc_equal(uffd_zero(f->u, f->ram, 4 * f->page, &present, &err), 0);
	assert_uint_equal(present, 4);
	assert_int_equal(f->ram[100], 0xaa);
	free(a);
	free(b);
}

/* Placed zero pages read as zero without a fault. */
static void test_zero_pages_no_fault(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct uffd_fault flt[1];
	uint64_t i, sum = 0;

	register_all(f);
	assert_rc_equal(uffd_zero(f->u, f->ram + 8 * f->page, 2 * f->page, NULL, &err), 0);
	for (i = 0; i < 2 * f->page; i++)
		sum += f->ram[8 * f->page + i];
	assert_uint_equal(sum, 0);
	assert_rc_equal(uffd_read_faults(f->u, flt, 1, 0, &err), 0);
}

/* Misaligned or unregistered ranges: an error that says what and where. */
static void test_bad_ranges(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	uint8_t *src = aligned_alloc(f->page, 2 * f->page);
	uint8_t *other =
	    mmap(NULL, f->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(other != MAP_FAILED);
	register_all(f);
	memset(src, 1, 2 * f->page);
	assert_rc_equal(uffd_copy(f->u, f->ram + 1, src, f->page, NULL, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "whole number"));
	err = (struct tern_error){0};
	assert_rc_equal(uffd_copy(f->u, f->ram, src, f->page + 8, NULL, &err), -EINVAL);
	err = (struct tern_error){0};
	assert_rc_equal(uffd_register(f->u, f->ram, 0, &err), -EINVAL);
	err = (struct tern_error){0};
	/* memory never registered with this descriptor */
	assert_true(uffd_copy(f->u, other, src, f->page, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "placing page"));
	assert_int_equal(other[0], 0);
	/* past the registered range */
	err = (struct tern_error){0};
	assert_true(uffd_copy(f->u, f->ram + (NPAGES - 1) * f->page, src, 2 * f->page, NULL, &err) <
		    0);
	munmap(other, f->page);
	free(src);
}

struct reader {
	struct uffd *u;
	int ret;
};

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	struct uffd_fault flt[1];

	r->ret = uffd_read_faults(r->u, flt, 1, -1, NULL);
	return NULL;
}

/* A reader waiting without a bound is ended by uffd_interrupt(), and every
 * later read ends at once. */
static void test_interrupt(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct reader r = {.u = f->u, .ret = 1};
	struct uffd_fault flt[1];
	pthread_t t;

	register_all(f);
	assert_int_equal(pthread_create(&t, NULL, reader_thread, &r), 0);
	usleep(20000);
	uffd_interrupt(f->u);
	pthread_join(t, NULL);
	assert_rc_equal(r.ret, -ECANCELED);
	assert_rc_equal(uffd_read_faults(f->u, flt, 1, 1000, NULL), -ECANCELED);
}

/* A wait with nothing to read ends when its bound does. */
static void test_timeout(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct uffd_fault flt[1];
	struct timespec a, b;

	register_all(f);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_rc_equal(uffd_read_faults(f->u, flt, 1, 50, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 45);
}

/* Unregistered again, a missing page is the kernel's zero page once more. */
static void test_unregister(void **state)
{
	struct fixture *f = fixture_or_skip(state);
	struct tern_error err = {0};
	struct uffd_fault flt[1];

	register_all(f);
	assert_rc_equal(uffd_unregister(f->u, f->ram, NPAGES * f->page, &err), 0);
	assert_int_equal(f->ram[3 * f->page], 0);
	f->ram[4 * f->page] = 9;
	assert_rc_equal(uffd_read_faults(f->u, flt, 1, 0, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_read_fault_waits_for_copy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_fault_then_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_present_pages_left_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_zero_pages_no_fault, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_ranges, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unregister, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
