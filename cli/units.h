/* SPDX-License-Identifier: MIT */
/*
 * ternctl's units: operator text in ("1.5GiB/s", "300ms", "20%"), human text
 * out ("1.50 GiB", "117.2 MB/s", "938 Mbit/s", "1.50 s"). docs/TERNCTL.md
 * states the rules; in short:
 *
 *   sizes and rates  NUMBER [spaces] [PREFIX] [B | bit] [/s]
 *                    K M G T P E (any case) = 1000^n, Ki Mi ... Ei = 1024^n;
 *                    B (or nothing) = bytes, bit or bits = bits (/ 8); a
 *                    lowercase "b" alone is refused as ambiguous; /s only for
 *                    rates. Rounded to the nearest byte (halves up); a
 *                    value that is not zero but rounds to 0 is refused.
 *   durations        NUMBER alone (the parameter's own unit), or one or more
 *                    NUMBER [spaces] UNIT, largest first, each unit once: h,
 *                    m or min, s, ms, any case ("1h30m", "1.5s", "2m03s");
 *                    the total must be a whole number of the parameter's
 *                    unit.
 *   percent          a whole NUMBER, optionally followed by %.
 *   NUMBER           digits, optionally "." and digits; no sign, no exponent.
 *
 * The parsers check syntax and overflow only, never ranges: the server
 * validates values and says so in its own words. They return 0, or -EINVAL
 * (malformed) / -ERANGE (does not fit 64 bits) with a message in @why that
 * quotes the argument, e.g. "'12Q': unknown unit 'Q' (...)". Output
 * parameters are written only on success.
 *
 * The formatters write into @buf (@len bytes, NUL-terminated, cut short
 * rather than overflow) and return @buf, so they nest in printf() calls.
 * The output of units_fmt_bytes() / _rate() / _bits() / _ms() parses back
 * (units_parse_size() / _rate() / _rate() / _duration_ms()) to the value
 * within the rounding of the digits shown.
 */
#ifndef TERN_CLI_UNITS_H
#define TERN_CLI_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Big enough for any formatter's output. */
#define UNITS_BUF 32

int units_parse_uint(const char *s, uint64_t *ret_value, char *why, size_t len);
int units_parse_size(const char *s, uint64_t *ret_bytes, char *why, size_t len);
int units_parse_rate(const char *s, uint64_t *ret_bytes_per_s, char *why, size_t len);
/* A bare number is milliseconds; the total must be whole milliseconds. */
int units_parse_duration_ms(const char *s, uint64_t *ret_ms, char *why, size_t len);
/* A bare number is seconds; the total must be whole seconds. */
int units_parse_duration_s(const char *s, uint64_t *ret_s, char *why, size_t len);
int units_parse_percent(const char *s, uint64_t *ret_percent, char *why, size_t len);
/* "on", "off" (also true/false, yes/no, 1/0): 1 or 0; -EINVAL otherwise. */
int units_parse_bool(const char *s, char *why, size_t len);

/* IEC, two decimals from 1 KiB on: "512 B", "1.50 GiB". */
char *units_fmt_bytes(uint64_t bytes, char *buf, size_t len);
/* SI bytes per second, one decimal from 1 kB/s on: "117.2 MB/s". */
char *units_fmt_rate(uint64_t bytes_per_s, char *buf, size_t len);
/* The same rate in SI bits per second, three significant digits: "938 Mbit/s". */
char *units_fmt_bits(uint64_t bytes_per_s, char *buf, size_t len);
/* "812 ms", "1.50 s", "59.99 s", "2m03s", "1h02m03s". */
char *units_fmt_ms(uint64_t ms, char *buf, size_t len);
/* "850 us", "41.3 ms", then as units_fmt_ms() from 10 s on. */
char *units_fmt_us(uint64_t us, char *buf, size_t len);

#endif /* TERN_CLI_UNITS_H */
