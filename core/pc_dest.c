/* SPDX-License-Identifier: MIT */
/*
 * Postcopy on the destination: missing pages, the fault thread, atomic
 * placement and fault latency (see postcopy.h for the contract).
 *
 * Orders that keep it right without a lock on the per-page path:
 *
 *   placing   uffd_copy() first, then the missing bit cleared. So a clear
 *             bit means "present, or absent and zero": the fault thread
 *             answers a fault on such a page with a zero page, and the
 *             kernel refuses that (EEXIST) when the page is present.
 *   faulting  the request's time is stored in the table before the
 *             requested bit is set, and the missing bit is read again
 *             after: a placer that sees the requested bit finds the time,
 *             and an entry whose page was placed in the meantime is taken
 *             back by the fault thread itself.
 *
 * A page is requested once. A request lost with a broken connection is not
 * sent again by the fault thread: the requested-and-missing pages are what
 * recovery asks for again (pc_dest_rerequest()).
 *
 * Latency: from the fault read to the page placed, for requested pages, in
 * a log-linear histogram (8 steps per power of two: percentiles within
 * 12.5%) with the exact maximum.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "postcopy.h"
#include "uffd/uffd.h"

/* requests in flight, by page: more than enough for every vCPU's fault */
#define REQ_SLOTS 4096u
#define REQ_EMPTY 0ull
#define REQ_GONE UINT64_MAX
#define LAT_BUCKETS 320
#define FAULT_BATCH 64

struct req_slot {
	uint64_t key; /* (block << 48 | page) + 1; REQ_EMPTY, REQ_GONE */
	uint64_t t_ns;
};

struct pc_dest {
	struct pc_dest_cfg cfg;
	struct pc_dest_block *blocks;
	struct uffd *u;
	uint64_t **missing;   /* atomic: still to come */
	uint64_t **requested; /* set by the fault thread only */
	uint32_t registered;  /* blocks registered */
	pthread_t thread;
	bool started;
	struct req_slot req[REQ_SLOTS];
	/* atomics */
	uint64_t nmissing, missing_at_switch;
	uint64_t faults, zero_faults, nrequested, placed, duplicates;
	uint64_t lat[LAT_BUCKETS], lat_max_us, lat_count;
	bool failed;
	/* the wait for the last page */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static uint64_t req_key(uint32_t block, uint64_t page)
{
	return ((uint64_t)block << 48 | page) + 1;
}

static uint32_t req_hash(uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 40) & (REQ_SLOTS - 1);
}

/* Fault thread only: the one writer of new keys. */
static bool req_insert(struct pc_dest *pc, uint64_t key, uint64_t t_ns)
{
	uint32_t i, h = req_hash(key);

	for (i = 0; i < REQ_SLOTS; i++) {
		struct req_slot *sl = &pc->req[(h + i) & (REQ_SLOTS - 1)];
		uint64_t k = __atomic_load_n(&sl->key, __ATOMIC_ACQUIRE);

		if (k == REQ_EMPTY || k == REQ_GONE) {
			__atomic_store_n(&sl->t_ns, t_ns, __ATOMIC_RELAXED);
			__atomic_store_n(&sl->key, key, __ATOMIC_RELEASE);
			return true;
		}
	}
	return false; /* full: this one goes unmeasured */
}

/* Any thread: take @key's entry; its request time, or 0 when none. */
static uint64_t req_take(struct pc_dest *pc, uint64_t key)
{
	uint32_t i, h = req_hash(key);

	for (i = 0; i < REQ_SLOTS; i++) {
		struct req_slot *sl = &pc->req[(h + i) & (REQ_SLOTS - 1)];
		uint64_t k = __atomic_load_n(&sl->key, __ATOMIC_ACQUIRE);

		if (k == REQ_EMPTY)
			return 0;
		if (k == key) {
			uint64_t t = __atomic_load_n(&sl->t_ns, __ATOMIC_RELAXED);

			if (__atomic_compare_exchange_n(&sl->key, &k, REQ_GONE, false,
							__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
				return t;
			return 0; /* someone else took it */
		}
	}
	return 0;
}

static uint32_t lat_bucket(uint64_t us)
{
	uint32_t e;

	if (us < 16)
		return (uint32_t)us;
	e = 63u - (uint32_t)__builtin_clzll(us); /* >= 4 */
	return MIN(16u + (e - 4u) * 8u + (uint32_t)((us >> (e - 3u)) & 7u), LAT_BUCKETS - 1u);
}

/* The largest value that falls in bucket @b. */
static uint64_t lat_bucket_top(uint32_t b)
{
	uint32_t e, sub;

	if (b < 16)
		return b;
	e = (b - 16u) / 8u + 4u;
	sub = (b - 16u) % 8u;
	return ((8ull + sub + 1ull) << (e - 3u)) - 1ull;
}

static void lat_record(struct pc_dest *pc, uint64_t us)
{
	uint64_t max = __atomic_load_n(&pc->lat_max_us, __ATOMIC_RELAXED);

	__atomic_fetch_add(&pc->lat[lat_bucket(us)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pc->lat_count, 1, __ATOMIC_RELAXED);
	while (us > max && !__atomic_compare_exchange_n(&pc->lat_max_us, &max, us, true,
							__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static uint64_t lat_percentile(const uint64_t *hist, uint64_t count, uint32_t pct)
{
	uint64_t rank = (count * pct + 99) / 100, seen = 0;
	uint32_t b;

	for (b = 0; b < LAT_BUCKETS && rank; b++) {
		seen += hist[b];
		if (seen >= rank)
			return lat_bucket_top(b);
	}
	return 0;
}

int pc_dest_new(const struct pc_dest_cfg *cfg, struct pc_dest **ret, struct tern_error *err)
{
	struct pc_dest *pc;
	uint32_t i;
	int rc;

	*ret = NULL;
	if (!cfg->nblocks || !cfg->page_size || !cfg->ops || !cfg->ops->request)
		return tern_error_set(err, -EINVAL, "postcopy: no blocks, page size or ops");
	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
	pc->cfg = *cfg;
	pthread_mutex_init(&pc->lock, NULL);
	pthread_cond_init(&pc->cond, NULL);
	pc->blocks = calloc(cfg->nblocks, sizeof(*pc->blocks));
	pc->missing = calloc(cfg->nblocks, sizeof(*pc->missing));
	pc->requested = calloc(cfg->nblocks, sizeof(*pc->requested));
	if (!pc->blocks || !pc->missing || !pc->requested) {
		pc_dest_free(pc);
		return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
	}
	memcpy(pc->blocks, cfg->blocks, cfg->nblocks * sizeof(*pc->blocks));
	pc->cfg.blocks = pc->blocks;
	for (i = 0; i < cfg->nblocks; i++) {
		pc->missing[i] = bitmap_new(pc->blocks[i].npages);
		pc->requested[i] = bitmap_new(pc->blocks[i].npages);
		if (!pc->missing[i] || !pc->requested[i]) {
			pc_dest_free(pc);
			return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
		}
	}
	rc = uffd_open(&pc->u, err);
	if (rc) {
		pc_dest_free(pc);
		return tern_error_prefix(err, "postcopy");
	}
	if (cfg->page_size % uffd_page_size(pc->u)) {
		uint64_t hp = uffd_page_size(pc->u);

		pc_dest_free(pc);
		return tern_error_set(
		    err, -EINVAL, "postcopy: page size %u is not a multiple of the host's %" PRIu64,
		    cfg->page_size, hp);
	}
	*ret = pc;
	return 0;
}

/* Drop the stale copies of @b's missing pages, a run at a time. */
static int drop_stale(struct pc_dest *pc, uint32_t bi, struct tern_error *err)
{
	const struct pc_dest_block *b = &pc->blocks[bi];
	uint64_t ps = pc->cfg.page_size, p = 0, end;

	while ((p = bitmap_find_next(pc->missing[bi], b->npages, p)) < b->npages) {
		end = bitmap_find_next_zero(pc->missing[bi], b->npages, p + 1);
		if (madvise(b->host + p * ps, (end - p) * ps, MADV_DONTNEED))
			return tern_error_set(err, -errno,
					      "postcopy: block %u pages %" PRIu64 "..%" PRIu64
					      ": dropping the stale copies: %s",
					      bi, p, end - 1, strerror(errno));
		p = end;
	}
	return 0;
}

int pc_dest_arm(struct pc_dest *pc, const uint64_t *const *missing, struct tern_error *err)
{
	uint64_t total = 0;
	uint32_t i;
	int ret;

	for (i = 0; i < pc->cfg.nblocks; i++) {
		const struct pc_dest_block *b = &pc->blocks[i];

		ret = uffd_register(pc->u, b->host, b->npages * pc->cfg.page_size, err);
		if (ret)
			return tern_error_prefix(err, "postcopy: block %u", i);
		pc->registered = i + 1;
		memcpy(pc->missing[i], missing[i], BITMAP_WORDS(b->npages) * sizeof(uint64_t));
		/* bits past the block's end would be pages that do not exist */
		if (b->npages % 64)
			pc->missing[i][b->npages / 64] &= (1ull << (b->npages % 64)) - 1;
		ret = drop_stale(pc, i, err);
		if (ret)
			return ret;
		total += bitmap_count(pc->missing[i], b->npages);
	}
	__atomic_store_n(&pc->nmissing, total, __ATOMIC_RELEASE);
	pc->missing_at_switch = total;
	return 0;
}

static void pc_fail(struct pc_dest *pc, const struct tern_error *err)
{
	if (__atomic_exchange_n(&pc->failed, true, __ATOMIC_ACQ_REL))
		return;
	if (pc->cfg.ops->failed)
		pc->cfg.ops->failed(pc->cfg.opaque, err);
}

static int on_fault(struct pc_dest *pc, const struct uffd_fault *f, uint64_t now,
		    struct tern_error *err)
{
	uint64_t ps = pc->cfg.page_size, page, key, present;
	uint32_t bi;

	__atomic_fetch_add(&pc->faults, 1, __ATOMIC_RELAXED);
	for (bi = 0; bi < pc->cfg.nblocks; bi++) {
		const struct pc_dest_block *b = &pc->blocks[bi];

		if (f->addr >= (uintptr_t)b->host && f->addr < (uintptr_t)b->host + b->npages * ps)
			break;
	}
	if (bi == pc->cfg.nblocks)
		return tern_error_set(
		    err, -EFAULT, "postcopy: a fault at %#" PRIx64 " outside guest RAM", f->addr);
	page = (f->addr - (uintptr_t)pc->blocks[bi].host) / ps;
	if (!bitmap_test_atomic(pc->missing[bi], page)) {
		/* valid here and absent: a zero page (EEXIST: placed already) */
		__atomic_fetch_add(&pc->zero_faults, 1, __ATOMIC_RELAXED);
		return uffd_zero(pc->u, pc->blocks[bi].host + page * ps, ps, &present, err);
	}
	if (bitmap_test(pc->requested[bi], page))
		return 0; /* asked for already: its thread waits with the others */
	key = req_key(bi, page);
	req_insert(pc, key, now);
	bitmap_set_atomic(pc->requested[bi], page);
	if (!bitmap_test_atomic(pc->missing[bi], page)) {
		req_take(pc, key); /* placed meanwhile, and not seen as requested */
		return 0;
	}
	__atomic_fetch_add(&pc->nrequested, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&pc->failed, __ATOMIC_ACQUIRE))
		return 0; /* no source to ask: recovery asks again */
	return pc->cfg.ops->request(pc->cfg.opaque, bi, page, err);
}

static void *fault_thread(void *arg)
{
	struct pc_dest *pc = arg;
	CPU_THREAD(cpu, pc->cfg.cpu, TERN_CPU_RECV, "tern-fault");
	struct uffd_fault f[FAULT_BATCH];
	struct tern_error err = {0};

	for (;;) {
		int n = uffd_read_faults(pc->u, f, FAULT_BATCH, -1, &err), i;
		uint64_t now = tern_now_ns();

		if (n == -ECANCELED)
			return NULL;
		if (n < 0) {
			pc_fail(pc, &err);
			return NULL; /* the faulting threads wait: the guest is paused */
		}
		for (i = 0; i < n; i++) {
			if (on_fault(pc, &f[i], now, &err)) {
				pc_fail(pc, &err);
				tern_error_clear(&err);
			}
		}
	}
}

int pc_dest_start(struct pc_dest *pc, struct tern_error *err)
{
	int ret = -pthread_create(&pc->thread, NULL, fault_thread, pc);

	if (ret)
		return tern_error_set(err, ret, "postcopy: starting the fault thread: %s",
				      strerror(-ret));
	pc->started = true;
	return 0;
}

/* Page @pg of @block was placed by us: clear its bit and count it. */
static void placed_one(struct pc_dest *pc, uint32_t block, uint64_t pg)
{
	uint64_t bit = 1ull << (pg % 64), t;

	if (!(__atomic_fetch_and(&pc->missing[block][pg / 64], ~bit, __ATOMIC_ACQ_REL) & bit)) {
		__atomic_fetch_add(&pc->duplicates, 1, __ATOMIC_RELAXED);
		return; /* another channel's copy won the race */
	}
	__atomic_fetch_add(&pc->placed, 1, __ATOMIC_RELAXED);
	if (bitmap_test_atomic(pc->requested[block], pg) && (t = req_take(pc, req_key(block, pg))))
		lat_record(pc, (tern_now_ns() - t) / 1000);
	if (__atomic_sub_fetch(&pc->nmissing, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_mutex_lock(&pc->lock);
		pthread_cond_broadcast(&pc->cond);
		pthread_mutex_unlock(&pc->lock);
	}
}

/*
 * One placement call per run of pages still missing (a bulk packet's pages
 * are mostly consecutive and all missing: one UFFDIO_COPY for the run, not
 * one per page); the kernel leaves alone any page of it that a racing copy
 * placed meanwhile, and placed_one() counts that page as a duplicate.
 */
int pc_dest_place(struct pc_dest *pc, uint32_t block, uint64_t page, uint32_t n, const void *data,
		  struct tern_error *err)
{
	uint64_t ps = pc->cfg.page_size, i, j, k;
	const struct pc_dest_block *b;

	if (block >= pc->cfg.nblocks || page >= pc->blocks[block].npages ||
	    n > pc->blocks[block].npages - page)
		return tern_error_set(err, -ERANGE,
				      "postcopy: pages %" PRIu64 "+%u of block %u: out of range",
				      page, n, block);
	b = &pc->blocks[block];
	for (i = 0; i < n; i = j) {
		uint8_t *dst = b->host + (page + i) * ps;
		int ret;

		if (!bitmap_test_atomic(pc->missing[block], page + i)) {
			__atomic_fetch_add(&pc->duplicates, 1, __ATOMIC_RELAXED);
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < n && bitmap_test_atomic(pc->missing[block], page + j); j++)
			;
		ret = data ? uffd_copy(pc->u, dst, (const uint8_t *)data + i * ps, (j - i) * ps,
				       NULL, err)
			   : uffd_zero(pc->u, dst, (j - i) * ps, NULL, err);
		if (ret)
			return tern_error_prefix(err, "postcopy: block %u", block);
		for (k = i; k < j; k++)
			placed_one(pc, block, page + k);
	}
	return 0;
}

bool pc_dest_is_missing(struct pc_dest *pc, uint32_t block, uint64_t page)
{
	return bitmap_test_atomic(pc->missing[block], page);
}

uint64_t pc_dest_missing(struct pc_dest *pc)
{
	return __atomic_load_n(&pc->nmissing, __ATOMIC_ACQUIRE);
}

int pc_dest_wait_complete(struct pc_dest *pc, int timeout_ms)
{
	uint64_t deadline = tern_now_ms() + (uint64_t)timeout_ms;
	int ret = 0;

	pthread_mutex_lock(&pc->lock);
	while (pc_dest_missing(pc) && !ret) {
		uint64_t now = tern_now_ms();
		struct timespec ts;

		if (now >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((deadline - now) / 1000);
		ts.tv_nsec += (long)((deadline - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pc->cond, &pc->lock, &ts);
	}
	pthread_mutex_unlock(&pc->lock);
	return ret;
}

void pc_dest_stats(struct pc_dest *pc, struct pc_dest_stats *st)
{
	uint64_t hist[LAT_BUCKETS], count = 0;
	uint32_t b;

	for (b = 0; b < LAT_BUCKETS; b++) {
		hist[b] = __atomic_load_n(&pc->lat[b], __ATOMIC_RELAXED);
		count += hist[b];
	}
	*st = (struct pc_dest_stats){
	    .missing_at_switch = pc->missing_at_switch,
	    .missing = pc_dest_missing(pc),
	    .faults = __atomic_load_n(&pc->faults, __ATOMIC_RELAXED),
	    .zero_faults = __atomic_load_n(&pc->zero_faults, __ATOMIC_RELAXED),
	    .requested = __atomic_load_n(&pc->nrequested, __ATOMIC_RELAXED),
	    .placed = __atomic_load_n(&pc->placed, __ATOMIC_RELAXED),
	    .duplicates = __atomic_load_n(&pc->duplicates, __ATOMIC_RELAXED),
	    .latency_p50_us = lat_percentile(hist, count, 50),
	    .latency_p99_us = lat_percentile(hist, count, 99),
	    .latency_max_us = __atomic_load_n(&pc->lat_max_us, __ATOMIC_RELAXED),
	    .latency_count = count,
	};
	/* the bucket's top may pass the true maximum */
	st->latency_p50_us = MIN(st->latency_p50_us, st->latency_max_us);
	st->latency_p99_us = MIN(st->latency_p99_us, st->latency_max_us);
}

const uint64_t *pc_dest_missing_map(struct pc_dest *pc, uint32_t block)
{
	return pc->missing[block];
}

/*
 * Any thread but the fault thread (the recovery's). A page the fault
 * thread marks requested meanwhile is asked for by that thread itself if
 * it sees the new connection, and here otherwise (the caller publishes the
 * connection before it calls this): asked twice at worst, and the second
 * copy is dropped as a duplicate.
 */
uint64_t pc_dest_rerequest(struct pc_dest *pc)
{
	struct tern_error err = {0};
	uint64_t n = 0;
	uint32_t bi;

	for (bi = 0; bi < pc->cfg.nblocks; bi++) {
		uint64_t w, words = BITMAP_WORDS(pc->blocks[bi].npages);

		for (w = 0; w < words; w++) {
			uint64_t v = __atomic_load_n(&pc->requested[bi][w], __ATOMIC_ACQUIRE) &
				     __atomic_load_n(&pc->missing[bi][w], __ATOMIC_ACQUIRE);

			for (; v; v &= v - 1, n++)
				if (pc->cfg.ops->request(pc->cfg.opaque, bi,
							 w * 64 + (uint64_t)__builtin_ctzll(v),
							 &err))
					return n; /* the connection broke again */
		}
	}
	return n;
}

void pc_dest_free(struct pc_dest *pc)
{
	uint32_t i;

	if (!pc)
		return;
	if (pc->started) {
		uffd_interrupt(pc->u);
		pthread_join(pc->thread, NULL);
	}
	for (i = 0; i < pc->registered; i++)
		uffd_unregister(pc->u, pc->blocks[i].host, pc->blocks[i].npages * pc->cfg.page_size,
				NULL);
	uffd_close(pc->u);
	for (i = 0; pc->missing && pc->requested && i < pc->cfg.nblocks; i++) {
		bitmap_free(pc->missing[i]);
		bitmap_free(pc->requested[i]);
	}
	free(pc->missing);
	free(pc->requested);
	free(pc->blocks);
	pthread_cond_destroy(&pc->cond);
	pthread_mutex_destroy(&pc->lock);
	free(pc);
}
