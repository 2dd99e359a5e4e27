/* SPDX-License-Identifier: MIT */
/*
 * Bitmaps of pages: one bit a page, 64 pages a word. The dirty bitmaps are
 * written by VMM threads (atomically, word-wise OR) and drained by the
 * migration thread with an atomic exchange per word, so no bit set while the
 * drain runs is ever lost: it lands either in what the drain took or in what
 * it left behind.
 */
#include <stdlib.h>

#include "util.h"

uint64_t *bitmap_new(uint64_t nbits)
{
	return calloc(BITMAP_WORDS(nbits) ? BITMAP_WORDS(nbits) : 1, sizeof(uint64_t));
}

void bitmap_free(uint64_t *map)
{
	free(map);
}

static inline uint64_t first_word_mask(uint64_t start)
{
	return ~0ull << (start % 64);
}

static inline uint64_t last_word_mask(uint64_t end)
{
	return (end % 64) ? ~0ull >> (64 - end % 64) : ~0ull;
}

void bitmap_set_range_atomic(uint64_t *map, uint64_t start, uint64_t n)
{
	uint64_t end = start + n, w, wend;

	if (!n)
		return;
	w = start / 64;
	wend = (end - 1) / 64;
	for (; w <= wend; w++) {
		uint64_t mask = ~0ull;

		if (w == start / 64)
			mask &= first_word_mask(start);
		if (w == wend)
			mask &= last_word_mask(end);
		__atomic_fetch_or(&map[w], mask, __ATOMIC_RELAXED);
	}
}

void bitmap_set_range(uint64_t *map, uint64_t start, uint64_t n)
{
	uint64_t end = start + n, w, wend;

	if (!n)
		return;
	w = start / 64;
	wend = (end - 1) / 64;
	for (; w <= wend; w++) {
		uint64_t mask = ~0ull;

		if (w == start / 64)
			mask &= first_word_mask(start);
		if (w == wend)
			mask &= last_word_mask(end);
		map[w] |= mask;
	}
}

uint64_t bitmap_find_next(const uint64_t *map, uint64_t nbits, uint64_t start)
{
	uint64_t w, nwords = BITMAP_WORDS(nbits), word;

	if (start >= nbits)
		return nbits;
	w = start / 64;
	word = map[w] & first_word_mask(start);
	for (;;) {
		if (word) {
			uint64_t bit = w * 64 + (uint64_t)__builtin_ctzll(word);

			return bit < nbits ? bit : nbits;
		}
		if (++w >= nwords)
			return nbits;
		word = map[w];
	}
}

uint64_t bitmap_find_next_zero(const uint64_t *map, uint64_t nbits, uint64_t start)
{
	uint64_t w, nwords = BITMAP_WORDS(nbits), word;

	if (start >= nbits)
		return nbits;
	w = start / 64;
	word = ~map[w] & first_word_mask(start);
	for (;;) {
		if (word) {
			uint64_t bit = w * 64 + (uint64_t)__builtin_ctzll(word);

			return bit < nbits ? bit : nbits;
		}
		if (++w >= nwords)
			return nbits;
		word = ~map[w];
	}
}

uint64_t bitmap_count(const uint64_t *map, uint64_t nbits)
{
	uint64_t w, n = 0, nwords = nbits / 64;

	for (w = 0; w < nwords; w++)
		n += (uint64_t)__builtin_popcountll(map[w]);
	if (nbits % 64)
		n += (uint64_t)__builtin_popcountll(map[nwords] & last_word_mask(nbits));
	return n;
}

uint64_t bitmap_drain_atomic(uint64_t *dst, uint64_t *src, uint64_t nbits)
{
	uint64_t w, n = 0, nwords = BITMAP_WORDS(nbits);

	for (w = 0; w < nwords; w++) {
		uint64_t v;

		if (!__atomic_load_n(&src[w], __ATOMIC_RELAXED))
			continue;
		v = __atomic_exchange_n(&src[w], 0, __ATOMIC_ACQ_REL);
		n += (uint64_t)__builtin_popcountll(v);
		dst[w] |= v;
	}
	return n;
}
