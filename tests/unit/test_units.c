/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for ternctl's units (cli/units.c): every suffix, decimals,
 * bits, durations with parts, overflow at the 64-bit edge, garbage, empty
 * and negative input; the formatters' output, and that it parses back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/cmocka_compat.h"
#include "cli/units.h"

typedef int (*parse_fn)(const char *s, uint64_t *ret, char *why, size_t len);

/* @s parses to @want. */
static void ok_(parse_fn fn, const char *fn_name, const char *s, uint64_t want)
{
	char why[256] = "";
	uint64_t v = 12345;
	int rc = fn(s, &v, why, sizeof(why));

	if (rc || v != want)
		fail_msg("%s(\"%s\") = %d (%s), value %llu, expected %llu", fn_name, s, rc, why,
			 (unsigned long long)v, (unsigned long long)want);
}

/* @s is refused with @code and a message that quotes it and says @needle. */
static void bad_(parse_fn fn, const char *fn_name, const char *s, int code, const char *needle)
{
	char why[256] = "", quoted[128];
	uint64_t v = 12345;
	int rc = fn(s, &v, why, sizeof(why));

	if (rc != code)
		fail_msg("%s(\"%s\") = %d (%s; value %llu), expected %d", fn_name, s, rc, why,
			 (unsigned long long)v, code);
	assert_uint_equal(v, 12345); /* not written on failure */
	if (*s) {
		snprintf(quoted, sizeof(quoted), "'%s'", s);
		assert_str_contains(why, quoted);
	}
	assert_str_contains(why, needle);
}

#define OK(fn, s, want) ok_(fn, #fn, s, want)
#define BAD(fn, s, code, needle) bad_(fn, #fn, s, code, needle)

/* ---- numbers common to every parser ------------------------------------------- */

static void test_common_errors(void **state)
{
	static const parse_fn fns[] = {units_parse_uint,       units_parse_size,
				       units_parse_rate,       units_parse_duration_ms,
				       units_parse_duration_s, units_parse_percent};
	size_t i;

	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		bad_(fns[i], "parser", "", -EINVAL, "empty");
		bad_(fns[i], "parser", "-1", -EINVAL, "negative");
		bad_(fns[i], "parser", "-0.5", -EINVAL, "negative");
		bad_(fns[i], "parser", "abc", -EINVAL, "not a number");
		bad_(fns[i], "parser", " 1", -EINVAL, "not a number");
		bad_(fns[i], "parser", "+1", -EINVAL, "not a number");
		bad_(fns[i], "parser", ".5", -EINVAL, "not a number");
		bad_(fns[i], "parser", "1.", -EINVAL, "digit must follow");
		bad_(fns[i], "parser", "0x10", -EINVAL, "'0x10'");
		bad_(fns[i], "parser", "1e3", -EINVAL, "'1e3'");
		/* 26 significant digits */
		bad_(fns[i], "parser", "1.0000000000000000000000001", -EINVAL, "too many digits");
		bad_(fns[i], "parser", "100000000000000000000000000000", -ERANGE, "too large");
	}
}

static void test_uint(void **state)
{
	OK(units_parse_uint, "0", 0);
	OK(units_parse_uint, "4", 4);
	OK(units_parse_uint, "007", 7);
	OK(units_parse_uint, "1.000", 1); /* a zero fraction is a whole number */
	OK(units_parse_uint, "18446744073709551615", UINT64_MAX);
	BAD(units_parse_uint, "18446744073709551616", -ERANGE, "too large");
	BAD(units_parse_uint, "1.5", -EINVAL, "whole");
	BAD(units_parse_uint, "4k", -EINVAL, "plain number");
	BAD(units_parse_uint, "4 ", -EINVAL, "plain number");
}

/* ---- sizes -------------------------------------------------------------------- */

static void test_size(void **state)
{
	OK(units_parse_size, "0", 0);
	OK(units_parse_size, "1", 1);
	OK(units_parse_size, "1B", 1);
	OK(units_parse_size, "1K", 1000);
	OK(units_parse_size, "1k", 1000);
	OK(units_parse_size, "1KB", 1000);
	OK(units_parse_size, "1kB", 1000);
	OK(units_parse_size, "1M", 1000000);
	OK(units_parse_size, "1MB", 1000000);
	OK(units_parse_size, "1m", 1000000);
	OK(units_parse_size, "1G", 1000000000);
	OK(units_parse_size, "1GB", 1000000000);
	OK(units_parse_size, "1T", 1000000000000ull);
	OK(units_parse_size, "1TB", 1000000000000ull);
	OK(units_parse_size, "1Ki", 1024);
	OK(units_parse_size, "1KiB", 1024);
	OK(units_parse_size, "1kiB", 1024);
	OK(units_parse_size, "1KI", 1024);
	OK(units_parse_size, "1P", 1000000000000000ull);
	OK(units_parse_size, "1PiB", 1ull << 50);
	OK(units_parse_size, "1E", 1000000000000000000ull);
	OK(units_parse_size, "15.5EiB", 31ull << 59);
	OK(units_parse_size, "1MiB", 1 << 20);
	OK(units_parse_size, "1GiB", 1 << 30);
	OK(units_parse_size, "1TiB", 1ull << 40);
	OK(units_parse_size, "64MiB", 64 << 20);
	OK(units_parse_size, "1.5GiB", 1610612736);
	OK(units_parse_size, "1.50 GiB", 1610612736);
	OK(units_parse_size, "1.5  GiB", 1610612736);
	OK(units_parse_size, "0.5K", 500);
	OK(units_parse_size, "4096 ", 4096);
	/* rounded to the nearest byte, halves up */
	OK(units_parse_size, "1.0004K", 1000);
	OK(units_parse_size, "1.0005K", 1001);
	OK(units_parse_size, "1.5", 2);
	BAD(units_parse_size, "0.4B", -ERANGE, "would round to 0");
	BAD(units_parse_size, "0.4", -ERANGE, "would round to 0");
	BAD(units_parse_size, "0.0000000000000000000000001", -ERANGE, "would round to 0");
	OK(units_parse_size, "0.5B", 1);
	OK(units_parse_size, "0.0B", 0);
	OK(units_parse_size, "0.00000000000000000000000000", 0);
	/* the 64-bit edge */
	OK(units_parse_size, "18446744073709551615", UINT64_MAX);
	OK(units_parse_size, "18446744073709551615B", UINT64_MAX);
	OK(units_parse_size, "17179869183GiB", 17179869183ull << 30);
	BAD(units_parse_size, "17179869184GiB", -ERANGE, "too large");
	BAD(units_parse_size, "18446744073709551616", -ERANGE, "too large");
	BAD(units_parse_size, "18446744073.709551616G", -ERANGE, "too large");
	/* what a size is not */
	BAD(units_parse_size, "1Q", -EINVAL, "unknown unit 'Q'");
	BAD(units_parse_size, "1 Q", -EINVAL, "unknown unit 'Q'");
	BAD(units_parse_size, "1KQ", -EINVAL, "unknown unit 'KQ'");
	BAD(units_parse_size, "1Z", -EINVAL, "unknown unit 'Z'");
	BAD(units_parse_size, "16EiB", -ERANGE, "too large");
	BAD(units_parse_size, "9.99999999999999999999EiB", -EINVAL, "too many digits");
	BAD(units_parse_size, "1kib", -EINVAL, "ambiguous");
	BAD(units_parse_size, "1.5.5", -EINVAL, "unknown unit");
	BAD(units_parse_size, "1BB", -EINVAL, "unknown unit");
	BAD(units_parse_size, "1bit", -EINVAL, "not bits");
	BAD(units_parse_size, "1Mb", -EINVAL, "ambiguous");
	BAD(units_parse_size, "1G/s", -EINVAL, "not a rate");
	BAD(units_parse_size, "1GiB/s", -EINVAL, "not a rate");
}

/* ---- rates -------------------------------------------------------------------- */

static void test_rate(void **state)
{
	OK(units_parse_rate, "0", 0);
	OK(units_parse_rate, "100", 100);
	OK(units_parse_rate, "100/s", 100);
	OK(units_parse_rate, "100B/s", 100);
	OK(units_parse_rate, "100M", 100000000);
	OK(units_parse_rate, "100MB/s", 100000000);
	OK(units_parse_rate, "10G", 10000000000ull);
	OK(units_parse_rate, "1.5GiB/s", 1610612736);
	OK(units_parse_rate, "1.5 GiB/s", 1610612736);
	OK(units_parse_rate, "1.5giB/S", 1610612736);
	OK(units_parse_rate, "117.2 MB/s", 117200000);
	OK(units_parse_rate, "2TiB/s", 2ull << 40);
	/* bits: divided by 8 */
	OK(units_parse_rate, "1gbit", 125000000);
	OK(units_parse_rate, "10Gbit/s", 1250000000);
	OK(units_parse_rate, "100mbit", 12500000);
	OK(units_parse_rate, "938 Mbit/s", 117250000);
	OK(units_parse_rate, "1kbit", 125);
	OK(units_parse_rate, "1Kbits/s", 125);
	OK(units_parse_rate, "8bit", 1);
	OK(units_parse_rate, "1Gibit", 134217728);
	OK(units_parse_rate, "1.5Gbit", 187500000);
	BAD(units_parse_rate, "1bit", -ERANGE, "would round to 0"); /* 0.125 bytes */
	BAD(units_parse_rate, "3bit/s", -ERANGE, "would round to 0");
	BAD(units_parse_rate, "0.4", -ERANGE, "would round to 0");
	BAD(units_parse_rate, "0.0001kbit", -ERANGE, "would round to 0");
	OK(units_parse_rate, "0bit", 0);
	OK(units_parse_rate, "4bit", 1); /* 0.5 rounds up */
	OK(units_parse_rate, "147573952589676412920bit", UINT64_MAX);
	BAD(units_parse_rate, "147573952589676412928bit", -ERANGE, "too large");
	BAD(units_parse_rate, "18446744073709551616/s", -ERANGE, "too large");
	BAD(units_parse_rate, "12Q", -EINVAL, "unknown unit 'Q'");
	BAD(units_parse_rate, "1Mb/s", -EINVAL, "ambiguous");
	BAD(units_parse_rate, "1Mbps", -EINVAL, "ambiguous");
	BAD(units_parse_rate, "1MB/sec", -EINVAL, "unknown unit");
	BAD(units_parse_rate, "1MB/", -EINVAL, "unknown unit");
	BAD(units_parse_rate, "1/s/s", -EINVAL, "unknown unit");
}

/* ---- durations ---------------------------------------------------------------- */

static void test_duration_ms(void **state)
{
	OK(units_parse_duration_ms, "0", 0);
	OK(units_parse_duration_ms, "300", 300);
	OK(units_parse_duration_ms, "300ms", 300);
	OK(units_parse_duration_ms, "300 ms", 300);
	OK(units_parse_duration_ms, "300 ", 300);
	OK(units_parse_duration_ms, "1s ", 1000);
	OK(units_parse_duration_ms, "1.5s", 1500);
	OK(units_parse_duration_ms, "1.50 s", 1500);
	OK(units_parse_duration_ms, "0.001s", 1);
	OK(units_parse_duration_ms, "2m", 120000);
	OK(units_parse_duration_ms, "2min", 120000);
	OK(units_parse_duration_ms, "1.5m", 90000);
	OK(units_parse_duration_ms, "1h", 3600000);
	OK(units_parse_duration_ms, "1H", 3600000);
	OK(units_parse_duration_ms, "1MS", 1);
	OK(units_parse_duration_ms, "1h30m", 5400000);
	OK(units_parse_duration_ms, "1h 30m", 5400000);
	OK(units_parse_duration_ms, "2m03s", 123000);
	OK(units_parse_duration_ms, "1m30.5s", 90500);
	OK(units_parse_duration_ms, "1s500ms", 1500);
	OK(units_parse_duration_ms, "1h2m3s4ms", 3723004);
	OK(units_parse_duration_ms, "18446744073709551615", UINT64_MAX);
	OK(units_parse_duration_ms, "5124095576030h", 18446744073708000000ull);
	BAD(units_parse_duration_ms, "5124095576031h", -ERANGE, "too large");
	BAD(units_parse_duration_ms, "18446744073709551616ms", -ERANGE, "too large");
	BAD(units_parse_duration_ms, "1.5", -EINVAL, "whole milliseconds");
	BAD(units_parse_duration_ms, "0.5ms", -EINVAL, "whole milliseconds");
	BAD(units_parse_duration_ms, "0.0001s", -EINVAL, "whole milliseconds");
	BAD(units_parse_duration_ms, "1s0.5ms", -EINVAL, "whole milliseconds");
	BAD(units_parse_duration_ms, "0.0000000001s", -EINVAL, "finer than a nanosecond");
	BAD(units_parse_duration_ms, "5x", -EINVAL, "unknown unit 'x'");
	BAD(units_parse_duration_ms, "5 days", -EINVAL, "unknown unit 'days'");
	BAD(units_parse_duration_ms, "5%", -EINVAL, "unknown unit '%'");
	BAD(units_parse_duration_ms, "1s1h", -EINVAL, "largest first");
	BAD(units_parse_duration_ms, "1m1min", -EINVAL, "largest first");
	BAD(units_parse_duration_ms, "1s1s", -EINVAL, "largest first");
	BAD(units_parse_duration_ms, "1s5", -EINVAL, "a unit must follow");
	BAD(units_parse_duration_ms, "1s-5ms", -EINVAL, "negative");
}

static void test_duration_s(void **state)
{
	OK(units_parse_duration_s, "0", 0);
	OK(units_parse_duration_s, "90", 90);
	OK(units_parse_duration_s, "90s", 90);
	OK(units_parse_duration_s, "2m", 120);
	OK(units_parse_duration_s, "1h", 3600);
	OK(units_parse_duration_s, "1.5m", 90);
	OK(units_parse_duration_s, "2000ms", 2);
	OK(units_parse_duration_s, "8760h", 31536000);
	OK(units_parse_duration_s, "18446744073709551615", UINT64_MAX);
	OK(units_parse_duration_s, "18446744073709551615s", UINT64_MAX);
	BAD(units_parse_duration_s, "18446744073709551616s", -ERANGE, "too large");
	BAD(units_parse_duration_s, "1.5", -EINVAL, "whole seconds");
	BAD(units_parse_duration_s, "1.5s", -EINVAL, "whole seconds");
	BAD(units_parse_duration_s, "1500ms", -EINVAL, "whole seconds");
}

/* ---- percent and booleans ----------------------------------------------------- */

static void test_percent(void **state)
{
	OK(units_parse_percent, "0", 0);
	OK(units_parse_percent, "20", 20);
	OK(units_parse_percent, "20%", 20);
	OK(units_parse_percent, "20 %", 20);
	OK(units_parse_percent, "150%", 150); /* the server judges the range */
	BAD(units_parse_percent, "20.5", -EINVAL, "whole percentage");
	BAD(units_parse_percent, "20.5%", -EINVAL, "whole percentage");
	BAD(units_parse_percent, "20%%", -EINVAL, "a percentage is a number");
	BAD(units_parse_percent, "20 percent", -EINVAL, "a percentage is a number");
	BAD(units_parse_percent, "%", -EINVAL, "not a number");
	BAD(units_parse_percent, "18446744073709551616%", -ERANGE, "too large");
}

static void test_bool(void **state)
{
	char why[128];

	assert_int_equal(units_parse_bool("on", why, sizeof(why)), 1);
	assert_int_equal(units_parse_bool("ON", why, sizeof(why)), 1);
	assert_int_equal(units_parse_bool("true", why, sizeof(why)), 1);
	assert_int_equal(units_parse_bool("yes", why, sizeof(why)), 1);
	assert_int_equal(units_parse_bool("1", why, sizeof(why)), 1);
	assert_int_equal(units_parse_bool("off", why, sizeof(why)), 0);
	assert_int_equal(units_parse_bool("false", why, sizeof(why)), 0);
	assert_int_equal(units_parse_bool("no", why, sizeof(why)), 0);
	assert_int_equal(units_parse_bool("0", why, sizeof(why)), 0);
	assert_rc_equal(units_parse_bool("maybe", why, sizeof(why)), -EINVAL);
	assert_str_contains(why, "'maybe'");
	assert_rc_equal(units_parse_bool("", why, sizeof(why)), -EINVAL);
}

/* A NULL or zero-length @why is allowed. */
static void test_no_why(void **state)
{
	uint64_t v = 7;

	assert_rc_equal(units_parse_size("1Q", &v, NULL, 0), -EINVAL);
	assert_rc_equal(units_parse_rate("1Q", &v, NULL, 10), -EINVAL);
	assert_uint_equal(v, 7);
}

/* ---- formatting --------------------------------------------------------------- */

#define FMT(fn, v, want)                                                                           \
	do {                                                                                       \
		char _b[UNITS_BUF];                                                                \
		assert_string_equal(fn(v, _b, sizeof(_b)), want);                                  \
	} while (0)

static void test_fmt_bytes(void **state)
{
	FMT(units_fmt_bytes, 0, "0 B");
	FMT(units_fmt_bytes, 1023, "1023 B");
	FMT(units_fmt_bytes, 1024, "1.00 KiB");
	FMT(units_fmt_bytes, 1536, "1.50 KiB");
	FMT(units_fmt_bytes, 4096, "4.00 KiB");
	FMT(units_fmt_bytes, 1048575, "1.00 MiB"); /* not "1024.00 KiB" */
	FMT(units_fmt_bytes, 64 << 20, "64.00 MiB");
	FMT(units_fmt_bytes, 1610612736, "1.50 GiB");
	FMT(units_fmt_bytes, 1ull << 40, "1.00 TiB");
	FMT(units_fmt_bytes, UINT64_MAX, "16.00 EiB");
}

static void test_fmt_rate(void **state)
{
	FMT(units_fmt_rate, 0, "0 B/s");
	FMT(units_fmt_rate, 999, "999 B/s");
	FMT(units_fmt_rate, 1000, "1.0 kB/s");
	FMT(units_fmt_rate, 117200000, "117.2 MB/s");
	FMT(units_fmt_rate, 999950, "1.0 MB/s"); /* not "1000.0 kB/s" */
	FMT(units_fmt_rate, 1610612736, "1.6 GB/s");
	FMT(units_fmt_rate, UINT64_MAX, "18.4 EB/s");
}

static void test_fmt_bits(void **state)
{
	FMT(units_fmt_bits, 0, "0 bit/s");
	FMT(units_fmt_bits, 100, "800 bit/s");
	FMT(units_fmt_bits, 125, "1.00 kbit/s");
	FMT(units_fmt_bits, 117250000, "938 Mbit/s");
	FMT(units_fmt_bits, 11725000, "93.8 Mbit/s");
	FMT(units_fmt_bits, 125000000, "1.00 Gbit/s");
	FMT(units_fmt_bits, 1250000000, "10.0 Gbit/s");
	FMT(units_fmt_bits, 124990000, "1.00 Gbit/s"); /* not "1000 Mbit/s" */
	FMT(units_fmt_bits, UINT64_MAX, "148 Ebit/s");
}

static void test_fmt_time(void **state)
{
	FMT(units_fmt_ms, 0, "0 ms");
	FMT(units_fmt_ms, 999, "999 ms");
	FMT(units_fmt_ms, 1000, "1.00 s");
	FMT(units_fmt_ms, 1500, "1.50 s");
	FMT(units_fmt_ms, 59999, "59.99 s");
	FMT(units_fmt_ms, 60000, "1m00s");
	FMT(units_fmt_ms, 123456, "2m03s");
	FMT(units_fmt_ms, 3723000, "1h02m03s");
	FMT(units_fmt_ms, UINT64_MAX, "5124095576030h25m51s");

	FMT(units_fmt_us, 0, "0 us");
	FMT(units_fmt_us, 850, "850 us");
	FMT(units_fmt_us, 1000, "1.0 ms");
	FMT(units_fmt_us, 41300, "41.3 ms");
	FMT(units_fmt_us, 9999999, "9999.9 ms");
	FMT(units_fmt_us, 10000000, "10.00 s");
}

/* A buffer too small: cut short, terminated, nothing written past it. */
static void test_fmt_small_buffer(void **state)
{
	char b[6];

	memset(b, 'x', sizeof(b));
	assert_string_equal(units_fmt_bytes(1610612736, b, 5), "1.50");
	assert_int_equal(b[5], 'x');
	assert_string_equal(units_fmt_rate(117200000, b, 5), "117.");
	assert_string_equal(units_fmt_bits(117250000, b, 5), "938 ");
	assert_string_equal(units_fmt_ms(123456, b, 5), "2m03");
	assert_string_equal(units_fmt_us(41300, b, 5), "41.3");
}

/* |@got - @want| <= @want * @rel */
static void near(uint64_t got, uint64_t want, double rel, const char *txt)
{
	double d = (double)got - (double)want;

	if ((d < 0 ? -d : d) > (double)want * rel)
		fail_msg("'%s' parsed to %llu, formatted from %llu", txt, (unsigned long long)got,
			 (unsigned long long)want);
}

static void test_round_trip(void **state)
{
	static const uint64_t vals[] = {
	    0,	       1,	  999,	      1000,	      1023,	  1024,
	    1536,      4096,	  999999,     1000000,	      1048576,	  117200000,
	    117250000, 125000000, 1610612736, 10000000000ull, 1ull << 40, 123456789012ull,
	    1ull << 60};
	char b[UNITS_BUF], why[256];
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		/* two decimals of at least 1: within 0.5% */
		units_fmt_bytes(vals[i], b, sizeof(b));
		assert_rc_equal(units_parse_size(b, &v, why, sizeof(why)), 0);
		near(v, vals[i], 0.005, b);
		/* one decimal of at least 1.0: within 5% */
		units_fmt_rate(vals[i], b, sizeof(b));
		assert_rc_equal(units_parse_rate(b, &v, why, sizeof(why)), 0);
		near(v, vals[i], 0.05, b);
		/* three significant digits: within 0.5%, and an eighth of a byte */
		units_fmt_bits(vals[i], b, sizeof(b));
		assert_rc_equal(units_parse_rate(b, &v, why, sizeof(why)), 0);
		if (vals[i] > 100)
			near(v, vals[i], 0.005, b);
	}
	/* exact where the digits shown are the whole value */
	units_fmt_bytes(1610612736, b, sizeof(b));
	assert_rc_equal(units_parse_size(b, &v, why, sizeof(why)), 0);
	assert_uint_equal(v, 1610612736);
	units_fmt_rate(117200000, b, sizeof(b));
	assert_rc_equal(units_parse_rate(b, &v, why, sizeof(why)), 0);
	assert_uint_equal(v, 117200000);
	units_fmt_bits(117250000, b, sizeof(b));
	assert_rc_equal(units_parse_rate(b, &v, why, sizeof(why)), 0);
	assert_uint_equal(v, 117250000);

	/* durations: exact below a second and on whole units, truncated above */
	{
		static const uint64_t ms[] = {0,     1,	    300,    999,    1000,    1500,
					      59999, 60000, 123000, 123456, 3723000, 86400000};

		for (i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
			units_fmt_ms(ms[i], b, sizeof(b));
			assert_rc_equal(units_parse_duration_ms(b, &v, why, sizeof(why)), 0);
			assert_true(v <= ms[i]);
			assert_true(ms[i] - v < (ms[i] < 60000 ? 10u : 1000u));
			if (ms[i] < 1000 || ms[i] % 1000 == 0)
				assert_uint_equal(v, ms[i]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_common_errors), cmocka_unit_test(test_uint),
	    cmocka_unit_test(test_size),	  cmocka_unit_test(test_rate),
	    cmocka_unit_test(test_duration_ms),	  cmocka_unit_test(test_duration_s),
	    cmocka_unit_test(test_percent),	  cmocka_unit_test(test_bool),
	    cmocka_unit_test(test_no_why),	  cmocka_unit_test(test_fmt_bytes),
	    cmocka_unit_test(test_fmt_rate),	  cmocka_unit_test(test_fmt_bits),
	    cmocka_unit_test(test_fmt_time),	  cmocka_unit_test(test_fmt_small_buffer),
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
