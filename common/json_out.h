/* SPDX-License-Identifier: MIT */
/*
 * What the programs (tern-vm, tern-loopback) share to print their JSON
 * lines. Not part of libtern: programs reach the library through
 * include/tern/ only, and this is theirs.
 */
#ifndef TERN_COMMON_JSON_OUT_H
#define TERN_COMMON_JSON_OUT_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/*
 * Bytes in the well-formed UTF-8 sequence at @p, or 0 (RFC 3629: no overlong
 * form, no surrogate, nothing above U+10FFFF). @p is NUL-terminated, and a
 * NUL is never a continuation byte, so no byte past it is read.
 */
static inline size_t json_utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	for (i = 1; i < len; i++)
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
			return 0;
	return len;
}

/*
 * json_escape() - @s as the inside of a JSON string, into @out (@len bytes,
 * NUL-terminated; cut short rather than overflow, and only between
 * characters). A byte that is not well-formed UTF-8 becomes U+FFFD: strict
 * JSON readers refuse the whole line otherwise. Returns the length.
 */
static inline size_t json_escape(char *out, size_t len, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, step;

	if (!len)
		return 0;
	for (; *p; p += step) {
		step = json_utf8_len(p);
		if (*p == '"' || *p == '\\') {
			if (n + 2 >= len)
				break;
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20 || !step) {
			if (n + 6 >= len)
				break;
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", step ? *p : 0xfffd);
			step = 1;
		} else {
			if (n + step >= len)
				break;
			memcpy(out + n, p, step);
			n += step;
		}
	}
	out[n] = '\0';
	return n;
}

#endif /* TERN_COMMON_JSON_OUT_H */
