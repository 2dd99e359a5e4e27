/* SPDX-License-Identifier: MIT */
/*
 * The region hash of verify-ram's digest (digest.c folds the region hashes;
 * docs/PROTOCOL.md defines both). It must run at memory bandwidth: the
 * digest reads every byte of RAM on both sides during the migration, on
 * cores the migration already fills, so each byte it spends in arithmetic
 * is paid in total time.
 *
 * The definition. A region is read as 64-byte stripes of eight
 * little-endian u64 words w[0..7]; eight u64 accumulators a[0..7] start at
 * seed ^ INIT[l]. Stripe s (0, 1, ... in the region) adds, per lane l,
 *	x = w[l] ^ KEY[l] ^ (s + 1) * P1
 *	a[l] += lo32(x) * hi32(x) + w[l ^ 1]
 * and after every 64th stripe (4 KiB), and once after the last, each
 * accumulator is scrambled: a ^= a >> 47; a ^= KEY[l]; a *= P32. Whole words
 * after the last whole stripe are mixed into a[i % 8] one by one. The two
 * output words fold the even and the odd lanes with the length.
 *
 * Why this shape. The product is what lets a change of one bit anywhere
 * in a word move the sum; the word added to its neighbour lane keeps a word
 * whose product is zero (a zero half) from vanishing. The stripe's term in
 * the key makes equal data at two places count differently, so swapped
 * stripes change the sum; the scramble -- a bijection of each lane, nothing
 * is lost -- makes the pages of a region count in order. Eight lanes of
 * 32 x 32 -> 64-bit products with no chain between stripes are what a
 * vector unit does in a cycle or two: with AVX2 this runs as fast as memory
 * delivers (30 GB/s cold on the test host, 70 hot; the previous
 * multiply-xorshift chain made 16.5). It is a checksum against lost or
 * misplaced pages, not a cryptographic hash.
 *
 * The scalar and the AVX2 code compute the same function (a unit test
 * compares them on random data); which one runs is chosen once, by what
 * the CPU has, so two hosts of different CPUs agree.
 *
 * The loads race the writers into guest RAM by design (digest_track.c's
 * generation counters decide whether a hash stands), so the functions
 * reading RAM are not instrumented by the thread sanitizer, and the scalar
 * loads are plain ones it does not intercept (a memcpy() would be).
 */
#include "core_priv.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DIGEST_HAVE_AVX2 1
#else
#define DIGEST_HAVE_AVX2 0
#endif

#define P1 0x9e3779b97f4a7c15ull
#define P2 0xc2b2ae3d27d4eb4full
#define P32 0x9e3779b1u
#define STRIPE 64
#define STRIPES_PER_SCRAMBLE 64
#define LO32 0xffffffffull

static const uint64_t INIT[8] = {
    0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull,
    0x452821e638d01377ull, 0xbe5466cf34e90c6cull, 0xc0ac29b7c97c50ddull, 0x3f84d5b5b5470917ull,
};
static const uint64_t KEY[8] = {
    0x9216d5d98979fb1bull, 0xd1310ba698dfb5acull, 0x2ffd72dbd01adfb7ull, 0xb8e1afed6a267e96ull,
    0xba7c9045f12c7f99ull, 0x24a19947b3916cf7ull, 0x0801f2e2858efc16ull, 0x636920d871574e69ull,
};

typedef uint64_t __attribute__((may_alias, aligned(1))) ram_word;

static inline uint64_t mix(uint64_t a, uint64_t w)
{
	a = (a ^ w) * P1;
	return a ^ (a >> 29);
}

static inline uint64_t fold(uint64_t h)
{
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	return h;
}

static inline uint64_t scramble(uint64_t a, unsigned int l)
{
	a ^= a >> 47;
	a ^= KEY[l];
	return (a & LO32) * P32 + (((a >> 32) * P32) << 32);
}

/* The stripes [@s0, @s1) of @p into @a, scalar. */
static __attribute__((no_sanitize_thread)) void stripes_scalar(const uint8_t *p, uint64_t s0,
							       uint64_t s1, uint64_t a[8])
{
	uint64_t s, x;
	unsigned int l;

	for (s = s0; s < s1; s++) {
		const ram_word *w = (const ram_word *)(p + s * STRIPE);
		uint64_t k = (s + 1) * P1;

		for (l = 0; l < 8; l++) {
			x = w[l] ^ KEY[l] ^ k;
			a[l] += (x & LO32) * (x >> 32) + w[l ^ 1];
		}
		if ((s + 1) % STRIPES_PER_SCRAMBLE == 0)
			for (l = 0; l < 8; l++)
				a[l] = scramble(a[l], l);
	}
}

#if DIGEST_HAVE_AVX2
#define AVX2 __attribute__((target("avx2")))

/* a * b for each u64 lane, b < 2^32: two 32 x 32 -> 64 products */
AVX2 static inline __m256i mul_by_u32(__m256i a, __m256i b)
{
	__m256i lo = _mm256_mul_epu32(a, b);
	__m256i hi = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);

	return _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));
}

AVX2 static inline __m256i scramble_avx2(__m256i a, __m256i key)
{
	a = _mm256_xor_si256(a, _mm256_srli_epi64(a, 47));
	a = _mm256_xor_si256(a, key);
	return mul_by_u32(a, _mm256_set1_epi64x(P32));
}

/* One stripe's four lanes: lo32(x) * hi32(x) plus the neighbour word
 * (0x4e swaps the two u64s of each 128-bit half: lanes 1 0 3 2). */
AVX2 static inline __m256i lanes_avx2(__m256i a, __m256i w, __m256i key, __m256i k)
{
	__m256i x = _mm256_xor_si256(_mm256_xor_si256(w, key), k);
	__m256i prod = _mm256_mul_epu32(x, _mm256_srli_epi64(x, 32));

	return _mm256_add_epi64(a, _mm256_add_epi64(prod, _mm256_shuffle_epi32(w, 0x4e)));
}

/* The same as stripes_scalar(), four lanes to a register. */
AVX2 static __attribute__((no_sanitize_thread)) void stripes_avx2(const uint8_t *p, uint64_t s0,
								  uint64_t s1, uint64_t a[8])
{
	const __m256i k0 = _mm256_loadu_si256((const __m256i *)KEY);
	const __m256i k1 = _mm256_loadu_si256((const __m256i *)(KEY + 4));
	__m256i a0 = _mm256_loadu_si256((const __m256i *)a);
	__m256i a1 = _mm256_loadu_si256((const __m256i *)(a + 4));
	uint64_t s;

	for (s = s0; s < s1; s++) {
		const uint8_t *q = p + s * STRIPE;
		__m256i k = _mm256_set1_epi64x((long long)((s + 1) * P1));

		a0 = lanes_avx2(a0, _mm256_loadu_si256((const __m256i *)q), k0, k);
		a1 = lanes_avx2(a1, _mm256_loadu_si256((const __m256i *)(q + 32)), k1, k);
		if ((s + 1) % STRIPES_PER_SCRAMBLE == 0) {
			a0 = scramble_avx2(a0, k0);
			a1 = scramble_avx2(a1, k1);
		}
	}
	_mm256_storeu_si256((__m256i *)a, a0);
	_mm256_storeu_si256((__m256i *)(a + 4), a1);
}
#endif

static bool have_avx2(void)
{
#if DIGEST_HAVE_AVX2
	static int have = -1; /* a benign race: every thread finds the same */

	if (__atomic_load_n(&have, __ATOMIC_RELAXED) < 0) {
		__builtin_cpu_init();
		__atomic_store_n(&have, __builtin_cpu_supports("avx2") ? 1 : 0, __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&have, __ATOMIC_RELAXED) == 1;
#else
	return false;
#endif
}

bool digest_hash_has_simd(void)
{
	return have_avx2();
}

static __attribute__((no_sanitize_thread)) uint64_t tail_word(const uint8_t *p)
{
	return *(const ram_word *)p;
}

void digest_hash_bytes_with(bool simd, const uint8_t *p, uint64_t len, uint64_t seed,
			    uint64_t out[2])
{
	uint64_t a[8], nstripes = len / STRIPE, i;
	unsigned int l;

	for (l = 0; l < 8; l++)
		a[l] = seed ^ INIT[l];
#if DIGEST_HAVE_AVX2
	if (simd && have_avx2())
		stripes_avx2(p, 0, nstripes, a);
	else
#endif
		stripes_scalar(p, 0, nstripes, a);
	(void)simd;
	for (l = 0; l < 8; l++)
		a[l] = scramble(a[l], l);
	for (i = nstripes * STRIPE; i + 8 <= len; i += 8)
		a[(i / 8) % 8] = mix(a[(i / 8) % 8], tail_word(p + i));
	out[0] = fold(mix(mix(mix(mix(len * P2, a[0]), a[2]), a[4]), a[6]));
	out[1] = fold(mix(mix(mix(mix(~len, a[1]), a[3]), a[5]), a[7]));
}

void digest_hash_bytes(const uint8_t *p, uint64_t len, uint64_t seed, uint64_t out[2])
{
	digest_hash_bytes_with(true, p, len, seed, out);
}
