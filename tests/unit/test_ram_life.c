/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the lifetime of RAM block handles (tern.h, "Lifetime";
 * core/ram.c, "Lifetime"): a block dies with its session, and a debug build
 * aborts with a message when the VMM uses one after, or while,
 * tern_session_free() runs.
 *
 * A misuse kills the process, so each death test runs it in a forked child
 * and checks how the child ended and what it wrote to stderr. Under ASan a
 * write into freed memory would end the child with ASan's report and exit
 * code instead of SIGABRT: the tests fail then too. In an NDEBUG build the
 * checks do not abort; the tests that need them are skipped, and a late
 * mark must return -ESTALE instead.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "tern/tern.h"

#define RAM_PAGES 16

struct fixture {
	void *ram;
	size_t len;
};

static int fixture_setup(void **state)
{
	static struct fixture f;

	f.len = RAM_PAGES * (size_t)sysconf(_SC_PAGESIZE);
	f.ram = mmap(NULL, f.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f.ram == MAP_FAILED)
		return -1;
	*state = &f;
	return 0;
}

static int fixture_teardown(void **state)
{
	struct fixture *f = *state;

	munmap(f->ram, f->len);
	return 0;
}

static struct tern_session *session_with_block(struct fixture *f, struct tern_ram_block **ret_b)
{
	struct tern_error err = {0};
	struct tern_session *s = NULL;

	if (tern_session_new(NULL, NULL, &s, &err))
		return NULL;
	if (tern_ram_register(s, "ram0", f->ram, f->len, ret_b, &err)) {
		tern_session_free(s);
		return NULL;
	}
	return s;
}

/*
 * Run @fn in a child with its stderr into a pipe. *@ret_status: the child's
 * wait status; @out: what it wrote (NUL-terminated, cut at @len - 1).
 */
static void run_child(void (*fn)(struct fixture *), struct fixture *f, int *ret_status, char *out,
		      size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		fn(f);
		_exit(0);
	}
	close(fds[1]);
	while (got < len - 1 && (n = read(fds[0], out + got, len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, ret_status, 0), pid);
}

static void assert_died_of_misuse(int status, const char *out, const char *fn)
{
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("child did not abort (status %#x); its stderr:\n%s", status, out);
	if (!strstr(out, fn) || !strstr(out, "'ram0' after tern_session_free()"))
		fail_msg("no misuse message naming %s and the block; stderr:\n%s", fn, out);
}

/* ---- a call after the free ----------------------------------------------- */

static void child_mark_after_free(struct fixture *f)
{
	struct tern_ram_block *b = NULL;
	struct tern_session *s = session_with_block(f, &b);

	if (!s)
		_exit(2);
	tern_session_free(s);
	/* NDEBUG: no abort; say what came back */
	_exit(tern_ram_mark_dirty(b, 0, 1) == -ESTALE ? 3 : 4);
}

static void test_mark_after_free(void **state)
{
	char out[4096];
	int status;

	run_child(child_mark_after_free, *state, &status, out, sizeof(out));
#ifdef NDEBUG
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3); /* -ESTALE */
#else
	assert_died_of_misuse(status, out, "tern_ram_mark_dirty()");
#endif
}

static void child_size_after_free(struct fixture *f)
{
	struct tern_ram_block *b = NULL;
	struct tern_session *s = session_with_block(f, &b);

	if (!s)
		_exit(2);
	tern_session_free(s);
	_exit(tern_ram_block_size(b) ? 3 : 4);
}

static void test_size_after_free(void **state)
{
	char out[4096];
	int status;

#ifdef NDEBUG
	skip(); /* unchecked there: undefined */
#endif
	run_child(child_size_after_free, *state, &status, out, sizeof(out));
	assert_died_of_misuse(status, out, "tern_ram_block_size()");
}

/* ---- a thread that still marks while the session is freed ----------------- */

struct marker {
	struct tern_ram_block *b;
	size_t len;
	uint64_t marks; /* atomic */
	bool stop;	/* atomic */
};

static void *marker_main(void *arg)
{
	struct marker *m = arg;
	uint64_t off = 0;

	while (!__atomic_load_n(&m->stop, __ATOMIC_ACQUIRE)) {
		tern_ram_mark_dirty(m->b, off, 1);
		off = (off + 4096) % m->len;
		__atomic_add_fetch(&m->marks, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* The bug: the session freed while its VMM thread marks on. */
static void child_free_while_marking(struct fixture *f)
{
	struct marker m = {.len = f->len};
	struct tern_session *s = session_with_block(f, &m.b);
	pthread_t t;

	if (!s || pthread_create(&t, NULL, marker_main, &m))
		_exit(2);
	while (__atomic_load_n(&m.marks, __ATOMIC_RELAXED) < 10000)
		sched_yield();
	tern_session_free(s);
	/* the marker's next call must abort the process */
	pthread_join(t, NULL);
	_exit(5);
}

static void test_free_while_marking(void **state)
{
	char out[4096];
	int status;
	int i;

#ifdef NDEBUG
	skip(); /* undefined there, by the rules */
#endif
	/* the free lands at a different point of the marker's call each time */
	for (i = 0; i < 20; i++) {
		run_child(child_free_while_marking, *state, &status, out, sizeof(out));
		assert_died_of_misuse(status, out, "tern_ram_mark_dirty()");
	}
}

/* ---- the documented order ------------------------------------------------ */

/* Stop the marker, then free: nothing to say. Many times over, so that the
 * quarantine (1024 headers) wraps and frees its oldest for real. */
static void test_stop_then_free(void **state)
{
	struct fixture *f = *state;
	int i;

	for (i = 0; i < 1100; i++) {
		struct marker m = {.len = f->len};
		struct tern_session *s = session_with_block(f, &m.b);
		pthread_t t;

		assert_non_null(s);
		assert_string_equal(tern_ram_block_name(m.b), "ram0");
		assert_int_equal(tern_ram_block_size(m.b), f->len);
		assert_int_equal(tern_ram_mark_dirty(m.b, 0, f->len), 0);
		assert_int_equal(tern_ram_mark_dirty(m.b, f->len, 1), -ERANGE);
		if (i % 100 == 0) {
			assert_int_equal(pthread_create(&t, NULL, marker_main, &m), 0);
			while (__atomic_load_n(&m.marks, __ATOMIC_RELAXED) < 100)
				sched_yield();
			__atomic_store_n(&m.stop, true, __ATOMIC_RELEASE);
			assert_int_equal(pthread_join(t, NULL), 0);
		}
		tern_session_free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mark_after_free, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_size_after_free, fixture_setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_free_while_marking, fixture_setup,
					    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_stop_then_free, fixture_setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
