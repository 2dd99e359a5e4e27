/* SPDX-License-Identifier: MIT */
/*
 * rdma_regcache: chunks of guest RAM registered on first use, released in
 * LRU order once no work request in flight names them (rdma_regcache.h).
 *
 * Every chunk of every region has a slot, allocated at new(): a lookup is
 * region->slots[off >> shift], with no search, lock or allocation on the
 * per-packet path. Registered slots sit on one intrusive LRU list (most
 * recently used first). A slot is registered exactly when it is on the list.
 */
#include <stdlib.h>

#include "rdma_regcache.h"

#define CHUNK_SHIFT_MIN 12 /* a page: nothing smaller can be registered usefully */
#define CHUNK_SHIFT_MAX 40 /* keeps 4 << shift and the slot counts far from overflow */
#define LIMIT_MIN_CHUNKS 4 /* a 2 MiB packet may straddle three chunks, plus one */

struct chunk_slot {
	/* on the LRU list exactly when registered; NULL otherwise */
	struct chunk_slot *prev, *next;
	void *handle;	   /* from reg(), for dereg() */
	uint64_t last_seq; /* the highest work request sequence number using it */
	uint32_t key;
	uint32_t region;
};

struct cache_region {
	uint8_t *host;
	uint64_t size;
	uint64_t nchunks;
	struct chunk_slot *slots; /* nchunks of them, in the cache's one array */
};

struct rdma_regcache {
	const struct rdma_reg_ops *ops;
	void *opaque;
	uint32_t chunk_shift;
	uint64_t limit;
	/* every work request with seq <= completed is done, if any_completed */
	bool any_completed;
	uint64_t completed;
	struct chunk_slot lru; /* sentinel: lru.next is the most recent */
	struct rdma_regcache_stats st;
	uint32_t nregions;
	struct chunk_slot *slots;
	struct cache_region regions[];
};

static void lru_unlink(struct chunk_slot *s)
{
	s->prev->next = s->next;
	s->next->prev = s->prev;
	s->prev = NULL;
	s->next = NULL;
}

static void lru_push_front(struct rdma_regcache *c, struct chunk_slot *s)
{
	s->prev = &c->lru;
	s->next = c->lru.next;
	c->lru.next->prev = s;
	c->lru.next = s;
}

static bool slot_registered(const struct chunk_slot *s)
{
	return s->next != NULL;
}

static uint64_t slot_chunk(const struct rdma_regcache *c, const struct chunk_slot *s)
{
	return (uint64_t)(s - c->regions[s->region].slots);
}

/* The chunk's length: the chunk size, or what is left of a region's end. */
static uint64_t slot_len(const struct rdma_regcache *c, const struct chunk_slot *s)
{
	const struct cache_region *r = &c->regions[s->region];
	uint64_t start = slot_chunk(c, s) << c->chunk_shift;

	return MIN(r->size - start, (uint64_t)1 << c->chunk_shift);
}

static void slot_release(struct rdma_regcache *c, struct chunk_slot *s)
{
	lru_unlink(s);
	c->ops->dereg(c->opaque, s->region, slot_chunk(c, s), s->handle);
	c->st.pinned_bytes -= slot_len(c, s);
	s->handle = NULL;
}

static bool slot_idle(const struct rdma_regcache *c, const struct chunk_slot *s)
{
	return c->any_completed && s->last_seq <= c->completed;
}

/*
 * Release least recently used idle chunks until @len more bytes fit under
 * the limit. The walk starts at the oldest: when work request numbers grow
 * with use, as they do, the first slot is idle or none is, so this is O(1)
 * per eviction in practice.
 */
static int make_room(struct rdma_regcache *c, uint64_t len)
{
	struct chunk_slot *s = c->lru.prev;

	while (c->st.pinned_bytes + len > c->limit) {
		while (s != &c->lru && !slot_idle(c, s))
			s = s->prev;
		if (s == &c->lru)
			return -EBUSY;
		struct chunk_slot *victim = s;

		s = s->prev;
		slot_release(c, victim);
		c->st.evictions++;
	}
	return 0;
}

int rdma_regcache_new(const struct tern_ram_region *regions, uint32_t nregions,
		      uint32_t chunk_shift, uint64_t limit, const struct rdma_reg_ops *ops,
		      void *opaque, struct rdma_regcache **ret, struct tern_error *err)
{
	struct rdma_regcache *c;
	uint64_t total = 0;

	if (chunk_shift < CHUNK_SHIFT_MIN || chunk_shift > CHUNK_SHIFT_MAX)
		return tern_error_set(err, -EINVAL, "regcache: chunk shift %u outside %u..%u",
				      chunk_shift, CHUNK_SHIFT_MIN, CHUNK_SHIFT_MAX);
	if (!ops || !ops->reg || !ops->dereg)
		return tern_error_set(err, -EINVAL, "regcache: no reg/dereg ops");
	for (uint32_t i = 0; i < nregions; i++) {
		if (!regions[i].host && regions[i].size)
			return tern_error_set(err, -EINVAL, "regcache: region %u has no address",
					      i);
		total += DIV_ROUND_UP(regions[i].size, (uint64_t)1 << chunk_shift);
	}
	if (total > SIZE_MAX / sizeof(struct chunk_slot))
		return tern_error_set(err, -ENOMEM, "regcache: %" PRIu64 " chunks", total);

	c = calloc(1, sizeof(*c) + (size_t)nregions * sizeof(c->regions[0]));
	if (!c)
		return tern_error_set(err, -ENOMEM, "regcache: out of memory");
	c->slots = calloc(total ? total : 1, sizeof(*c->slots));
	if (!c->slots) {
		free(c);
		return tern_error_set(err, -ENOMEM,
				      "regcache: out of memory for %" PRIu64 " chunk slots", total);
	}
	c->ops = ops;
	c->opaque = opaque;
	c->chunk_shift = chunk_shift;
	c->limit = MAX(limit, (uint64_t)LIMIT_MIN_CHUNKS << chunk_shift);
	c->lru.prev = &c->lru;
	c->lru.next = &c->lru;
	c->nregions = nregions;

	struct chunk_slot *next = c->slots;

	for (uint32_t i = 0; i < nregions; i++) {
		struct cache_region *r = &c->regions[i];

		r->host = regions[i].host;
		r->size = regions[i].size;
		r->nchunks = DIV_ROUND_UP(r->size, (uint64_t)1 << chunk_shift);
		r->slots = next;
		for (uint64_t k = 0; k < r->nchunks; k++)
			next[k].region = i;
		next += r->nchunks;
	}
	*ret = c;
	return 0;
}

static int chunk_register(struct rdma_regcache *c, struct chunk_slot *s, struct tern_error *err)
{
	const struct cache_region *r = &c->regions[s->region];
	uint64_t chunk = slot_chunk(c, s);
	uint64_t len = slot_len(c, s);
	uint32_t key;
	void *handle;
	uint64_t t0;
	int rc;

	rc = make_room(c, len);
	if (rc)
		return rc; /* flow control, not a failure: @err is left alone */

	t0 = tern_now_ns();
	rc = c->ops->reg(c->opaque, s->region, chunk, r->host + (chunk << c->chunk_shift), len,
			 &key, &handle, err);
	c->st.reg_ns += tern_now_ns() - t0;
	if (rc)
		return rc < 0 ? rc : -EIO;

	s->key = key;
	s->handle = handle;
	lru_push_front(c, s);
	c->st.pinned_bytes += len;
	c->st.pinned_peak = MAX(c->st.pinned_peak, c->st.pinned_bytes);
	c->st.chunks_registered++;
	c->st.misses++;
	return 0;
}

int rdma_regcache_get(struct rdma_regcache *c, uint32_t region, uint64_t off, uint64_t len,
		      uint64_t seq, uint32_t *ret_key, struct tern_error *err)
{
	const struct cache_region *r;
	struct chunk_slot *s;
	uint64_t chunk;
	int rc;

	if (UNLIKELY(region >= c->nregions))
		return tern_error_set(err, -EINVAL, "regcache: region %u of %u", region,
				      c->nregions);
	r = &c->regions[region];
	if (UNLIKELY(!len || off >= r->size || len > r->size - off))
		return tern_error_set(err, -EINVAL,
				      "regcache: region %u: [%#" PRIx64 ", +%#" PRIx64
				      ") outside its %#" PRIx64 " bytes",
				      region, off, len, r->size);
	chunk = off >> c->chunk_shift;
	if (UNLIKELY((off + len - 1) >> c->chunk_shift != chunk))
		return tern_error_set(err, -EINVAL,
				      "regcache: region %u: [%#" PRIx64 ", +%#" PRIx64
				      ") crosses a %#" PRIx64 "-byte chunk boundary",
				      region, off, len, (uint64_t)1 << c->chunk_shift);

	s = &r->slots[chunk];
	if (LIKELY(slot_registered(s))) {
		lru_unlink(s);
		lru_push_front(c, s);
		c->st.hits++;
	} else {
		s->last_seq = 0;
		rc = chunk_register(c, s, err);
		if (rc)
			return rc;
	}
	s->last_seq = MAX(s->last_seq, seq);
	*ret_key = s->key;
	return 0;
}

void rdma_regcache_completed(struct rdma_regcache *c, uint64_t seq)
{
	if (!c->any_completed || seq > c->completed) {
		c->completed = seq;
		c->any_completed = true;
	}
}

void rdma_regcache_clear(struct rdma_regcache *c)
{
	while (c->lru.next != &c->lru)
		slot_release(c, c->lru.next);
}

void rdma_regcache_stats(const struct rdma_regcache *c, struct rdma_regcache_stats *st)
{
	*st = c->st;
}

void rdma_regcache_free(struct rdma_regcache *c)
{
	if (!c)
		return;
	rdma_regcache_clear(c);
	free(c->slots);
	free(c);
}
