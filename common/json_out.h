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

/*
 * json_escape() - @s as the inside of a JSON string, into @out (@len bytes,
 * NUL-terminated; cut short rather than overflow). Returns the length.
 */
static inline size_t json_escape(char *out, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

#endif /* TERN_COMMON_JSON_OUT_H */
