/* SPDX-License-Identifier: MIT */
/*
 * verify-ram, kept up to date. Each side hashes its RAM's regions
 * (digest.c) on a background thread while the migration runs, and at the
 * end -- guest paused -- hashes again only the regions written since their
 * hash. The result is the digest digest.c defines, the one a from-scratch
 * pass over the same memory gives: a region's hash is reused only when it
 * is proven that nothing was written there since it was taken.
 *
 * The proof is a generation counter per region; a hash records the
 * generation it was taken at, and stands iff the counter has not moved.
 * What moves the counter differs per side.
 *
 * Destination. A receive worker bumps the counter of every region a packet
 * touched (release), after the packet's pages landed -- normal pages read
 * or decoded, zero pages cleared (multifd's mf_block_note_written()). The
 * digest thread reads the counter (acquire) before it hashes. For a write W
 * into region r and its bump B:
 *   1. B comes after W on the worker (over rdma the NIC wrote W before the
 *      worker read the packet's header).
 *   2. If the hash's read of the counter saw B, W happened before the hash
 *      read the region: the hash has W's bytes, or newer ones whose own
 *      bumps it saw too (or else see 3).
 *   3. If it did not see B, the counter ends past the hash's generation,
 *      and the hash is stale.
 * The final digest runs after every worker ended, so every bump is in. Until
 * round 1 has landed, a region nothing was written to is left alone:
 * reading memory never touched maps the zero page there, just before round
 * 1 writes it.
 *
 * Source. The guest writes without a word; the dirty log tells, a sync
 * later. After each sync the migration thread bumps every region with a
 * page in the send maps. That catches every write made after a hash began,
 * provided the region was *armed* then: none of its pages reported by a sync
 * and not yet re-armed. Such a page can be written without a trace, and the
 * clear that re-arms it forgets the write (KVM manual protect: a write
 * between a sync and the clear of its chunk). The migration loses nothing
 * by it -- the page is read after the clear -- but a hash taken before the
 * write would. So the migration thread says when a region is armed,
 * armed[r] = gen[r], and the digest thread hashes only where armed == gen:
 *   1. Right after a sync, every region without a page in the send maps is
 *      armed: a reported page stays in its send map until its chunk was
 *      re-armed and it is queued (ram.c, src_round.c).
 *   2. During a round, the send loop takes each 64-page word off the send
 *      map and re-arms the word's chunk before it queues the word's first
 *      page; so with every batch, each region below the end of the batch's
 *      last word is armed (digest_track_passed()).
 *   3. A sync that reports a page of r bumps gen[r] after it fetched the
 *      log: a hash that began while r was armed, but after that fetch,
 *      still ends stale.
 * Once the guest is paused and the final sync is in, nothing writes: every
 * region may be hashed (digest_track_paused()), and the background carries
 * on with what the last round left while the last pages are sent.
 *
 * Who hashes. The worker that sent (source) or landed (destination) a packet
 * hashes, right after, each region the packet carried whole -- its bytes
 * are still in the cache, which halves what the digest costs -- under the
 * same rules as the background (digest_track_packet()); the background
 * thread takes what is left: regions written a few pages at a time, and
 * whatever a worker found not yet armed or taken (on the source, a region
 * queued whole is the worker's: pending[r], digest_track_queued(); else the
 * background, which runs ahead of the queues, would take nearly all of
 * them, cold). A region is hashed by
 * whoever claims it (claim[r], a compare-and-swap), so a worker and the
 * background never write the same hash; the final digest takes every claim
 * and keeps them. A source worker does not hash once the guest is paused:
 * that would be downtime.
 *
 * Zero pages need no case of their own: a page never sent is zero on the
 * destination and was zero on the source, and both sides hash what memory
 * holds.
 *
 * The source's proof rests on the dirty log from the moment a region is
 * re-armed: a provider that lost a write would lose it for the digest as
 * for the migration. Everything from the send maps on -- the rounds, the
 * workers, the wire, the receive path, placement, codecs -- stays checked.
 *
 * Cost: the background hashes each region once it may, and again each time
 * it is written after that: a region the guest keeps dirtying is hashed
 * once a round, as it is sent once a round. A pass over the counters costs
 * about as much as hashing a few regions (2 GiB: 32768 counters): so the
 * thread goes again at once only after a pass that found a backlog
 * (DIGEST_BACKLOG), or when woken; otherwise it pauses DIGEST_SCAN_MS, or
 * 20 times what the pass cost besides its hashing if that is longer, and
 * the next pass finds a batch. While the workers hash everything (an idle
 * guest's bulk round) its passes find nothing: each pass in a row that
 * found nothing doubles the pause, up to DIGEST_SCAN_MS << DIGEST_IDLE_SHIFT
 * (before, 5 % of a core went on scanning counters for nothing); a wake-up
 * (digest_track_wait(), the pause, round 1) still runs a pass at once.
 */
#include <pthread.h>
#include <stdlib.h>

#include "core_priv.h"

#define DIGEST_SCAN_MS 5
#define DIGEST_IDLE_SHIFT 4
#define DIGEST_BACKLOG (16ull << 20)

struct track_block {
	uint64_t nregions;
	/* source: the migration thread's; destination: bumped by the receive
	 * workers. Atomic. Starts at 1: 0 is no hash's generation. */
	uint32_t *gen;
	/* source: gen when the migration thread last knew the region armed;
	 * written by the migration thread, read by the digest thread: atomic */
	uint32_t *armed;
	/* source: queued whole to a worker, which will hash it (set by the
	 * migration thread, cleared by the worker; atomic): the background
	 * leaves it alone until the guest is paused */
	uint8_t *pending;
	/* Each hash's generation (0: none; atomic), and the hashes: written by
	 * whoever holds the region's claim (atomic, 0 or 1), read by
	 * digest_track_final() once it took every claim. */
	uint32_t *hgen;
	uint8_t *claim;
	struct ram_digest *hash;
	/* source, migration thread: the first region not yet armed this round */
	uint64_t arm_next;
};

struct digest_track {
	/* immutable after digest_track_new() */
	struct tern_session *s;
	bool source;
	unsigned int shift; /* a region is 1 << shift bytes */
	uint64_t region_pages;
	uint32_t nblocks;
	struct track_block blk[MAX_BLOCKS];
	struct ram_digest *hashes[MAX_BLOCKS]; /* each block's ->hash */
	uint64_t *items;		       /* room for every region, for the final */
	pthread_t thread;
	bool thread_started;
	/* protected by ->lock; ->quit also read with atomic loads; ->cond
	 * wakes the thread (kick, quit) and digest_track_wait() (a pass ended) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool quit, kick;
	uint64_t passes;    /* passes begun */
	uint64_t idle_pass; /* the number of the last pass that found nothing */
	/* atomic: source: the guest is paused; destination: round 1 landed */
	bool paused, round1;
	/* figures: atomic */
	struct digest_track_stats st;
};

static uint64_t region_len(const struct digest_track *d, uint32_t bi, uint64_t r)
{
	uint64_t off = r << d->shift;

	return MIN(1ull << d->shift, d->s->blocks[bi]->size - off);
}

static bool hashed_at(const struct track_block *tb, uint64_t r, uint32_t g)
{
	return __atomic_load_n(&tb->hgen[r], __ATOMIC_ACQUIRE) == g;
}

/*
 * Hash region @r of block @bi as of generation @g (read, acquire, before
 * this call, and found hashable), unless someone else holds it or already
 * hashed it at @g. Returns the bytes hashed.
 */
static uint64_t hash_claimed(struct digest_track *d, uint32_t bi, uint64_t r, uint32_t g)
{
	struct track_block *tb = &d->blk[bi];
	uint8_t free_claim = 0;
	struct ram_digest h;

	if (!__atomic_compare_exchange_n(&tb->claim[r], &free_claim, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 0;
	if (hashed_at(tb, r, g)) {
		__atomic_store_n(&tb->claim[r], 0, __ATOMIC_RELEASE);
		return 0;
	}
	digest_region_hash(d->s->blocks[bi], d->shift, r, &h);
	tb->hash[r] = h;
	__atomic_store_n(&tb->hgen[r], g, __ATOMIC_RELEASE);
	__atomic_store_n(&tb->claim[r], 0, __ATOMIC_RELEASE);
	return region_len(d, bi, r);
}

/* Whether region @r of @tb may be hashed at generation @g now (the rules
 * at the top; the caller read @g with acquire order). */
static bool hashable(const struct digest_track *d, const struct track_block *tb, uint64_t r,
		     uint32_t g)
{
	if (d->source)
		return __atomic_load_n(&tb->armed[r], __ATOMIC_ACQUIRE) == g;
	return g != 1; /* written to: the packet that landed there bumped it */
}

/*
 * One pass: hash every region whose hash is stale and that may be hashed
 * (source: armed, or the guest paused; destination: written to, or round 1
 * landed). Returns the bytes it hashed; *@ret_hash_ns: the time that took.
 */
static uint64_t track_scan(struct digest_track *d, uint64_t *ret_hash_ns)
{
	bool paused = __atomic_load_n(&d->paused, __ATOMIC_ACQUIRE);
	bool round1 = __atomic_load_n(&d->round1, __ATOMIC_ACQUIRE);
	uint64_t hashed = 0, hash_ns = 0, r, t0;
	uint32_t bi;

	for (bi = 0; bi < d->nblocks; bi++) {
		struct track_block *tb = &d->blk[bi];

		for (r = 0; r < tb->nregions; r++) {
			uint32_t g = __atomic_load_n(&tb->gen[r], __ATOMIC_ACQUIRE);

			if (hashed_at(tb, r, g))
				continue;
			if (d->source && !paused &&
			    (!hashable(d, tb, r, g) ||
			     __atomic_load_n(&tb->pending[r], __ATOMIC_RELAXED)))
				continue;
			if (!d->source && !round1 && g == 1)
				continue;
			if (__atomic_load_n(&d->quit, __ATOMIC_RELAXED))
				break;
			t0 = tern_now_ns();
			hashed += hash_claimed(d, bi, r, g);
			hash_ns += tern_now_ns() - t0;
		}
	}
	__atomic_fetch_add(&d->st.background_bytes, hashed, __ATOMIC_RELAXED);
	*ret_hash_ns = hash_ns;
	return hashed;
}

static void *track_thread(void *arg)
{
	struct digest_track *d = arg;
	CPU_THREAD(cpu, &d->s->cpu, TERN_CPU_DIGEST, "tern-digest/bg");
	unsigned int idle = 0; /* passes in a row that found nothing */

	pthread_mutex_lock(&d->lock);
	while (!d->quit) {
		uint64_t t0, wait_ms, hash_ns, bytes, pass = ++d->passes;
		struct timespec ts;

		pthread_mutex_unlock(&d->lock);
		t0 = tern_now_ns();
		bytes = track_scan(d, &hash_ns);
		idle = bytes ? 0 : MIN(idle + 1, DIGEST_IDLE_SHIFT);
		wait_ms = MAX((uint64_t)DIGEST_SCAN_MS << idle,
			      20 * (tern_now_ns() - t0 - hash_ns) / 1000000);
		pthread_mutex_lock(&d->lock);
		if (!bytes) {
			d->idle_pass = pass;
			pthread_cond_broadcast(&d->cond);
		}
		/* a pass that found a backlog goes again at once */
		if (bytes < DIGEST_BACKLOG && !d->quit && !d->kick) {
			ts = tern_deadline_ms(wait_ms);
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
		}
		d->kick = false;
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static void track_kick(struct digest_track *d)
{
	pthread_mutex_lock(&d->lock);
	d->kick = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void track_stop(struct digest_track *d)
{
	if (!d->thread_started)
		return;
	pthread_mutex_lock(&d->lock);
	__atomic_store_n(&d->quit, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	d->thread_started = false;
}

void digest_track_stop_background(struct digest_track *d)
{
	if (d)
		track_stop(d);
}

void digest_track_free(struct digest_track *d)
{
	uint32_t bi;

	if (!d)
		return;
	track_stop(d);
	for (bi = 0; bi < d->nblocks; bi++) {
		struct track_block *tb = &d->blk[bi];

		if (!d->source && d->s->mf_blocks[bi].gen == tb->gen)
			d->s->mf_blocks[bi].gen = NULL;
		free(tb->gen);
		free(tb->armed);
		free(tb->pending);
		free(tb->hgen);
		free(tb->claim);
		free(tb->hash);
	}
	free(d->items);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int digest_track_new(struct tern_session *s, bool source, struct digest_track **ret_track,
		     struct tern_error *err)
{
	struct digest_track *d;
	uint64_t total = 0, r;
	uint32_t bi;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return tern_error_set(err, -ENOMEM, "verify-ram: out of memory");
	d->s = s;
	d->source = source;
	d->shift = digest_region_shift(s->page_size);
	d->region_pages = (1ull << d->shift) / s->page_size;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	for (bi = 0; bi < s->nblocks; bi++) {
		struct track_block *tb = &d->blk[bi];
		uint64_t n = digest_regions(s->blocks[bi], d->shift);

		d->nblocks = bi + 1;
		tb->nregions = n;
		tb->gen = malloc(n * sizeof(*tb->gen));
		tb->armed = source ? calloc(n, sizeof(*tb->armed)) : NULL;
		tb->pending = source ? calloc(n, sizeof(*tb->pending)) : NULL;
		tb->hgen = calloc(n, sizeof(*tb->hgen));
		tb->claim = calloc(n, sizeof(*tb->claim));
		tb->hash = calloc(n, sizeof(*tb->hash));
		if (!tb->gen || (source && (!tb->armed || !tb->pending)) || !tb->hgen ||
		    !tb->claim || !tb->hash) {
			digest_track_free(d);
			return tern_error_set(err, -ENOMEM, "verify-ram: out of memory");
		}
		for (r = 0; r < n; r++)
			tb->gen[r] = 1;
		d->hashes[bi] = tb->hash;
		total += n;
	}
	d->items = calloc(total + 1, sizeof(*d->items));
	if (!d->items) {
		digest_track_free(d);
		return tern_error_set(err, -ENOMEM, "verify-ram: out of memory");
	}
	if (!source) {
		for (bi = 0; bi < d->nblocks; bi++) {
			s->mf_blocks[bi].gen = d->blk[bi].gen;
			s->mf_blocks[bi].gen_shift = d->shift;
		}
	}
	ret = -pthread_create(&d->thread, NULL, track_thread, d);
	if (ret) {
		digest_track_free(d);
		return tern_error_set(err, ret, "verify-ram: starting the digest thread: %s",
				      strerror(-ret));
	}
	d->thread_started = true;
	*ret_track = d;
	return 0;
}

static void arm(struct track_block *tb, uint64_t r)
{
	__atomic_store_n(&tb->armed[r], __atomic_load_n(&tb->gen[r], __ATOMIC_RELAXED),
			 __ATOMIC_RELEASE);
}

void digest_track_synced(struct digest_track *d)
{
	uint32_t bi;

	if (!d)
		return;
	for (bi = 0; bi < d->nblocks; bi++) {
		const struct tern_ram_block *b = d->s->blocks[bi];
		struct track_block *tb = &d->blk[bi];
		uint64_t r = 0, p, hit;

		tb->arm_next = 0;
		for (;;) {
			p = bitmap_find_next(b->send, b->npages, r * d->region_pages);
			hit = p < b->npages ? p / d->region_pages : tb->nregions;
			for (; r < hit; r++)
				arm(tb, r);
			if (r >= tb->nregions)
				break;
			/* a page to send: reported, or left from a round cut short
			 * (a batch of it that was never queued left it pending) */
			__atomic_store_n(&tb->gen[r], tb->gen[r] + 1, __ATOMIC_RELEASE);
			__atomic_store_n(&tb->pending[r], 0, __ATOMIC_RELAXED);
			r++;
		}
	}
}

void digest_track_passed(struct digest_track *d, uint32_t block, uint64_t page)
{
	const struct tern_ram_block *b;
	struct track_block *tb;
	uint64_t end, rend;

	if (!d)
		return;
	b = d->s->blocks[block];
	tb = &d->blk[block];
	end = MIN((page / 64 + 1) * 64, b->npages);
	/* regions wholly below @end; the block's last one may be short */
	rend = end == b->npages ? tb->nregions : end / d->region_pages;
	for (; tb->arm_next < rend; tb->arm_next++)
		arm(tb, tb->arm_next);
}

/*
 * The next region that pages[*@i..@n) carry whole -- a run of consecutive
 * pages from its first to its last -- into *@ret_r, and *@i past it; false
 * when there is none. Any input is safe (a worker's comes off the wire).
 */
static bool next_whole(const struct digest_track *d, uint32_t block, const uint64_t *pages,
		       uint32_t n, uint32_t *i, uint64_t *ret_r)
{
	const struct track_block *tb = &d->blk[block];
	uint64_t npages = d->s->blocks[block]->npages;
	uint32_t k;

	while (*i < n) {
		uint64_t p = pages[*i], r = p / d->region_pages, want;

		if (p >= npages || p % d->region_pages) {
			(*i)++;
			continue;
		}
		want = region_len(d, block, MIN(r, tb->nregions - 1)) / d->s->page_size;
		if (n - *i < want) {
			*i = n;
			return false;
		}
		for (k = 1; k < want && pages[*i + k] == p + k; k++)
			;
		*i += k;
		if (k == want) {
			*ret_r = r;
			return true;
		}
	}
	return false;
}

void digest_track_queued(struct digest_track *d, uint32_t block, const uint64_t *pages, uint32_t n)
{
	uint32_t i = 0;
	uint64_t r;

	if (!d || !d->source || block >= d->nblocks)
		return;
	while (next_whole(d, block, pages, n, &i, &r))
		__atomic_store_n(&d->blk[block].pending[r], 1, __ATOMIC_RELAXED);
}

void digest_track_packet(struct digest_track *d, uint32_t block, const uint64_t *pages, uint32_t n)
{
	struct track_block *tb;
	uint64_t bytes = 0, r;
	bool paused;
	uint32_t i = 0, g;

	if (!d || block >= d->nblocks)
		return;
	tb = &d->blk[block];
	paused = d->source && __atomic_load_n(&d->paused, __ATOMIC_ACQUIRE);
	while (next_whole(d, block, pages, n, &i, &r)) {
		if (d->source)
			__atomic_store_n(&tb->pending[r], 0, __ATOMIC_RELAXED);
		if (paused)
			continue;
		g = __atomic_load_n(&tb->gen[r], __ATOMIC_ACQUIRE);
		if (!hashed_at(tb, r, g) && hashable(d, tb, r, g))
			bytes += hash_claimed(d, block, r, g);
	}
	if (bytes)
		__atomic_fetch_add(&d->st.worker_bytes, bytes, __ATOMIC_RELAXED);
}

int digest_track_wait(struct digest_track *d, int timeout_ms)
{
	struct timespec ts = tern_deadline_ms((uint64_t)timeout_ms);
	uint64_t after;
	int ret = 0;

	if (!d || !d->thread_started)
		return 0;
	pthread_mutex_lock(&d->lock);
	/* a pass under way may have looked at a region before it was armed */
	after = d->passes;
	d->kick = true;
	pthread_cond_broadcast(&d->cond);
	while (d->idle_pass <= after && !ret)
		ret = pthread_cond_timedwait(&d->cond, &d->lock, &ts) ? -EAGAIN : 0;
	if (d->idle_pass > after)
		ret = 0;
	pthread_mutex_unlock(&d->lock);
	return ret;
}

void digest_track_paused(struct digest_track *d)
{
	if (!d)
		return;
	__atomic_store_n(&d->paused, true, __ATOMIC_RELEASE);
	track_kick(d);
}

void digest_track_round(struct digest_track *d, uint64_t round)
{
	if (!d || round != 1)
		return;
	__atomic_store_n(&d->round1, true, __ATOMIC_RELEASE);
	track_kick(d);
}

int digest_track_final(struct digest_track *d, struct ram_digest *ret_digest,
		       void (*tick)(struct tern_session *s), struct tern_error *err)
{
	uint64_t t0 = tern_now_ns(), n = 0, bytes = 0, r, k;
	struct ram_digest f;
	uint32_t bi;

	if (!d)
		return tern_error_set(err, -EINVAL, "verify-ram: no digest was kept");
	track_stop(d);
	for (bi = 0; bi < d->nblocks; bi++) {
		struct track_block *tb = &d->blk[bi];

		for (r = 0; r < tb->nregions; r++) {
			uint8_t free_claim = 0;

			/* ours from now on: a worker still at it ends in a few
			 * microseconds, and none starts again */
			while (!__atomic_compare_exchange_n(&tb->claim[r], &free_claim, 1, false,
							    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
				free_claim = 0;
			if (hashed_at(tb, r, __atomic_load_n(&tb->gen[r], __ATOMIC_ACQUIRE)))
				continue;
			d->items[n++] = DIGEST_ITEM(bi, r);
			bytes += region_len(d, bi, r);
		}
	}
	digest_hash_items(d->s, d->shift, d->items, n, d->hashes, tick);
	digest_fold_init(&f);
	for (k = 0, bi = 0; bi < d->nblocks; bi++) {
		struct track_block *tb = &d->blk[bi];

		for (r = 0; r < tb->nregions; r++) {
			if (k < n && d->items[k] == DIGEST_ITEM(bi, r)) {
				__atomic_store_n(&tb->hgen[r], tb->gen[r], __ATOMIC_RELAXED);
				k++;
			}
			digest_fold_region(&f, bi, r, &tb->hash[r]);
		}
		digest_fold_block_end(&f, d->s->blocks[bi]);
	}
	__atomic_store_n(&d->st.final_bytes, bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&d->st.final_ns, tern_now_ns() - t0, __ATOMIC_RELAXED);
	tern_log_msg(&d->s->log, 6,
		     "verify-ram: %" PRIu64 " regions (%" PRIu64
		     " KiB) hashed at the end in %" PRIu64 " us; %" PRIu64
		     " KiB by the workers, %" PRIu64 " KiB in the background",
		     n, bytes >> 10, (tern_now_ns() - t0) / 1000,
		     __atomic_load_n(&d->st.worker_bytes, __ATOMIC_RELAXED) >> 10,
		     __atomic_load_n(&d->st.background_bytes, __ATOMIC_RELAXED) >> 10);
	*ret_digest = f;
	return 0;
}

void digest_track_get_stats(const struct digest_track *d, struct digest_track_stats *ret_stats)
{
	*ret_stats = (struct digest_track_stats){0};
	if (!d)
		return;
	ret_stats->background_bytes = __atomic_load_n(&d->st.background_bytes, __ATOMIC_RELAXED);
	ret_stats->worker_bytes = __atomic_load_n(&d->st.worker_bytes, __ATOMIC_RELAXED);
	ret_stats->final_bytes = __atomic_load_n(&d->st.final_bytes, __ATOMIC_RELAXED);
	ret_stats->final_ns = __atomic_load_n(&d->st.final_ns, __ATOMIC_RELAXED);
}
