/* SPDX-License-Identifier: MIT */
/*
 * XBZRLE as a codec: the source keeps the last version it sent of recently
 * sent pages in a page cache, and sends a page dirtied again as the delta
 * (xbzrle.c) against that version when the delta is small enough.
 *
 * The page cache, shared by the encoders of every channel of a session:
 * direct-mapped, one slot per page of xbzrle-cache-size, the slot chosen by
 * a multiplicative hash of the key (block << 40 | page). A slot holds a key,
 * a valid bit and a copy of the page, under a per-slot try-lock. An encoder
 * never waits for a slot: when another encoder holds it, the page is a miss
 * and goes out raw without touching the slot. That is safe because the
 * holder writes its own key and page into the slot, so whatever the slot
 * held before (possibly an older version of our page) is gone when the
 * holder lets go -- provided no two encoders ever work on the SAME key at
 * once, which the caller guarantees: a page is sent at most once per round,
 * and the encoding of round n is finished before round n+1's starts (a
 * version encoded out of order would leave the cache holding a version the
 * destination has already overwritten).
 *
 * Per page, the encoder try-locks the slot, then:
 *   hit (the slot holds this key): encodes the delta from the cached
 *     version to the page in guest RAM straight into the payload, at most
 *     page_size - page_size / 8 bytes (a delta must save at least 1/8 of
 *     the page to be worth the destination's work), writing each changed
 *     run into the cached version as it goes (from the payload: the bytes
 *     sent);
 *   miss, or a hit whose delta does not fit ("overflow"): copies the page
 *     into the payload once, and that copy into the slot;
 *   busy: copies the page into the payload; the slot is not touched.
 * The cache must hold exactly the version the destination will have, and
 * the guest may write to the page while we read it. A raw page is therefore
 * sent from, and cached from, one copy. A delta needs no copy of the page:
 * whatever bytes it carries, the destination and the cache both become
 * "cached version + this delta". (A byte the guest changes after the
 * encoder compared it is left out or carried half-way; either way the page
 * is dirty again and goes out next round against what both sides hold.)
 * So a hit costs one compare of two pages plus a write of the changed
 * bytes, and a miss two copies. Both must read guest RAM once and reuse
 * what they read, which the compiler is free to undo (guest_read_fence()).
 *
 * Payload of an XBZRLE packet: one record per page, in packet order, and
 * nothing after the last:
 *
 *     record := kind:u8 body
 *     kind 0  raw        body = the page, page_size bytes
 *     kind 1  delta      body = length:be16 (>= 1), delta[length]
 *     kind 2  unchanged  body = nothing (the page equals the cached version)
 *
 * The destination applies a delta or "unchanged" to the page in guest RAM,
 * which holds the version the delta was made against. page_size is at most
 * 64 KiB, so a delta's length fits 16 bits.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "compress_priv.h"

#define XBZRLE_PAGE_MAX 65536u

struct xbzrle_slot {
	uint32_t lock;	/* 0 free, 1 held; __atomic, acquire on take, release on drop */
	uint32_t valid; /* the fields below and the page: only under ->lock */
	uint64_t key;
};

struct xbzrle_cache {
	/* immutable between resizes (which happen with no encoder running) */
	uint32_t page_size;
	uint64_t bytes;
	uint64_t nslots;
	struct xbzrle_slot *slots;
	uint8_t *pages; /* nslots x page_size, mmap'd: touched only when used */
};

static void cache_unmap(struct xbzrle_cache *c)
{
	free(c->slots);
	if (c->pages)
		munmap(c->pages, c->nslots * c->page_size);
	c->slots = NULL;
	c->pages = NULL;
	c->nslots = 0;
}

static int cache_map(struct xbzrle_cache *c, uint64_t bytes, struct tern_error *err)
{
	uint64_t n = bytes / c->page_size;
	void *p;

	if (n == 0)
		return tern_error_set(err, -EINVAL,
				      "xbzrle-cache-size %" PRIu64 " is smaller than a page (%u)",
				      bytes, c->page_size);
	if (n > SIZE_MAX / c->page_size || n > SIZE_MAX / sizeof(*c->slots))
		return tern_error_set(err, -ENOMEM, "xbzrle-cache-size %" PRIu64 " is too large",
				      bytes);
	c->slots = calloc(n, sizeof(*c->slots));
	if (!c->slots)
		return tern_error_set(err, -ENOMEM, "xbzrle: no memory for %" PRIu64 " cache slots",
				      n);
	p = mmap(NULL, n * c->page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(c->slots);
		c->slots = NULL;
		return tern_error_set(err, -ENOMEM, "xbzrle: cannot map a %" PRIu64 "-byte cache",
				      n * c->page_size);
	}
	/* huge pages where the kernel has them: a first pass through the
	 * cache would otherwise take a page fault for every slot */
	madvise(p, n * c->page_size, MADV_HUGEPAGE);
	c->pages = p;
	c->nslots = n;
	c->bytes = n * c->page_size;
	return 0;
}

int xbzrle_cache_new(uint64_t bytes, uint32_t page_size, struct xbzrle_cache **ret,
		     struct tern_error *err)
{
	struct xbzrle_cache *c;
	int r;

	if (page_size < 64 || page_size % 64 || page_size > XBZRLE_PAGE_MAX)
		return tern_error_set(err, -EINVAL, "xbzrle: page size %u not supported",
				      page_size);
	c = calloc(1, sizeof(*c));
	if (!c)
		return tern_error_set(err, -ENOMEM, "xbzrle: no memory for a cache");
	c->page_size = page_size;
	r = cache_map(c, bytes, err);
	if (r < 0) {
		free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int xbzrle_cache_resize(struct xbzrle_cache *c, uint64_t bytes, struct tern_error *err)
{
	struct xbzrle_cache old = *c;
	int r;

	/* map the new one first: a failed resize leaves the old cache working */
	r = cache_map(c, bytes, err);
	if (r < 0) {
		*c = old;
		return r;
	}
	cache_unmap(&old);
	return 0;
}

uint64_t xbzrle_cache_size(const struct xbzrle_cache *c)
{
	return c->bytes;
}

void xbzrle_cache_free(struct xbzrle_cache *c)
{
	if (!c)
		return;
	cache_unmap(c);
	free(c);
}

static inline uint64_t cache_index(const struct xbzrle_cache *c, uint64_t key)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ull;

	h ^= h >> 32;
	/* fast range reduction: any slot count, no division */
	return (uint64_t)(((unsigned __int128)h * c->nslots) >> 64);
}

static inline bool slot_trylock(struct xbzrle_slot *s)
{
	uint32_t free_val = 0;

	if (__atomic_load_n(&s->lock, __ATOMIC_RELAXED))
		return false;
	return __atomic_compare_exchange_n(&s->lock, &free_val, 1, false, __ATOMIC_ACQUIRE,
					   __ATOMIC_RELAXED);
}

static inline void slot_unlock(struct xbzrle_slot *s)
{
	__atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

void xbzrle_cache_drop(struct xbzrle_cache *c, uint64_t key)
{
	struct xbzrle_slot *s = &c->slots[cache_index(c, key)];
	unsigned int spins = 0;

	/*
	 * Wait for the slot, however it is held: an encoder holding it works
	 * on another key and leaves its own there, but another channel's drop
	 * of another key leaves ours valid -- and a drop that gave up then
	 * would leave the cache a version the destination no longer has (its
	 * page went out zero or under another codec). A holder keeps a slot
	 * for one page at most, so the wait is short.
	 */
	while (!slot_trylock(s))
		if (++spins % 64 == 0)
			sched_yield();
	if (s->valid && s->key == key)
		s->valid = 0;
	slot_unlock(s);
}

/* ---- encoder ----------------------------------------------------------- */

static int xb_check_page(uint32_t ps, struct tern_error *err)
{
	if (ps > XBZRLE_PAGE_MAX)
		return tern_error_set(err, -EINVAL, "xbzrle: page size %u over %u", ps,
				      XBZRLE_PAGE_MAX);
	return 0;
}

static int xb_enc_init(struct codec_enc *e, struct tern_error *err)
{
	int r = xb_check_page(e->cfg.page_size, err);

	if (r < 0)
		return r;
	if (!e->cfg.cache || e->cfg.cache->page_size != e->cfg.page_size)
		return tern_error_set(err, -EINVAL,
				      "xbzrle: encoder needs a cache of %u-byte pages",
				      e->cfg.page_size);
	e->state = e->cfg.cache; /* shared; the session owns it */
	return 0;
}

static ssize_t xb_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
			 struct iovec *iov, uint32_t *ret_niov, struct tern_error *err)
{
	struct xbzrle_cache *c = e->state;
	size_t ps = e->cfg.page_size, dmax = ps - ps / 8, o = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint8_t *rec = e->buf + o;
		struct xbzrle_slot *s = &c->slots[cache_index(c, pages[i].key)];
		uint8_t *cached = c->pages + (size_t)(s - c->slots) * ps;
		bool locked = slot_trylock(s), hit = locked && s->valid && s->key == pages[i].key;
		int dlen = -ENOSPC;

		if (i + 1 < n) {
			/* the next page's slot and cached copy sit at random
			 * places: start their first lines on the way now */
			const struct xbzrle_slot *ns = &c->slots[cache_index(c, pages[i + 1].key)];

			__builtin_prefetch(ns);
			__builtin_prefetch(c->pages + (size_t)(ns - c->slots) * ps);
			__builtin_prefetch(c->pages + (size_t)(ns - c->slots) * ps + 64);
			__builtin_prefetch(pages[i + 1].src);
			__builtin_prefetch(pages[i + 1].src + 64);
		}
		/* busy (another channel's page there: never wait) counts as a miss */
		e->st.cache_hits += hit;
		e->st.cache_misses += !hit;
		if (hit) /* the cache takes the version the delta makes, byte for byte */
			dlen = xbzrle_encode_update(cached, pages[i].src, ps, rec + 3, dmax);
		if (dlen == 0) {
			rec[0] = XBZRLE_REC_UNCHANGED;
			o += 1;
		} else if (dlen > 0) {
			rec[0] = XBZRLE_REC_DELTA;
			put_be16(rec + 1, (uint16_t)dlen);
			o += 3 + (size_t)dlen;
			e->st.delta_bytes += (uint64_t)dlen;
		} else {
			/* miss, overflow or busy: copy once, and cache that very
			 * copy (an overflow left the cached page half updated) */
			e->st.overflows += hit;
			rec[0] = XBZRLE_REC_RAW;
			memcpy(rec + 1, pages[i].src, ps);
			o += 1 + ps;
			if (locked) {
				/* from the payload, never guest RAM again */
				guest_read_fence();
				memcpy(cached, rec + 1, ps);
				s->key = pages[i].key;
				s->valid = 1;
			}
		}
		if (locked)
			slot_unlock(s);
	}
	return (ssize_t)o;
}

/* ---- decoder ----------------------------------------------------------- */

static int xb_dec_init(struct codec_dec *d, struct tern_error *err)
{
	return xb_check_page(d->cfg.page_size, err);
}

static int xb_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		     uint32_t n, struct tern_error *err)
{
	size_t ps = d->cfg.page_size, o = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct tern_error derr = {0};
		size_t dlen;
		int r;

		if (o >= len)
			return tern_error_set(
			    err, -EPROTO, "xbzrle: payload of %zu bytes ends before page %u of %u",
			    len, i, n);
		switch (payload[o]) {
		case XBZRLE_REC_RAW:
			if (len - o - 1 < ps)
				return tern_error_set(
				    err, -EPROTO,
				    "xbzrle: page %u of %u: raw page truncated at %zu of %zu bytes",
				    i, n, len - o - 1, ps);
			memcpy(dst[i], payload + o + 1, ps);
			o += 1 + ps;
			break;
		case XBZRLE_REC_UNCHANGED:
			o += 1;
			break;
		case XBZRLE_REC_DELTA:
			if (len - o - 1 < 2)
				return tern_error_set(
				    err, -EPROTO, "xbzrle: page %u of %u: delta length truncated",
				    i, n);
			dlen = get_be16(payload + o + 1);
			if (dlen == 0 || dlen > len - o - 3)
				return tern_error_set(err, -EPROTO,
						      "xbzrle: page %u of %u: delta of %zu bytes, "
						      "%zu left in the payload",
						      i, n, dlen, len - o - 3);
			r = xbzrle_decode(payload + o + 3, dlen, dst[i], ps, &derr);
			if (r < 0)
				return tern_error_set(
				    err, r, "xbzrle: page %u of %u: %s", i, n,
				    derr.msg + (strncmp(derr.msg, "xbzrle: ", 8) ? 0 : 8));
			o += 3 + dlen;
			break;
		default:
			return tern_error_set(
			    err, -EPROTO,
			    "xbzrle: page %u of %u: unknown record kind %u at payload byte %zu", i,
			    n, payload[o], o);
		}
	}
	if (o != len)
		return tern_error_set(err, -EPROTO,
				      "xbzrle: %zu bytes left in the payload after its %u pages",
				      len - o, n);
	return 0;
}

static uint64_t xb_payload_max(uint32_t page_size, uint32_t n)
{
	return (uint64_t)n * (1 + (uint64_t)page_size);
}

const struct codec_ops codec_xbzrle_ops = {
    .id = TERN_CODEC_XBZRLE,
    .enc_init = xb_enc_init,
    .encode = xb_encode,
    .dec_init = xb_dec_init,
    .decode = xb_decode,
    .payload_max = xb_payload_max,
};
