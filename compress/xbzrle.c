/* SPDX-License-Identifier: MIT */
/*
 * The XBZRLE delta: what turns the version of a page the destination has
 * (@old) into the version being sent (@cur). Conceptually it is the XOR of
 * the two, run-length encoded: runs where the XOR is zero (unchanged bytes)
 * are skipped, runs where it is not carry the bytes. We carry the NEW bytes,
 * not the XOR bytes, so that the decoder writes them without reading the
 * page first.
 *
 * Format: a sequence of pairs, nothing before, between or after them:
 *
 *     delta  := pair*
 *     pair   := skip:uleb128  count:uleb128  bytes[count]
 *
 * - skip: bytes left unchanged from the current offset (0 is allowed only in
 *   the first pair, for a page whose first byte changed; later pairs always
 *   skip at least one byte, so no two changed runs touch).
 * - count: changed bytes that follow (at least 1), copied to the page at
 *   offset + skip.
 * - uleb128: 7 bits a byte, low group first, high bit set on every byte but
 *   the last; at most 5 bytes, no redundant trailing zero group.
 * - Whatever follows the last pair is unchanged; the empty delta is an
 *   unchanged page. A delta that ends inside a pair is truncated; a pair
 *   after the page is complete (offset == page size) is overlong; a run that
 *   would end past the page is refused before anything is written.
 *
 * Encoder speed: pages sent again are mostly unchanged, so the encoder
 * compares 64 bytes at a time into a 64-bit "changed" mask (SSE2 on x86-64,
 * eight 64-bit XORs elsewhere) and skips a whole equal chunk with one test.
 * Inside a chunk it finds run boundaries with count-trailing-zeros on the
 * mask, never byte by byte. Equal gaps of one or two bytes between changed
 * bytes are folded into the changed run (mask_fill_gaps()): a new pair would
 * cost two varint bytes, more than the gap. The encoder gives up as soon as
 * the delta would not fit @out_max, so a page that changed everywhere costs
 * little more than the first @out_max bytes of it.
 */
#include "compress_priv.h"

#if defined(__SSE2__) && !defined(XBZRLE_SCALAR)
#include <emmintrin.h>
#endif

#define XBZRLE_VARINT_MAX 5

/* Bit i set where a[i] != b[i], for 64 bytes. */
static inline uint64_t chunk_mask(const uint8_t *a, const uint8_t *b)
{
#if defined(__SSE2__) && !defined(XBZRLE_SCALAR)
	uint64_t eq = 0;
	int i;

	for (i = 0; i < 4; i++) {
		__m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + 16 * i));
		__m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i));

		eq |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(va, vb)) << (16 * i);
	}
	return ~eq;
#elif __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7full;
	uint64_t m = 0;
	int w;

	for (w = 0; w < 8; w++) {
		uint64_t x, y, t;

		memcpy(&x, a + 8 * w, 8);
		memcpy(&y, b + 8 * w, 8);
		x ^= y;
		/* the high bit of each byte that is non-zero ... */
		t = (((x & lo7) + lo7) | x) & ~lo7;
		/* ... gathered into 8 bits, byte k to bit k (no two partial
		 * products land on the same bit, so nothing carries) */
		m |= (((t >> 7) * 0x0102040810204080ull) >> 56) << (8 * w);
	}
	return m;
#else
	uint64_t m = 0;
	int i;

	for (i = 0; i < 64; i++)
		m |= (uint64_t)(a[i] != b[i]) << i;
	return m;
#endif
}

/* The same for the last @n < 64 bytes of a page; bits from n up are 0. */
static uint64_t tail_mask(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint64_t m = 0;
	size_t i;

	for (i = 0; i < n; i++)
		m |= (uint64_t)(a[i] != b[i]) << i;
	return m;
}

/* Set the bits of equal gaps of 1 or 2 bytes between changed bytes. */
static inline uint64_t mask_fill_gaps(uint64_t m)
{
	return m | ((m << 1) & (m >> 1)) | ((m << 1) & (m >> 2)) | ((m << 2) & (m >> 1));
}

static inline size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	if (LIKELY(v < 0x80)) {
		p[0] = (uint8_t)v;
		return 1;
	}
	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * Append one changed run: its count, then its @n bytes from @cur. With
 * @old, also write the bytes to @old, taken from @out (what is sent), not
 * from @cur again, which the guest may have changed in between (the fence
 * keeps the compiler from reading @cur again instead: see
 * guest_read_fence()).
 */
static inline size_t put_changed(uint8_t *out, size_t o, size_t out_max, const uint8_t *cur,
				 uint8_t *old, size_t n)
{
	uint8_t *p = out + o;
	size_t i;

	p += varint_put(p, n);
	if (n <= 16 && (size_t)(p - out) + 16 <= out_max) {
		/* short runs are the common case: fixed-size copies, no call */
		for (i = 0; i < n; i++)
			p[i] = cur[i];
	} else {
		memcpy(p, cur, n);
	}
	if (old) {
		guest_read_fence();
		for (i = 0; i < n; i++)
			old[i] = p[i];
	}
	return (size_t)(p - out) + n;
}

static inline int encode(uint8_t *upd, const uint8_t *old, const uint8_t *cur, size_t len,
			 uint8_t *out, size_t out_max)
{
	size_t base, run = 0, o = 0;
	bool changed = false;

	if (len > (size_t)1 << 31)
		return -EINVAL; /* the length must fit the int we return, and 5 varint bytes */
	for (base = 0; base < len; base += 64) {
		size_t clen = MIN((size_t)64, len - base);
		uint64_t m = clen == 64 ? chunk_mask(old + base, cur + base)
					: tail_mask(old + base, cur + base, clen);
		unsigned p = 0;

		/* the common cases: a run goes on through the whole chunk */
		if (LIKELY(m == 0 && !changed))
			continue;
		if (m == ~0ull && changed)
			continue;
		m = mask_fill_gaps(m);
		for (;;) {
			uint64_t rest = (changed ? ~m : m) >> p;
			size_t at, n;

			if (!rest)
				break;
			p += (unsigned)__builtin_ctzll(rest);
			if (p >= clen)
				break; /* past the end of a short tail chunk */
			at = base + p;
			n = at - run;
			if (!changed) {
				/* an unchanged run ends: its varint opens the pair */
				if (o + varint_len(n) > out_max)
					return -ENOSPC;
				o += varint_put(out + o, n);
			} else {
				if (o + varint_len(n) + n > out_max)
					return -ENOSPC;
				o = put_changed(out, o, out_max, cur + run, upd ? upd + run : NULL,
						n);
			}
			/* bit p of the flipped mask is clear: the next ctz moves on */
			changed = !changed;
			run = at;
		}
	}
	if (changed) {
		size_t n = len - run;

		if (o + varint_len(n) + n > out_max)
			return -ENOSPC;
		o = put_changed(out, o, out_max, cur + run, upd ? upd + run : NULL, n);
	}
	return (int)o;
}

int xbzrle_encode(const uint8_t *old, const uint8_t *cur, size_t len, uint8_t *out, size_t out_max)
{
	return encode(NULL, old, cur, len, out, out_max);
}

int xbzrle_encode_update(uint8_t *old, const uint8_t *cur, size_t len, uint8_t *out, size_t out_max)
{
	return encode(old, old, cur, len, out, out_max);
}

/* Read one varint at *i; -EPROTO with a message when it is cut or malformed. */
static int varint_get(const uint8_t *d, size_t dlen, size_t *i, uint64_t *ret,
		      struct tern_error *err)
{
	uint64_t v = 0;
	size_t start = *i, k;

	for (k = 0; k < XBZRLE_VARINT_MAX; k++) {
		uint8_t b;

		if (start + k >= dlen)
			return tern_error_set(
			    err, -EPROTO,
			    "xbzrle: delta truncated in a run length at byte %zu of %zu", start,
			    dlen);
		b = d[start + k];
		v |= (uint64_t)(b & 0x7f) << (7 * k);
		if (!(b & 0x80)) {
			if (k > 0 && b == 0)
				return tern_error_set(
				    err, -EPROTO, "xbzrle: run length at byte %zu is not minimal",
				    start);
			*i = start + k + 1;
			*ret = v;
			return 0;
		}
	}
	return tern_error_set(err, -EPROTO,
			      "xbzrle: run length at byte %zu is longer than %d bytes", start,
			      XBZRLE_VARINT_MAX);
}

int xbzrle_decode(const uint8_t *delta, size_t dlen, uint8_t *page, size_t len,
		  struct tern_error *err)
{
	size_t i = 0, pos = 0;
	uint64_t skip = 0, count = 0;
	int ret;

	while (i < dlen) {
		if (pos == len)
			return tern_error_set(err, -EPROTO,
					      "xbzrle: delta overlong: %zu bytes left after the "
					      "%zu-byte page is complete",
					      dlen - i, len);
		ret = varint_get(delta, dlen, &i, &skip, err);
		if (ret < 0)
			return ret;
		if (skip == 0 && pos > 0)
			return tern_error_set(
			    err, -EPROTO,
			    "xbzrle: empty unchanged run at offset %zu (delta byte %zu)", pos,
			    i - 1);
		/* a pair must change at least one byte, so the skip ends inside */
		if (skip >= len - pos)
			return tern_error_set(err, -EPROTO,
					      "xbzrle: unchanged run of %" PRIu64
					      " at offset %zu runs past the %zu-byte page",
					      skip, pos, len);
		pos += skip;
		if (i == dlen)
			return tern_error_set(err, -EPROTO,
					      "xbzrle: delta truncated: unchanged run to offset "
					      "%zu has no changed run",
					      pos);
		ret = varint_get(delta, dlen, &i, &count, err);
		if (ret < 0)
			return ret;
		if (count == 0)
			return tern_error_set(
			    err, -EPROTO,
			    "xbzrle: empty changed run at offset %zu (delta byte %zu)", pos, i - 1);
		if (count > len - pos)
			return tern_error_set(err, -EPROTO,
					      "xbzrle: changed run of %" PRIu64
					      " at offset %zu runs past the %zu-byte page",
					      count, pos, len);
		if (count > dlen - i)
			return tern_error_set(err, -EPROTO,
					      "xbzrle: delta truncated: changed run of %" PRIu64
					      " at offset %zu has %zu bytes",
					      count, pos, dlen - i);
		memcpy(page + pos, delta + i, count);
		i += count;
		pos += count;
	}
	return 0;
}
