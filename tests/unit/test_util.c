/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for util/: bitmaps (plain, atomic, drain under concurrency),
 * byte order, error reports, full-length fd I/O, parse_u64, UUIDs and thread
 * CPU accounting (cpu_acct.c: a thread that burns a known amount of CPU
 * shows up in its class, within loose bounds, and only there); and the
 * programs' JSON string escaper (common/json_out.h, header-only), which
 * has no module of its own to be tested with.
 *
 * Helper threads never call cmocka assertions (they longjmp into the main
 * thread's stack); they record results that the test thread then checks.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "util/util.h"
#include "common/json_out.h"

/* xorshift64: reproducible pseudo-random numbers for the tests. */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* ---- bitmaps ------------------------------------------------------------- */

#define MAP_BITS 512

struct bitmap_fixture {
	uint64_t *a;
	uint64_t *b;
	uint64_t *ref;
};

static int bitmap_teardown(void **state)
{
	struct bitmap_fixture *f = *state;

	if (f) {
		bitmap_free(f->a);
		bitmap_free(f->b);
		bitmap_free(f->ref);
		free(f);
	}
	return 0;
}

static int bitmap_setup(void **state)
{
	struct bitmap_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	*state = f;
	f->a = bitmap_new(MAP_BITS);
	f->b = bitmap_new(MAP_BITS);
	f->ref = bitmap_new(MAP_BITS);
	if (!f->a || !f->b || !f->ref) {
		bitmap_teardown(state); /* cmocka skips the teardown of a failed setup */
		return -1;
	}
	return 0;
}

static void test_bitmap_new_zeroed(void **state)
{
	struct bitmap_fixture *f = *state;
	uint64_t *empty = bitmap_new(0);
	uint64_t w;

	for (w = 0; w < BITMAP_WORDS(MAP_BITS); w++)
		assert_uint_equal(f->a[w], 0);
	assert_non_null(empty); /* a zero-bit map is still a valid pointer */
	bitmap_free(empty);
	bitmap_free(NULL);
}

static void test_bitmap_find_next_empty(void **state)
{
	struct bitmap_fixture *f = *state;

	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 0), MAP_BITS);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 100), MAP_BITS);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, MAP_BITS - 1), MAP_BITS);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, MAP_BITS), MAP_BITS);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, MAP_BITS + 1000), MAP_BITS);
	assert_uint_equal(bitmap_find_next(f->a, 0, 0), 0);
}

/* Where runs of set bits end: checked against a bit-by-bit scan, with runs
 * that end inside a word, at a word's edge and at the map's last bit. */
static void test_bitmap_find_next_zero(void **state)
{
	struct bitmap_fixture *f = *state;
	uint64_t start, want;

	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, 0), 0);
	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, MAP_BITS), MAP_BITS);
	bitmap_set_range(f->a, 3, 61);	  /* 3..63: ends at a word's edge */
	bitmap_set_range(f->a, 100, 200); /* 100..299: across words */
	bitmap_set_range(f->a, MAP_BITS - 70, 70);
	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, 3), 64);
	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, 100), 300);
	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, MAP_BITS - 70), MAP_BITS);
	for (start = 0; start < MAP_BITS; start += 5) {
		for (want = start; want < MAP_BITS && bitmap_test(f->a, want); want++)
			;
		assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, start), want);
	}
	bitmap_set_range(f->a, 0, MAP_BITS);
	assert_uint_equal(bitmap_find_next_zero(f->a, MAP_BITS, 0), MAP_BITS);
}

static void test_bitmap_find_next_first_last(void **state)
{
	struct bitmap_fixture *f = *state;

	bitmap_set(f->a, 0);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 0), 0);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 1), MAP_BITS);

	bitmap_set(f->a, MAP_BITS - 1);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 1), MAP_BITS - 1);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, MAP_BITS - 1), MAP_BITS - 1);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, MAP_BITS), MAP_BITS);
}

static void test_bitmap_find_next_across_words(void **state)
{
	struct bitmap_fixture *f = *state;

	bitmap_set(f->a, 63);
	bitmap_set(f->a, 64);
	bitmap_set(f->a, 300);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 0), 63);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 63), 63);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 64), 64);
	/* words 2..4 are empty: the search has to walk over them */
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 65), 300);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 301), MAP_BITS);

	/* every bit, one at a time, from every start at or before it */
	for (uint64_t bit = 0; bit < MAP_BITS; bit += 7) {
		memset(f->b, 0, BITMAP_WORDS(MAP_BITS) * 8);
		bitmap_set(f->b, bit);
		for (uint64_t start = 0; start <= bit; start += 5)
			assert_uint_equal(bitmap_find_next(f->b, MAP_BITS, start), bit);
		assert_uint_equal(bitmap_find_next(f->b, MAP_BITS, bit + 1), MAP_BITS);
	}
}

/* nbits not a multiple of 64: bits past nbits in the last word are garbage. */
static void test_bitmap_garbage_past_nbits(void **state)
{
	struct bitmap_fixture *f = *state;
	const uint64_t nbits = 70;

	f->a[1] = ~0ull << 6; /* bits 70..127 set: all beyond nbits */
	assert_uint_equal(bitmap_find_next(f->a, nbits, 0), nbits);
	assert_uint_equal(bitmap_find_next(f->a, nbits, 65), nbits);
	assert_uint_equal(bitmap_count(f->a, nbits), 0);

	bitmap_set(f->a, 69);
	assert_uint_equal(bitmap_find_next(f->a, nbits, 0), 69);
	assert_uint_equal(bitmap_find_next(f->a, nbits, 69), 69);
	assert_uint_equal(bitmap_count(f->a, nbits), 1);

	/* a word beyond the map's last word must not be read */
	f->a[2] = ~0ull;
	assert_uint_equal(bitmap_find_next(f->a, 128, 70), 70);
	f->a[1] = 0;
	assert_uint_equal(bitmap_find_next(f->a, 128, 0), 128);
}

static void test_bitmap_count(void **state)
{
	struct bitmap_fixture *f = *state;

	assert_uint_equal(bitmap_count(f->a, MAP_BITS), 0);
	bitmap_set(f->a, 0);
	bitmap_set(f->a, 63);
	bitmap_set(f->a, 64);
	bitmap_set(f->a, MAP_BITS - 1);
	assert_uint_equal(bitmap_count(f->a, MAP_BITS), 4);
	assert_uint_equal(bitmap_count(f->a, 64), 2);
	assert_uint_equal(bitmap_count(f->a, 65), 3);
	assert_uint_equal(bitmap_count(f->a, 63), 1);
	assert_uint_equal(bitmap_count(f->a, 0), 0);
	memset(f->a, 0xff, BITMAP_WORDS(MAP_BITS) * 8);
	assert_uint_equal(bitmap_count(f->a, MAP_BITS), MAP_BITS);
	assert_uint_equal(bitmap_count(f->a, 100), 100);
}

/* Both set_range flavours against bit-by-bit sets, for every start and length. */
static void check_set_range(struct bitmap_fixture *f, bool atomic)
{
	const size_t bytes = BITMAP_WORDS(MAP_BITS) * 8;

	for (uint64_t start = 0; start < 200; start++) {
		for (uint64_t n = 0; start + n <= MAP_BITS && n < 260; n++) {
			memset(f->a, 0, bytes);
			memset(f->ref, 0, bytes);
			if (atomic)
				bitmap_set_range_atomic(f->a, start, n);
			else
				bitmap_set_range(f->a, start, n);
			for (uint64_t i = start; i < start + n; i++)
				bitmap_set(f->ref, i);
			if (memcmp(f->a, f->ref, bytes)) {
				print_error("set_range%s(%llu, %llu) differs\n",
					    atomic ? "_atomic" : "", (unsigned long long)start,
					    (unsigned long long)n);
				fail();
			}
		}
	}
}

static void test_bitmap_set_range(void **state)
{
	struct bitmap_fixture *f = *state;

	/* the named edge cases first, for a readable failure */
	bitmap_set_range(f->a, 3, 5); /* inside one word */
	assert_uint_equal(f->a[0], 0xf8);
	assert_uint_equal(f->a[1], 0);
	memset(f->a, 0, BITMAP_WORDS(MAP_BITS) * 8);
	bitmap_set_range(f->a, 60, 68); /* ends on a word boundary */
	assert_uint_equal(f->a[0], 0xfull << 60);
	assert_uint_equal(f->a[1], ~0ull);
	assert_uint_equal(f->a[2], 0);
	memset(f->a, 0, BITMAP_WORDS(MAP_BITS) * 8);
	bitmap_set_range(f->a, 64, 0); /* empty */
	assert_uint_equal(bitmap_count(f->a, MAP_BITS), 0);
	bitmap_set_range(f->a, 0, MAP_BITS); /* all */
	assert_uint_equal(bitmap_count(f->a, MAP_BITS), MAP_BITS);

	check_set_range(f, false);
}

static void test_bitmap_set_range_atomic(void **state)
{
	struct bitmap_fixture *f = *state;

	bitmap_set_range_atomic(f->a, 10, 500); /* spans many words */
	assert_uint_equal(bitmap_count(f->a, MAP_BITS), 500);
	assert_uint_equal(bitmap_find_next(f->a, MAP_BITS, 0), 10);
	assert_false(bitmap_test(f->a, 510));
	assert_true(bitmap_test_atomic(f->a, 509));

	check_set_range(f, true);
}

static void test_bitmap_drain(void **state)
{
	struct bitmap_fixture *f = *state;
	uint64_t w;

	bitmap_set(f->b, 1); /* dst */
	bitmap_set(f->b, 5);
	bitmap_set(f->a, 5); /* src: 5 is already in dst */
	bitmap_set(f->a, 6);
	bitmap_set(f->a, 100);
	bitmap_set(f->a, MAP_BITS - 1);

	assert_uint_equal(bitmap_drain_atomic(f->b, f->a, MAP_BITS), 4); /* 5 counts too */
	for (w = 0; w < BITMAP_WORDS(MAP_BITS); w++)
		assert_uint_equal(f->a[w], 0);
	assert_uint_equal(bitmap_count(f->b, MAP_BITS), 5);
	assert_true(bitmap_test(f->b, 1));
	assert_true(bitmap_test(f->b, 5));
	assert_true(bitmap_test(f->b, 6));
	assert_true(bitmap_test(f->b, 100));
	assert_true(bitmap_test(f->b, MAP_BITS - 1));

	/* draining an empty map moves nothing */
	assert_uint_equal(bitmap_drain_atomic(f->b, f->a, MAP_BITS), 0);
	assert_uint_equal(bitmap_count(f->b, MAP_BITS), 5);
}

#define DRAIN_BITS 4096u /* 64 words: the two threads meet on the same words */
#define DRAIN_ROUNDS 300

struct drain_setter {
	uint64_t *src;
	int go;	  /* round the setter may start (1-based) */
	int done; /* last round the setter finished */
};

static void *drain_setter_main(void *arg)
{
	struct drain_setter *s = arg;

	for (int r = 1; r <= DRAIN_ROUNDS; r++) {
		while (__atomic_load_n(&s->go, __ATOMIC_ACQUIRE) < r)
			; /* start together with the drainer */
		/*
		 * Every bit once a round, in a scattered order (an odd stride
		 * is a permutation of a power of two): a set that a drain
		 * loses is not made good by a later one.
		 */
		for (uint64_t i = 0; i < DRAIN_BITS; i++)
			bitmap_set_atomic(s->src, (i * 0x9e3779b1ull) % DRAIN_BITS);
		__atomic_store_n(&s->done, r, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* One thread sets bits while another drains: no bit may be lost. */
static void test_bitmap_drain_concurrent(void **state)
{
	uint64_t *src = bitmap_new(DRAIN_BITS), *dst = bitmap_new(DRAIN_BITS);
	struct drain_setter s = {.src = src};
	uint64_t moved = 0, lost = 0, left = 0;
	pthread_t th;

	assert_non_null(src);
	assert_non_null(dst);
	assert_int_equal(pthread_create(&th, NULL, drain_setter_main, &s), 0);
	for (int r = 1; r <= DRAIN_ROUNDS; r++) {
		__atomic_store_n(&s.go, r, __ATOMIC_RELEASE);
		while (__atomic_load_n(&s.done, __ATOMIC_ACQUIRE) < r)
			moved += bitmap_drain_atomic(dst, src, DRAIN_BITS);
		moved += bitmap_drain_atomic(dst, src, DRAIN_BITS);
		/* checked after the join: an assertion here would strand the thread */
		lost += DRAIN_BITS - bitmap_count(dst, DRAIN_BITS);
		left += bitmap_count(src, DRAIN_BITS);
		memset(dst, 0, BITMAP_WORDS(DRAIN_BITS) * 8);
	}
	pthread_join(th, NULL);

	assert_uint_equal(lost, 0);
	assert_uint_equal(left, 0);
	assert_uint_equal(moved, (uint64_t)DRAIN_BITS * DRAIN_ROUNDS);
	bitmap_free(src);
	bitmap_free(dst);
}

/* ---- byte order ---------------------------------------------------------- */

static void test_be_layout(void **state)
{
	uint8_t b[8];
	const uint8_t l16[] = {0x12, 0x34};
	const uint8_t l32[] = {0x01, 0x02, 0x03, 0x04};
	const uint8_t l64[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};

	put_be16(b, 0x1234);
	assert_memory_equal(b, l16, 2);
	put_be32(b, 0x01020304);
	assert_memory_equal(b, l32, 4);
	put_be64(b, 0x0102030405060708ull);
	assert_memory_equal(b, l64, 8);
	assert_uint_equal(get_be16(l16), 0x1234);
	assert_uint_equal(get_be32(l32), 0x01020304);
	assert_uint_equal(get_be64(l64), 0x0102030405060708ull);
}

static void test_be_roundtrip(void **state)
{
	const uint64_t v64[] = {
	    0, 1, 0x80, 0xff, 0x8000000000000000ull, UINT64_MAX, 0xdeadbeefcafef00dull};
	uint64_t seed = 42;
	uint8_t b[8];

	for (size_t i = 0; i < ARRAY_SIZE(v64); i++) {
		put_be64(b, v64[i]);
		assert_uint_equal(get_be64(b), v64[i]);
		put_be32(b, (uint32_t)v64[i]);
		assert_uint_equal(get_be32(b), (uint32_t)v64[i]);
		put_be16(b, (uint16_t)v64[i]);
		assert_uint_equal(get_be16(b), (uint16_t)v64[i]);
	}
	for (int i = 0; i < 10000; i++) {
		uint64_t v = rnd_next(&seed);

		put_be64(b, v);
		assert_uint_equal(get_be64(b), v);
		assert_uint_equal(b[0], v >> 56);
		assert_uint_equal(b[7], v & 0xff);
		put_be32(b, (uint32_t)v);
		assert_uint_equal(get_be32(b), (uint32_t)v);
		put_be16(b, (uint16_t)v);
		assert_uint_equal(get_be16(b), (uint16_t)v);
		assert_uint_equal(b[0], (v >> 8) & 0xff);
	}
}

/* ---- errors -------------------------------------------------------------- */

static int error_setup(void **state)
{
	static struct tern_error err;

	memset(&err, 0x55, sizeof(err)); /* garbage, as on a caller's stack */
	tern_error_clear(&err);
	*state = &err;
	return 0;
}

static void test_error_first_wins(void **state)
{
	struct tern_error *err = *state;

	assert_int_equal(err->code, 0);
	assert_string_equal(err->msg, "");
	assert_rc_equal(tern_error_set(err, -EPROTO, "chan %u: bad magic %#x", 3, 0xbad), -EPROTO);
	assert_rc_equal(err->code, -EPROTO);
	assert_string_equal(err->msg, "chan 3: bad magic 0xbad");
	/* a second error returns its own code but does not replace the first */
	assert_rc_equal(tern_error_set(err, -EPIPE, "later"), -EPIPE);
	assert_rc_equal(err->code, -EPROTO);
	assert_string_equal(err->msg, "chan 3: bad magic 0xbad");

	tern_error_clear(err);
	assert_int_equal(err->code, 0);
	assert_string_equal(err->msg, "");
	tern_error_clear(NULL);
}

static void test_error_null(void **state)
{
	assert_rc_equal(tern_error_set(NULL, -EINVAL, "x %d", 1), -EINVAL);
	assert_rc_equal(tern_error_prefix(NULL, "p"), 0);
}

static void test_error_truncates(void **state)
{
	struct tern_error *err = *state;
	char big[1000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	tern_error_set(err, -E2BIG, "%s", big);
	assert_int_equal(strlen(err->msg), sizeof(err->msg) - 1);
	tern_error_prefix(err, "%s", big);
	assert_int_equal(strlen(err->msg), sizeof(err->msg) - 1);
	assert_rc_equal(err->code, -E2BIG);
}

static void test_error_prefix(void **state)
{
	struct tern_error *err = *state;

	/* nothing recorded: nothing to prefix */
	assert_rc_equal(tern_error_prefix(err, "chan %d", 1), 0);
	assert_int_equal(err->code, 0);
	assert_string_equal(err->msg, "");

	tern_error_set(err, -ECONNRESET, "recv: reset");
	assert_rc_equal(tern_error_prefix(err, "chan %d", 2), -ECONNRESET);
	assert_string_equal(err->msg, "chan 2: recv: reset");
	assert_rc_equal(tern_error_prefix(err, "migrate"), -ECONNRESET);
	assert_string_equal(err->msg, "migrate: chan 2: recv: reset");
}

/* ---- parse_u64 ----------------------------------------------------------- */

static void test_parse_u64(void **state)
{
	static const char *const bad[] = {
	    "",
	    " 1",
	    "1 ",
	    "-1",
	    " -1",
	    "+1",
	    "\t2",
	    "abc",
	    "12abc",
	    "0x10",
	    "1.5",
	    "1e3",
	    "--1",
	    "18446744073709551616",
	    "99999999999999999999999",
	};
	uint64_t v = 0;

	assert_rc_equal(parse_u64("0", &v), 0);
	assert_uint_equal(v, 0);
	assert_rc_equal(parse_u64("4444", &v), 0);
	assert_uint_equal(v, 4444);
	assert_rc_equal(parse_u64("007", &v), 0);
	assert_uint_equal(v, 7);
	assert_rc_equal(parse_u64("18446744073709551615", &v), 0);
	assert_uint_equal(v, UINT64_MAX);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		v = 12345;
		if (parse_u64(bad[i], &v) != -EINVAL) {
			print_error("parse_u64(\"%s\") accepted: %llu\n", bad[i],
				    (unsigned long long)v);
			fail();
		}
		assert_uint_equal(v, 12345); /* untouched on failure */
	}
	assert_rc_equal(parse_u64(NULL, &v), -EINVAL);
}

/* ---- UUIDs --------------------------------------------------------------- */

static void test_uuid(void **state)
{
	uint8_t a[16], b[16];
	char s[37];

	assert_rc_equal(tern_uuid_generate(a), 0);
	assert_rc_equal(tern_uuid_generate(b), 0);
	assert_memory_not_equal(a, b, 16);
	for (int i = 0; i < 100; i++) {
		assert_rc_equal(tern_uuid_generate(a), 0);
		assert_int_equal(a[6] >> 4, 4);	     /* version 4 */
		assert_int_equal(a[8] & 0xc0, 0x80); /* variant 10xx */
	}

	tern_uuid_format(a, s);
	assert_int_equal(strlen(s), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(s[i], '-');
		else
			assert_non_null(strchr("0123456789abcdef", s[i]));
	}
	assert_int_equal(s[14], '4');
	{
		char want[3];

		snprintf(want, sizeof(want), "%02x", a[0]);
		assert_memory_equal(s, want, 2);
		snprintf(want, sizeof(want), "%02x", a[15]);
		assert_memory_equal(s + 34, want, 2);
	}
}

static void test_json_escape(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(json_escape(out, sizeof(out), "a\"b\\c\n"), 13);
	assert_string_equal(out, "a\\\"b\\\\c\\u000a");
	/* well-formed text beyond ASCII goes through as it is */
	json_escape(out, sizeof(out), "caf\xc3\xa9 \xe2\x82\xac");
	assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac");
	/* ill-formed bytes become U+FFFD: lone, overlong, surrogate, cut short */
	json_escape(out, sizeof(out), "\xff.\xc0\xaf.\xed\xa0\x80.\xe2\x82");
	assert_string_equal(out, "\\ufffd.\\ufffd\\ufffd.\\ufffd\\ufffd\\ufffd.\\ufffd\\ufffd");
	/* cut to fit between characters: 3 euro signs need 10 bytes with the NUL */
	assert_int_equal(json_escape(out, 9, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 6);
	assert_string_equal(out, "\xe2\x82\xac\xe2\x82\xac");
	assert_int_equal(json_escape(out, 10, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 9);
	/* and never half an escape */
	assert_int_equal(json_escape(out, 6, "\x01"), 0);
	assert_int_equal(json_escape(out, 3, "ab\""), 2);
}

/* ---- thread CPU accounting ------------------------------------------------- */

struct burner {
	struct cpu_acct *acct;
	enum tern_cpu_class cls, then; /* then: switch to it halfway (0: no) */
	uint64_t burn_ns;	       /* of this thread's own CPU time, per half */
	char comm[32];		       /* its name, as the kernel has it */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Spin until this thread has run @ns more: a known amount of CPU, however
 * busy the machine is, nearly all of it user time (the clock is a system
 * call: it is read once per 100000 multiplies). */
static void burn(uint64_t ns)
{
	uint64_t until = thread_cpu_ns() + ns;
	volatile uint64_t x = 1;
	int i;

	while (thread_cpu_ns() < until)
		for (i = 0; i < 100000; i++)
			x = x * 6364136223846793005ull + 1;
}

static void *burner_main(void *arg)
{
	struct burner *b = arg;
	CPU_THREAD(cpu, b->acct, b->cls, "tern-test/%d", 7);
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)gettid());
	f = fopen(path, "r");
	if (f) {
		if (!fgets(b->comm, sizeof(b->comm), f))
			b->comm[0] = '\0';
		fclose(f);
	}
	burn(b->burn_ns);
	if (!b->then)
		return NULL; /* the cleanup adds this thread's time */
	cpu_thread_switch(&cpu, b->then);
	burn(b->burn_ns);
	return NULL;
}

static void burner_run(struct burner *b)
{
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, burner_main, b), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

static uint64_t class_ms(struct cpu_acct *a, enum tern_cpu_class c)
{
	uint64_t user[TERN_CPU_CLASSES], sys[TERN_CPU_CLASSES];

	cpu_acct_get(a, user, sys);
	return (user[c] + sys[c]) / 1000;
}

static int cpu_setup(void **state)
{
	struct cpu_acct *a = calloc(1, sizeof(*a));

	if (!a)
		return -1;
	cpu_acct_init(a);
	*state = a;
	return 0;
}

static int cpu_teardown(void **state)
{
	cpu_acct_fini(*state);
	free(*state);
	return 0;
}

/* 200 ms of CPU lands in its class, mostly as user time, and nowhere else. */
static void test_cpu_burn(void **state)
{
	struct cpu_acct *a = *state;
	struct burner b = {.acct = a, .cls = TERN_CPU_SEND, .burn_ns = 200000000};
	uint64_t user[TERN_CPU_CLASSES], sys[TERN_CPU_CLASSES];
	int c;

	cpu_acct_open(a);
	burner_run(&b);
	assert_string_equal(b.comm, "tern-test/7\n");
	cpu_acct_get(a, user, sys);
	print_message("send: user %" PRIu64 " us, sys %" PRIu64 " us\n", user[TERN_CPU_SEND],
		      sys[TERN_CPU_SEND]);
	assert_in_range(class_ms(a, TERN_CPU_SEND), 190, 1000);
	assert_true(user[TERN_CPU_SEND] > sys[TERN_CPU_SEND]);
	for (c = TERN_CPU_INVALID; c < TERN_CPU_CLASSES; c++)
		if (c != TERN_CPU_SEND)
			assert_int_equal(user[c] + sys[c], 0);
	/* closed: the totals stay, a thread's add is dropped */
	cpu_acct_close(a);
	b.cls = TERN_CPU_RECV;
	b.burn_ns = 20000000;
	burner_run(&b);
	assert_int_equal(class_ms(a, TERN_CPU_RECV), 0);
	assert_in_range(class_ms(a, TERN_CPU_SEND), 190, 1000);
	assert_false(cpu_acct_add(a, TERN_CPU_SEND, 1, 1));
	/* opened again: from zero */
	cpu_acct_open(a);
	assert_int_equal(class_ms(a, TERN_CPU_SEND), 0);
	assert_true(cpu_acct_add(a, TERN_CPU_INVALID, 5000, 0)); /* counts as other */
	assert_int_equal(class_ms(a, TERN_CPU_OTHER), 5);
}

/* A thread that changes class halfway splits its time between the two. */
static void test_cpu_switch(void **state)
{
	struct cpu_acct *a = *state;
	struct burner b = {
	    .acct = a, .cls = TERN_CPU_MIGRATION, .then = TERN_CPU_DIGEST, .burn_ns = 60000000};

	cpu_acct_open(a);
	burner_run(&b);
	assert_in_range(class_ms(a, TERN_CPU_MIGRATION), 55, 500);
	assert_in_range(class_ms(a, TERN_CPU_DIGEST), 55, 500);
	assert_int_equal(class_ms(a, TERN_CPU_SEND), 0);
}

/*
 * Short spans count exactly: a thread that, a thousand times over, blocks
 * (a sleep, as a send blocks on a full socket), runs 300 us in one class
 * and then 40 us in another, has about 40 ms in the second. getrusage()'s
 * runtime is as of the thread's last tick or switch, so its deltas gave the
 * 40 us spans nothing (the runtime caught up in the next span). The spans
 * are timed by the wall clock: reading the thread's CPU clock here would
 * bring the runtime up to date and hide what is tested.
 */
static uint64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static void spin_wall_us(uint64_t us)
{
	uint64_t until = wall_us() + us;

	while (wall_us() < until)
		;
}

static void *short_spans_main(void *arg)
{
	struct cpu_acct *a = arg;
	CPU_THREAD(cpu, a, TERN_CPU_SEND, "tern-test/%d", 8);
	struct timespec nap = {.tv_nsec = 50000};
	int i;

	for (i = 0; i < 1000; i++) {
		nanosleep(&nap, NULL);
		spin_wall_us(300);
		cpu_thread_switch(&cpu, TERN_CPU_DIGEST);
		spin_wall_us(40);
		cpu_thread_switch(&cpu, TERN_CPU_SEND);
	}
	return NULL;
}

static void test_cpu_short_spans(void **state)
{
	struct cpu_acct *a = *state;
	uint64_t digest, send;
	pthread_t th;

	cpu_acct_open(a);
	assert_int_equal(pthread_create(&th, NULL, short_spans_main, a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	digest = class_ms(a, TERN_CPU_DIGEST);
	send = class_ms(a, TERN_CPU_SEND);
	print_message("short spans: digest %" PRIu64 " ms, send %" PRIu64 " ms\n", digest, send);
	/* 40 of every 340 us spun: a loaded host gives the thread less CPU
	 * than wall time, to both classes alike, so the share is what counts */
	assert_true(send > 0);
	assert_in_range(digest * 1000 / (digest + send), 50, 250);
}

/* Without totals a thread is only named; the classes have names. */
static void test_cpu_names(void **state)
{
	struct cpu_acct *a = *state;
	struct burner b = {.acct = NULL, .cls = TERN_CPU_SEND, .burn_ns = 1000000};

	cpu_acct_open(a);
	burner_run(&b);
	assert_string_equal(b.comm, "tern-test/7\n");
	assert_int_equal(class_ms(a, TERN_CPU_SEND), 0);
	assert_string_equal(tern_cpu_class_name(TERN_CPU_MIGRATION), "migration");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_SEND), "send");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_RECV), "recv");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_PREFAULT), "prefault");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_DIGEST), "digest");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_MGMT), "mgmt");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_OTHER), "other");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_INVALID), "invalid");
	assert_string_equal(tern_cpu_class_name(TERN_CPU_CLASSES), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bitmap_new_zeroed, bitmap_setup, bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_find_next_zero, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_find_next_empty, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_find_next_first_last, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_find_next_across_words, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_garbage_past_nbits, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_count, bitmap_setup, bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_set_range, bitmap_setup, bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_set_range_atomic, bitmap_setup,
					    bitmap_teardown),
	    cmocka_unit_test_setup_teardown(test_bitmap_drain, bitmap_setup, bitmap_teardown),
	    cmocka_unit_test(test_bitmap_drain_concurrent),
	    cmocka_unit_test(test_be_layout),
	    cmocka_unit_test(test_be_roundtrip),
	    cmocka_unit_test_setup(test_error_first_wins, error_setup),
	    cmocka_unit_test(test_error_null),
	    cmocka_unit_test_setup(test_error_truncates, error_setup),
	    cmocka_unit_test_setup(test_error_prefix, error_setup),
	    cmocka_unit_test(test_parse_u64),
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_json_escape),
	    cmocka_unit_test_setup_teardown(test_cpu_burn, cpu_setup, cpu_teardown),
	    cmocka_unit_test_setup_teardown(test_cpu_switch, cpu_setup, cpu_teardown),
	    cmocka_unit_test_setup_teardown(test_cpu_short_spans, cpu_setup, cpu_teardown),
	    cmocka_unit_test_setup_teardown(test_cpu_names, cpu_setup, cpu_teardown),
	};

	/* A write to a closed socket must fail the test, not kill the runner. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
