/* SPDX-License-Identifier: MIT */
/*
 * RAM blocks and their dirty bitmaps.
 *
 * Each block has three maps of one bit a page:
 *   dirty        set by the VMM's threads (tern_ram_mark_dirty), atomically;
 *   send         the migration thread's: what this round still has to send;
 *   clear_chunks one bit per 1 << clear-bitmap-shift pages: chunks a
 *                provider reported dirty and must re-arm before we read them.
 *
 * A sync asks every provider for its log (they call tern_dirty_report(),
 * which ORs into send and marks the chunks) and then drains the manual marks
 * into send with one atomic exchange per word. A write that races with the
 * drain lands in one round or the next, never in neither, because the VMM
 * marks after it writes and we read the page after we drained its bit.
 *
 * What a sync counts as newly dirtied (the guest's dirty rate): every page
 * the VMM marked since the last drain, and every page a provider reports,
 * except one that a manual-protect log reports again only because nobody
 * re-armed it: KVM keeps a page's bit set until KVM_CLEAR_DIRTY_LOG, so a
 * chunk the send loop has not reached since the last sync (the precopy loop
 * syncs twice in a row when it waits for an acknowledgement) repeats that
 * sync's pages. Such a page is in a stale chunk and still in send. A write
 * to it in between cannot be seen (the page is not write-protected), but it
 * needs no second send either.
 *
 * Lifetime. A block belongs to its session: tern.h has the VMM stop every
 * thread that may call tern_ram_mark_dirty() before it calls
 * tern_session_free(). A VMM that gets the order wrong must crash with a
 * message, not write into freed memory; but a liveness test on memory that
 * is freed already would itself be undefined. So the headers outlive their
 * session: tern_session_free() poisons each block's magic, frees its
 * bitmaps and parks the header in a small process-wide quarantine (the last
 * RAM_QUARANTINE headers freed; the oldest is freed for real when a newer
 * one comes in). A late call reads a header that is still allocated and
 * finds the poison. Past that many frees a stale handle is undefined again.
 *
 * A call that is already past the test when the free begins is the other
 * half of the race (the writer thread, marking in a loop). Debug
 * builds close it:
 *   1. a call adds one to the block's users word before it touches the
 *      bitmap and takes it off after;
 *   2. the free sets RAM_USERS_DEAD in that word (one atomic RMW: every call
 *      is ordered before or after it) and waits until the count is zero;
 *   3. a call ordered before it finishes its write before the bitmap goes;
 *      one ordered after it sees RAM_USERS_DEAD and aborts with the block's
 *      name, having touched nothing but the header.
 * That is two atomic operations a call, on a cache line every marking
 * thread shares, so NDEBUG builds keep only the poison test (a plain load
 * and a branch; -ESTALE back): there, a call racing the free itself is
 * still undefined, as the rules in tern.h say.
 *
 * The quarantine is the library's one piece of global state, because its
 * point is to outlive every session. It is bounded (about 350 bytes a
 * header) and reachable, so leak checkers do not count it.
 */
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "core_priv.h"

#define RAM_MAGIC_LIVE 0x7465726eu /* "tern" */
#define RAM_MAGIC_DEAD 0xdeadb10cu
#define RAM_USERS_DEAD 0x80000000u
#define RAM_QUARANTINE 1024

/*
 * A block as allocated: its lifetime words ahead of it. They are this
 * file's business only, so they stay out of struct tern_ram_block.
 */
struct ram_life {
	/* RAM_MAGIC_LIVE until tern_session_free() poisons it; atomic */
	uint32_t magic;
	/* debug builds: tern_ram_mark_dirty() calls in flight, | RAM_USERS_DEAD
	 * once the session frees the block; atomic */
	uint32_t users;
	struct tern_ram_block b;
};

static inline struct ram_life *ram_life(const struct tern_ram_block *b)
{
	return (struct ram_life *)((uintptr_t)b - offsetof(struct ram_life, b));
}

static struct {
	pthread_mutex_t lock;
	struct ram_life *ring[RAM_QUARANTINE];
	unsigned int next;
} ram_quarantine = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void ram_quarantine_put(struct ram_life *l)
{
	struct ram_life *old;

	pthread_mutex_lock(&ram_quarantine.lock);
	old = ram_quarantine.ring[ram_quarantine.next];
	ram_quarantine.ring[ram_quarantine.next] = l;
	ram_quarantine.next = (ram_quarantine.next + 1) % RAM_QUARANTINE;
	pthread_mutex_unlock(&ram_quarantine.lock);
	free(old);
}

#ifndef NDEBUG
/*
 * A handle used outside its session's life: say so and abort. The library
 * never prints otherwise; here there is no session left to log through, and
 * the process is about to die anyway (as assert() would). ->name is still
 * there: the header is in the quarantine.
 */
static void __attribute__((noreturn, cold))
ram_misuse(const struct tern_ram_block *b, const char *fn)
{
	if (__atomic_load_n(&ram_life(b)->magic, __ATOMIC_RELAXED) == RAM_MAGIC_DEAD)
		fprintf(stderr,
			"libtern: %s() on RAM block '%s' after tern_session_free(): stop every "
			"thread that may use the block before freeing its session\n",
			fn, b->name);
	else
		fprintf(stderr, "libtern: %s() on %p, which is not a registered RAM block\n", fn,
			(const void *)b);
	abort();
}
#endif

/* Whether @b is alive; debug builds abort on a dead one instead. */
static inline bool ram_check_live(const struct tern_ram_block *b, const char *fn)
{
	if (__builtin_expect(
		__atomic_load_n(&ram_life(b)->magic, __ATOMIC_RELAXED) == RAM_MAGIC_LIVE, 1))
		return true;
#ifndef NDEBUG
	ram_misuse(b, fn);
#else
	(void)fn;
	return false;
#endif
}

TERN_EXPORT int tern_ram_register(struct tern_session *s, const char *name, void *host,
				  uint64_t size, struct tern_ram_block **ret_block,
				  struct tern_error *err)
{
	struct tern_ram_block *b;
	struct ram_life *l;
	uint32_t i;

	if (s->started)
		return tern_error_set(err, -EBUSY,
				      "RAM block '%s': register before the migration starts",
				      name ? name : "");
	if (!name || !*name || strlen(name) > 255)
		return tern_error_set(err, -EINVAL, "RAM block name must be 1..255 bytes");
	if (!host || (uintptr_t)host % s->page_size)
		return tern_error_set(err, -EINVAL,
				      "RAM block '%s': host address %p not aligned "
				      "to the %u-byte page",
				      name, host, s->page_size);
	if (!size || size % s->page_size)
		return tern_error_set(err, -EINVAL,
				      "RAM block '%s': size %" PRIu64
				      " is not a non-zero multiple of %u",
				      name, size, s->page_size);
	for (i = 0; i < s->nblocks; i++)
		if (!strcmp(s->blocks[i]->name, name))
			return tern_error_set(err, -EEXIST, "RAM block '%s' is registered already",
					      name);
	if (s->nblocks == MAX_BLOCKS)
		return tern_error_set(err, -ENOSPC, "more than %u RAM blocks", MAX_BLOCKS);
	l = calloc(1, sizeof(*l));
	if (!l)
		return tern_error_set(err, -ENOMEM, "out of memory");
	l->magic = RAM_MAGIC_LIVE;
	b = &l->b;
	b->session = s;
	b->index = s->nblocks;
	strcpy(b->name, name);
	b->host = host;
	b->size = size;
	b->npages = size / s->page_size;
	b->dirty = bitmap_new(b->npages);
	if (!b->dirty) {
		free(l);
		return tern_error_set(err, -ENOMEM, "out of memory");
	}
	s->blocks[s->nblocks++] = b;
	if (ret_block)
		*ret_block = b;
	return 0;
}

static int ram_mark(struct tern_ram_block *b, uint64_t offset, uint64_t len)
{
	uint32_t page = b->session->page_size;
	uint64_t first, last;

	if (offset >= b->size || len > b->size - offset)
		return -ERANGE;
	if (!len)
		return 0;
	first = offset / page;
	last = (offset + len - 1) / page;
	if (first == last)
		bitmap_set_atomic(b->dirty, first);
	else
		bitmap_set_range_atomic(b->dirty, first, last - first + 1);
	return 0;
}

TERN_EXPORT int tern_ram_mark_dirty(struct tern_ram_block *b, uint64_t offset, uint64_t len)
{
#ifndef NDEBUG
	struct ram_life *l = ram_life(b);
	int ret;

	/* steps 1 and 3 at the top: count in, or find the block dead */
	if (__atomic_fetch_add(&l->users, 1, __ATOMIC_ACQUIRE) & RAM_USERS_DEAD)
		ram_misuse(b, __func__);
	ram_check_live(b, __func__);
	ret = ram_mark(b, offset, len);
	__atomic_fetch_sub(&l->users, 1, __ATOMIC_RELEASE);
	return ret;
#else
	if (!ram_check_live(b, __func__))
		return -ESTALE;
	return ram_mark(b, offset, len);
#endif
}

TERN_EXPORT const char *tern_ram_block_name(const struct tern_ram_block *b)
{
#ifndef NDEBUG
	ram_check_live(b, __func__);
#endif
	return b->name;
}

TERN_EXPORT uint64_t tern_ram_block_size(const struct tern_ram_block *b)
{
#ifndef NDEBUG
	ram_check_live(b, __func__);
#endif
	return b->size;
}

TERN_EXPORT int tern_dirty_source_add(struct tern_session *s,
				      const struct tern_dirty_source_ops *ops, void *opaque,
				      struct tern_error *err)
{
	if (s->started)
		return tern_error_set(err, -EBUSY, "dirty-log provider: add it before the start");
	if (!ops || !ops->sync)
		return tern_error_set(err, -EINVAL, "dirty-log provider: sync is required");
	if (s->nsources == MAX_DIRTY_SOURCES)
		return tern_error_set(err, -ENOSPC, "more than %u dirty-log providers",
				      MAX_DIRTY_SOURCES);
	s->sources[s->nsources].ops = ops;
	s->sources[s->nsources].opaque = opaque;
	s->sources[s->nsources].started = false;
	s->nsources++;
	return 0;
}

TERN_EXPORT int tern_dirty_report(struct tern_ram_block *b, uint64_t first_page,
				  const uint64_t *bitmap, uint64_t npages)
{
	struct tern_session *s;
	unsigned int shift;
	uint64_t i, w;

	if (!ram_check_live(b, __func__))
		return -ESTALE;
	s = b->session;
	shift = (unsigned int)params_get(&s->params, PARAM_CLEAR_BITMAP_SHIFT);
	if (first_page > b->npages || npages > b->npages - first_page)
		return -ERANGE;
	if (!b->send)
		return -EINVAL; /* only from a provider's sync during a migration */
	for (w = 0; w < BITMAP_WORDS(npages); w++) {
		uint64_t word = bitmap[w];

		if (w == npages / 64)
			word &= (npages % 64) ? ~0ull >> (64 - npages % 64) : 0;
		while (word) {
			i = first_page + w * 64 + (uint64_t)__builtin_ctzll(word);
			word &= word - 1;
			if (!bitmap_test(b->send, i) || !bitmap_test(b->stale_chunks, i >> shift))
				s->sync_reported++;
			bitmap_set(b->send, i);
			bitmap_set(b->clear_chunks, i >> shift);
		}
	}
	return 0;
}

static void advise_huge(uint8_t *host, uint64_t size)
{
	const uint64_t huge = 2u << 20;
	uintptr_t start = ((uintptr_t)host + huge - 1) & ~(huge - 1);
	uintptr_t end = ((uintptr_t)host + size) & ~(huge - 1);

	/* A hint: fewer first-touch faults where pages land. Failure is fine
	 * (no THP, or memory that is not anonymous). */
	if (end > start)
		madvise((void *)start, end - start, MADV_HUGEPAGE);
}

static int ram_alloc_maps(struct tern_session *s, bool source, struct tern_error *err)
{
	unsigned int shift = (unsigned int)params_get(&s->params, PARAM_CLEAR_BITMAP_SHIFT);
	uint32_t i;

	for (i = 0; i < s->nblocks; i++) {
		struct tern_ram_block *b = s->blocks[i];

		if (source) {
			b->send = bitmap_new(b->npages);
			b->clear_chunks = bitmap_new((b->npages >> shift) + 1);
			/* a session may migrate again: the last attempt's goes */
			bitmap_free(b->stale_chunks);
			b->stale_chunks = bitmap_new((b->npages >> shift) + 1);
			if (!b->send || !b->clear_chunks || !b->stale_chunks)
				return tern_error_set(err, -ENOMEM, "out of memory for bitmaps");
		} else {
			b->touched = bitmap_new(b->npages);
			if (!b->touched)
				return tern_error_set(err, -ENOMEM, "out of memory for bitmaps");
			advise_huge(b->host, b->size);
		}
		s->mf_blocks[i] = (struct mf_block){
		    .host = b->host,
		    .size = b->size,
		    .touched = b->touched,
		};
	}
	return 0;
}

int ram_prepare_source(struct tern_session *s, struct tern_error *err)
{
	uint32_t i;
	int ret;

	ret = ram_alloc_maps(s, true, err);
	if (ret)
		return ret;
	/* The first round sends everything. */
	for (i = 0; i < s->nblocks; i++)
		bitmap_set_range(s->blocks[i]->send, 0, s->blocks[i]->npages);
	for (i = 0; i < s->nsources; i++) {
		struct dirty_source *ds = &s->sources[i];

		if (ds->ops->start) {
			ret = ds->ops->start(ds->opaque, err);
			if (ret) {
				tern_error_set(err, ret, "starting the dirty log failed");
				return tern_error_prefix(err, "dirty-log provider '%s'",
							 ds->ops->name ? ds->ops->name : "?");
			}
		}
		ds->started = true;
	}
	return 0;
}

int ram_prepare_dest(struct tern_session *s, struct tern_error *err)
{
	return ram_alloc_maps(s, false, err);
}

/*
 * One dirty-log sync. *@ret_new: pages the providers and the VMM's own marks
 * reported as written since the last sync -- including pages still waiting
 * to be sent, which were dirtied again all the same: that is the guest's
 * dirty rate, not the growth of what is pending. A provider's repeated
 * report of a page it was not re-armed for does not count (see the top).
 */
int ram_sync(struct tern_session *s, uint64_t *ret_new, struct tern_error *err)
{
	unsigned int shift = (unsigned int)params_get(&s->params, PARAM_CLEAR_BITMAP_SHIFT);
	uint64_t n = 0;
	uint32_t i;
	int ret;

	s->sync_reported = 0;
	for (i = 0; i < s->nblocks; i++) {
		struct tern_ram_block *b = s->blocks[i];
		uint64_t nchunks = (b->npages >> shift) + 1;

		memcpy(b->stale_chunks, b->clear_chunks, BITMAP_WORDS(nchunks) * sizeof(uint64_t));
	}
	for (i = 0; i < s->nsources; i++) {
		struct dirty_source *ds = &s->sources[i];

		ret = ds->ops->sync(ds->opaque, err);
		if (ret) {
			tern_error_set(err, ret, "dirty-log sync failed");
			return tern_error_prefix(err, "dirty-log provider '%s'",
						 ds->ops->name ? ds->ops->name : "?");
		}
	}
	*ret_new = s->sync_reported;
	for (i = 0; i < s->nblocks; i++) {
		struct tern_ram_block *b = s->blocks[i];

		*ret_new += bitmap_drain_atomic(b->send, b->dirty, b->npages);
		n += bitmap_count(b->send, b->npages);
	}
	__atomic_store_n(&s->remaining_pages, n, __ATOMIC_RELAXED);
	return 0;
}

uint64_t ram_pending_pages(struct tern_session *s)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < s->nblocks; i++)
		if (s->blocks[i]->send)
			n += bitmap_count(s->blocks[i]->send, s->blocks[i]->npages);
	return n;
}

void ram_sources_stop(struct tern_session *s)
{
	uint32_t i;

	for (i = 0; i < s->nsources; i++) {
		struct dirty_source *ds = &s->sources[i];

		if (ds->started && ds->ops->stop)
			ds->ops->stop(ds->opaque);
		ds->started = false;
	}
}

void ram_release(struct tern_session *s)
{
	uint32_t i;

	for (i = 0; i < s->nblocks; i++) {
		struct tern_ram_block *b = s->blocks[i];
		struct ram_life *l = ram_life(b);

		/* see "Lifetime" at the top */
		__atomic_store_n(&l->magic, RAM_MAGIC_DEAD, __ATOMIC_RELAXED);
		__atomic_fetch_or(&l->users, RAM_USERS_DEAD, __ATOMIC_ACQ_REL);
		while (__atomic_load_n(&l->users, __ATOMIC_ACQUIRE) & ~RAM_USERS_DEAD)
			sched_yield(); /* a mark in flight: a few instructions */
		bitmap_free(b->dirty);
		bitmap_free(b->send);
		bitmap_free(b->clear_chunks);
		bitmap_free(b->stale_chunks);
		bitmap_free(b->touched);
		b->dirty = b->send = b->clear_chunks = b->stale_chunks = b->touched = NULL;
		b->session = NULL;
		ram_quarantine_put(l);
	}
	s->nblocks = 0;
}
