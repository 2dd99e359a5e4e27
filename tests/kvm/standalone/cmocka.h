/* SPDX-License-Identifier: MIT */
/*
 * Just enough of cmocka's API to run the tests in tests/kvm without libcmocka, for a
 * static binary that runs where there is no cmocka (the kvm-in-qemu VM);
 * Debian ships no libcmocka.a. Put this directory first on the include path
 * (-Itests/kvm/standalone) and tests/cmocka_compat.h picks it up.
 * Same output idea and exit status as cmocka: the number of failed tests.
 */
#ifndef TERN_STANDALONE_CMOCKA_H
#define TERN_STANDALONE_CMOCKA_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);

struct CMUnitTest {
	const char *name;
	CMUnitTestFunction test_func;
	CMFixtureFunction setup_func;
	CMFixtureFunction teardown_func;
	void *initial_state;
};

#define cmocka_unit_test(f)                                                                        \
	{                                                                                          \
#f, f, NULL, NULL, NULL                                                            \
	}
#define cmocka_unit_test_setup_teardown(f, s, t)                                                   \
	{                                                                                          \
#f, f, s, t, NULL                                                                  \
	}

static jmp_buf sa_jmp;
static int sa_in_test;

enum { SA_FAILED = 1, SA_SKIPPED = 2 };

static void print_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), unused));
static void print_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

#define print_message(...) printf(__VA_ARGS__)

void _fail(const char *const file, const int line) __attribute__((noreturn));
void _fail(const char *const file, const int line)
{
	fprintf(stderr, "[  ERROR   ] --- %s:%d: failure\n", file, line);
	if (sa_in_test)
		longjmp(sa_jmp, SA_FAILED);
	exit(1);
}

static void sa_skip(const char *file, int line) __attribute__((noreturn, unused));
static void sa_skip(const char *file, int line)
{
	fprintf(stderr, "[   SKIP   ] --- %s:%d\n", file, line);
	if (sa_in_test)
		longjmp(sa_jmp, SA_SKIPPED);
	exit(77);
}

#define fail() _fail(__FILE__, __LINE__)
#define skip() sa_skip(__FILE__, __LINE__)
#define sa_check(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_error(__VA_ARGS__);                                                  \
			fail();                                                                    \
		}                                                                                  \
	} while (0)
#define assert_true(c) sa_check((c), "%s is false\n", #c)
#define assert_false(c) sa_check(!(c), "%s is true\n", #c)
#define assert_non_null(p) sa_check((p) != NULL, "%s is NULL\n", #p)
#define assert_null(p) sa_check((p) == NULL, "%s is not NULL\n", #p)
#define assert_int_equal(a, b)                                                                     \
	do {                                                                                       \
		uintmax_t _a = (uintmax_t)(a), _b = (uintmax_t)(b);                                \
		sa_check(_a == _b, "%#jx != %#jx (%s, %s)\n", _a, _b, #a, #b);                     \
	} while (0)
#define assert_int_not_equal(a, b)                                                                 \
	do {                                                                                       \
		uintmax_t _a = (uintmax_t)(a), _b = (uintmax_t)(b);                                \
		sa_check(_a != _b, "%#jx == %#jx (%s, %s)\n", _a, _b, #a, #b);                     \
	} while (0)
#define assert_string_equal(a, b) sa_check(!strcmp((a), (b)), "\"%s\" != \"%s\"\n", (a), (b))
#define assert_memory_equal(a, b, n) sa_check(!memcmp((a), (b), (n)), "%s != %s\n", #a, #b)

#define cmocka_run_group_tests(tests, gs, gt)                                                      \
	sa_run((tests), sizeof(tests) / sizeof((tests)[0]), (gs), (gt))

static int sa_run(const struct CMUnitTest *tests, size_t n, CMFixtureFunction gs,
		  CMFixtureFunction gt) __attribute__((unused));
/* One test; its state lives in a static so that longjmp cannot clobber it. */
static void *sa_state;

static int sa_one(const struct CMUnitTest *t, void *group_state)
{
	int rc;

	sa_state = t->initial_state ? t->initial_state : group_state;
	sa_in_test = 1;
	rc = setjmp(sa_jmp);
	if (!rc) {
		if (t->setup_func && t->setup_func(&sa_state))
			longjmp(sa_jmp, SA_FAILED);
		t->test_func(&sa_state);
	}
	/* Teardown runs whatever happened, as in cmocka. */
	if (t->teardown_func && sa_state)
		t->teardown_func(&sa_state);
	sa_in_test = 0;
	return rc;
}

static int sa_run(const struct CMUnitTest *tests, size_t n, CMFixtureFunction gs,
		  CMFixtureFunction gt)
{
	void *group_state = NULL;
	int failed = 0, skipped = 0;
	size_t i;

	printf("[==========] Running %zu test(s).\n", n);
	if (gs && gs(&group_state))
		return 1;
	for (i = 0; i < n; i++) {
		int rc;

		printf("[ RUN      ] %s\n", tests[i].name);
		fflush(stdout);
		rc = sa_one(&tests[i], group_state);
		if (rc == SA_FAILED) {
			failed++;
			printf("[  FAILED  ] %s\n", tests[i].name);
		} else if (rc == SA_SKIPPED) {
			skipped++;
			printf("[  SKIPPED ] %s\n", tests[i].name);
		} else {
			printf("[       OK ] %s\n", tests[i].name);
		}
		fflush(stdout);
	}
	if (gt)
		gt(&group_state);
	printf("[==========] %zu test(s) run: %zu passed, %d skipped, %d failed.\n", n,
	       n - (size_t)failed - (size_t)skipped, skipped, failed);
	return failed;
}

#endif /* TERN_STANDALONE_CMOCKA_H */
