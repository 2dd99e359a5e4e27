/* SPDX-License-Identifier: MIT */
/*
 * Units in and out (units.h states the grammar).
 *
 * Parsing is exact: a number is read as an integer mantissa over a power of
 * ten, and scaled with 128-bit integers (checked: E is 2^60), so "1.5GiB" is 1610612736 and not
 * whatever a double makes of it, and "0.1s" is exactly 100 ms. tern targets
 * 64-bit hosts (KVM on x86-64 and arm64), where gcc and clang both have
 * unsigned __int128. Formatting uses doubles: it only has to be readable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "units.h"

typedef unsigned __int128 u128;

/*
 * The most significant digits a number may have. Scaled by the largest
 * multiplier (an hour in nanoseconds, 3.6e12), 10^25 still fits 128 bits
 * (3.4e38); a number with that many digits before the point is beyond any
 * 64-bit result, whatever its unit.
 */
#define MAX_DIGITS 25

static int fail(char *why, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *why, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* A decimal number: mant / 10^frac. */
struct dec {
	u128 mant;
	unsigned int frac;
};

static u128 pow10_u128(unsigned int n)
{
	u128 v = 1;

	while (n--)
		v *= 10;
	return v;
}

/*
 * Read NUMBER at *@p ([0-9]+ (. [0-9]+)?) and move *@p past it. @arg is the
 * whole argument, for messages.
 */
static int parse_dec(const char **p, struct dec *ret, const char *arg, char *why, size_t len)
{
	const char *s = *p, *int_start, *frac_start = NULL, *frac_end = NULL;
	unsigned int sig = 0, int_sig = 0;
	struct dec d = {0, 0};
	const char *q;

	if (*s == '-')
		return fail(why, len, -EINVAL, "'%s': negative values are not allowed", arg);
	if (*s < '0' || *s > '9')
		return fail(why, len, -EINVAL, "'%s': not a number", arg);
	int_start = s;
	while (*s >= '0' && *s <= '9')
		s++;
	if (*s == '.') {
		frac_start = ++s;
		while (*s >= '0' && *s <= '9')
			s++;
		frac_end = s;
		if (frac_end == frac_start)
			return fail(why, len, -EINVAL, "'%s': a digit must follow the point", arg);
		/* Trailing zeros of the fraction add nothing. */
		while (frac_end > frac_start && frac_end[-1] == '0')
			frac_end--;
	}
	/* Leading zeros add nothing either. */
	q = int_start;
	while (*q == '0')
		q++;
	for (; *q >= '0' && *q <= '9'; q++)
		int_sig++;
	sig = int_sig + (frac_start ? (unsigned int)(frac_end - frac_start) : 0);
	if (int_sig > MAX_DIGITS)
		return fail(why, len, -ERANGE, "'%s': too large", arg);
	if (sig > MAX_DIGITS)
		return fail(why, len, -EINVAL, "'%s': too many digits (at most %d)", arg,
			    MAX_DIGITS);
	for (q = int_start; *q >= '0' && *q <= '9'; q++)
		d.mant = d.mant * 10 + (unsigned int)(*q - '0');
	for (q = frac_start; q && q < frac_end; q++, d.frac++)
		d.mant = d.mant * 10 + (unsigned int)(*q - '0');
	*ret = d;
	*p = s;
	return 0;
}

/* The whole argument is digits; used for plain integers. */
static int finish_u64(u128 v, uint64_t *ret, const char *arg, char *why, size_t len)
{
	if (v > UINT64_MAX)
		return fail(why, len, -ERANGE, "'%s': too large (at most %llu)", arg,
			    (unsigned long long)UINT64_MAX);
	*ret = (uint64_t)v;
	return 0;
}

int units_parse_uint(const char *s, uint64_t *ret_value, char *why, size_t len)
{
	const char *p = s;
	struct dec d;
	int rc;

	if (!*s)
		return fail(why, len, -EINVAL, "empty value");
	rc = parse_dec(&p, &d, s, why, len);
	if (rc)
		return rc;
	if (d.frac)
		return fail(why, len, -EINVAL, "'%s': must be a whole number", s);
	if (*p)
		return fail(why, len, -EINVAL, "'%s': must be a plain number, without a unit", s);
	return finish_u64(d.mant, ret_value, s, why, len);
}

/* ---- sizes and rates ------------------------------------------------------- */

#define BYTE_UNITS "K, M, G, T, P, E (x1000) or Ki ... Ei (x1024), then B or bit"

static int parse_bytes(const char *s, bool rate, uint64_t *ret, char *why, size_t len)
{
	static const char prefixes[] = "kmgtpe";
	const char *what = rate ? "a rate" : "a size", *p = s, *unit;
	u128 mul = 1, div = 1, v;
	struct dec d;
	int rc;

	if (!*s)
		return fail(why, len, -EINVAL, "empty value");
	rc = parse_dec(&p, &d, s, why, len);
	if (rc)
		return rc;
	while (*p == ' ')
		p++;
	unit = p;
	if (*p && strchr(prefixes, *p | 0x20)) {
		unsigned int n = (unsigned int)(strchr(prefixes, *p | 0x20) - prefixes) + 1;
		bool iec = (p[1] | 0x20) == 'i';

		while (n--)
			mul *= iec ? 1024 : 1000;
		p += iec ? 2 : 1;
	}
	if (!strncasecmp(p, "bits", 4) || !strncasecmp(p, "bit", 3)) {
		if (!rate)
			return fail(why, len, -EINVAL, "'%s': a size is in bytes, not bits", s);
		div = 8;
		p += (p[3] | 0x20) == 's' ? 4 : 3;
	} else if (*p == 'B') {
		p++;
	} else if (*p == 'b') {
		return fail(why, len, -EINVAL,
			    "'%s': 'b' is ambiguous: write B for bytes or bit for bits", s);
	}
	if (p[0] == '/' && (p[1] | 0x20) == 's' && !p[2]) {
		if (!rate)
			return fail(why, len, -EINVAL, "'%s': a size is not a rate (no /s)", s);
		p += 2;
	}
	if (*p)
		return fail(why, len, -EINVAL, "'%s': unknown unit '%s' (%s takes %s%s)", s, unit,
			    what, BYTE_UNITS, rate ? ", optionally /s" : "");
	/* Round to the nearest byte: mant * mul / (10^frac * div). */
	if (d.mant > ~(u128)0 / mul)
		return fail(why, len, -EINVAL, "'%s': too many digits for this unit", s);
	div *= pow10_u128(d.frac);
	v = d.mant * mul;
	v = v / div + (v % div >= div - v % div ? 1 : 0);
	/* 0 is a value of its own ("unlimited" for max-bandwidth): a request
	 * for a little must not become its opposite. */
	if (!v && d.mant)
		return fail(why, len, -ERANGE,
			    "'%s': under half a byte, it would round to 0; write 0 if 0 is meant",
			    s);
	return finish_u64(v, ret, s, why, len);
}

int units_parse_size(const char *s, uint64_t *ret_bytes, char *why, size_t len)
{
	return parse_bytes(s, false, ret_bytes, why, len);
}

int units_parse_rate(const char *s, uint64_t *ret_bytes_per_s, char *why, size_t len)
{
	return parse_bytes(s, true, ret_bytes_per_s, why, len);
}

/* ---- durations ------------------------------------------------------------- */

#define NS_PER_MS 1000000ull

static const struct {
	const char *name;
	uint64_t ns;
} time_units[] = {
    /* in decreasing order: a duration's parts must follow it */
    {"h", 3600000 * NS_PER_MS}, {"min", 60000 * NS_PER_MS}, {"m", 60000 * NS_PER_MS},
    {"s", 1000 * NS_PER_MS},	{"ms", NS_PER_MS},
};

#define TIME_UNITS "h, m or min, s, ms"

static int parse_duration(const char *s, uint64_t unit_ns, const char *unit_name, uint64_t *ret,
			  char *why, size_t len)
{
	u128 total = 0, v;
	size_t last = 0, i, n;
	const char *p = s;
	bool first = true;
	struct dec d;
	int rc;

	if (!*s)
		return fail(why, len, -EINVAL, "empty value");
	while (first || *p) {
		const char *unit;

		rc = parse_dec(&p, &d, s, why, len);
		if (rc)
			return rc;
		while (*p == ' ')
			p++;
		if (first && !*p) {
			/* A bare number: the parameter's own unit. */
			v = d.mant * unit_ns;
			if (v % pow10_u128(d.frac))
				return fail(why, len, -EINVAL, "'%s': must be whole %s", s,
					    unit_name);
			total = v / pow10_u128(d.frac);
			break;
		}
		unit = p;
		for (n = 0; (p[n] | 0x20) >= 'a' && (p[n] | 0x20) <= 'z'; n++)
			;
		for (i = 0; i < sizeof(time_units) / sizeof(time_units[0]); i++)
			if (strlen(time_units[i].name) == n &&
			    !strncasecmp(unit, time_units[i].name, n))
				break;
		if (!n && !*unit)
			return fail(why, len, -EINVAL, "'%s': a unit must follow each number (%s)",
				    s, TIME_UNITS);
		if (!n || i == sizeof(time_units) / sizeof(time_units[0]))
			return fail(why, len, -EINVAL, "'%s': unknown unit '%.*s' (use %s)", s,
				    n ? (int)n : (int)strlen(unit), unit, TIME_UNITS);
		/* "m" and "min" are the same unit: compare sizes, not slots. */
		if (!first && time_units[i].ns >= time_units[last].ns)
			return fail(why, len, -EINVAL,
				    "'%s': '%s' after '%s': write the parts largest first, "
				    "each once",
				    s, time_units[i].name, time_units[last].name);
		p += n;
		while (*p == ' ')
			p++;
		v = d.mant * time_units[i].ns;
		if (v % pow10_u128(d.frac))
			return fail(why, len, -EINVAL, "'%s': finer than a nanosecond", s);
		total += v / pow10_u128(d.frac);
		last = i;
		first = false;
	}
	if (total % unit_ns)
		return fail(why, len, -EINVAL, "'%s': must be whole %s", s, unit_name);
	return finish_u64(total / unit_ns, ret, s, why, len);
}

int units_parse_duration_ms(const char *s, uint64_t *ret_ms, char *why, size_t len)
{
	return parse_duration(s, NS_PER_MS, "milliseconds", ret_ms, why, len);
}

int units_parse_duration_s(const char *s, uint64_t *ret_s, char *why, size_t len)
{
	return parse_duration(s, 1000 * NS_PER_MS, "seconds", ret_s, why, len);
}

/* ---- percent and booleans -------------------------------------------------- */

int units_parse_percent(const char *s, uint64_t *ret_percent, char *why, size_t len)
{
	const char *p = s;
	struct dec d;
	int rc;

	if (!*s)
		return fail(why, len, -EINVAL, "empty value");
	rc = parse_dec(&p, &d, s, why, len);
	if (rc)
		return rc;
	while (*p == ' ')
		p++;
	if (*p == '%')
		p++;
	if (*p)
		return fail(why, len, -EINVAL, "'%s': a percentage is a number, optionally %%", s);
	if (d.frac)
		return fail(why, len, -EINVAL, "'%s': must be a whole percentage", s);
	return finish_u64(d.mant, ret_percent, s, why, len);
}

int units_parse_bool(const char *s, char *why, size_t len)
{
	static const char *const on[] = {"on", "true", "yes", "1"};
	static const char *const off[] = {"off", "false", "no", "0"};
	size_t i;

	for (i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (!strcasecmp(s, on[i]))
			return 1;
		if (!strcasecmp(s, off[i]))
			return 0;
	}
	return fail(why, len, -EINVAL, "'%s': expected on or off", s);
}

/* ---- formatting ------------------------------------------------------------ */

/*
 * @v in units of @base^n with @decimals digits shown. A value that would
 * show as @base in one unit ("1024.00 KiB") shows in the next ("1.00 MiB").
 */
static char *fmt_scaled(double v, double base, const char *const *names, size_t nnames,
			int decimals, const char *tail, char *buf, size_t len)
{
	double limit = base - 0.5 * (decimals == 2 ? 0.01 : decimals == 1 ? 0.1 : 1);
	size_t i = 0;

	while (i + 1 < nnames && v >= limit) {
		v /= base;
		i++;
	}
	snprintf(buf, len, "%.*f %s%s", i ? decimals : 0, v, names[i], tail);
	return buf;
}

char *units_fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

	return fmt_scaled((double)bytes, 1024, names, 7, 2, "", buf, len);
}

char *units_fmt_rate(uint64_t bytes_per_s, char *buf, size_t len)
{
	static const char *const names[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};

	return fmt_scaled((double)bytes_per_s, 1000, names, 7, 1, "/s", buf, len);
}

char *units_fmt_bits(uint64_t bytes_per_s, char *buf, size_t len)
{
	static const char *const names[] = {"", "k", "M", "G", "T", "P", "E", "Z"};
	double v = (double)bytes_per_s * 8;
	size_t i = 0;
	int decimals;

	/* Three significant digits: 938, 93.8, 9.38. */
	while (i + 1 < 8 && v >= 999.5) {
		v /= 1000;
		i++;
	}
	decimals = !i ? 0 : v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
	snprintf(buf, len, "%.*f %sbit/s", decimals, v, names[i]);
	return buf;
}

char *units_fmt_ms(uint64_t ms, char *buf, size_t len)
{
	uint64_t s;

	if (ms < 1000) {
		snprintf(buf, len, "%llu ms", (unsigned long long)ms);
		return buf;
	}
	if (ms < 60000) {
		/* Truncated, not rounded: 59999 ms is "59.99 s", never "60.00 s". */
		snprintf(buf, len, "%llu.%02llu s", (unsigned long long)(ms / 1000),
			 (unsigned long long)(ms % 1000 / 10));
		return buf;
	}
	s = ms / 1000;
	if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%lluh%02llum%02llus", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
	return buf;
}

char *units_fmt_us(uint64_t us, char *buf, size_t len)
{
	if (us < 1000) {
		snprintf(buf, len, "%llu us", (unsigned long long)us);
		return buf;
	}
	if (us < 10000000) {
		snprintf(buf, len, "%llu.%llu ms", (unsigned long long)(us / 1000),
			 (unsigned long long)(us % 1000 / 100));
		return buf;
	}
	return units_fmt_ms(us / 1000, buf, len);
}
