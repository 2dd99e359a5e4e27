/* SPDX-License-Identifier: MIT */
/*
 * The zero-page test. Zero pages never cross the wire, so every page sent is
 * tested first: it must cost next to nothing on random data (decided by the
 * first 64 bytes) and run at memory speed on zero data (OR-accumulate whole
 * cache lines, which the compiler vectorises, and test once per line).
 */
#include <string.h>

#include "compress.h"

bool page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i, n = len / 8;

	for (i = 0; i < n; i += 8) {
		uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] |
			       w[i + 6] | w[i + 7];

		if (acc)
			return false;
	}
	return true;
}
