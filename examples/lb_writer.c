/* SPDX-License-Identifier: MIT */
/*
 * tern-loopback's guest memory: its allocation, the source's fill (random or
 * text pages, a share left zero) and the writer thread that keeps dirtying it,
 * with the pause/resume/throttle callbacks the library drives it through.
 * Apart from the rest because it is the one part that runs on its own thread
 * and races the library by design.
 *
 * Auto-converge throttles the writer thread: at p % it writes in the first
 * (100 - p) % of every 100 ms and sleeps through the rest, and its pacing
 * does not count the time it slept, so it does not catch up afterwards.
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "lb.h"

static inline uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* ---- RAM ---------------------------------------------------------------- */

/* Fresh anonymous memory aligned to 2 MiB: over-allocate, then trim. */
uint8_t *lb_ram_alloc(uint64_t size)
{
	uint64_t len = size + LB_HUGE_ALIGN;
	uintptr_t start, head, tail;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)p + LB_HUGE_ALIGN - 1) & ~(uintptr_t)(LB_HUGE_ALIGN - 1);
	head = start - (uintptr_t)p;
	tail = len - head - size;
	if (head)
		munmap(p, head);
	if (tail)
		munmap((uint8_t *)start + size, tail);
	return (uint8_t *)start;
}

static const char *const lb_words[] = {
    "the",     "guest", "page", "dirty",   "round", "channel", "migration", "kernel",
    "memory",  "vcpu",	"host", "switch",  "over",  "bitmap",  "socket",    "stream",
    "section", "load",	"save", "network", "time",  "and",     "of",	    "a",
    "to",      "in",	"is",	"for",	   "with",  "that",    "data",	    "block",
};

/*
 * ThreadSanitizer: the writer (the "guest") writes pages while the library
 * reads them to send them -- the race live migration is built on, resolved
 * by dirty tracking, not locks. A TSan build ignores the writer's page
 * writes, and only those; outside TSan these symbols are absent.
 */
void AnnotateIgnoreWritesBegin(const char *file, int line) __attribute__((weak));
void AnnotateIgnoreWritesEnd(const char *file, int line) __attribute__((weak));

static void fill_page(uint8_t *page, size_t page_size, enum lb_fill fill, uint64_t *rng)
{
	size_t i, col = 0;

	if (fill == LB_FILL_RANDOM) {
		uint64_t *w = (uint64_t *)page;

		for (i = 0; i < page_size / 8; i++)
			w[i] = xorshift64(rng);
		return;
	}
	/* text: words from a small dictionary, lines of about 72 columns */
	i = 0;
	while (i < page_size) {
		const char *word =
		    lb_words[xorshift64(rng) % (sizeof(lb_words) / sizeof(lb_words[0]))];
		size_t n = strlen(word);

		while (*word && i < page_size)
			page[i++] = *word++;
		col += n + 1;
		if (i < page_size)
			page[i++] = col > 72 ? '\n' : ' ';
		if (col > 72)
			col = 0;
	}
}

/*
 * Fill all RAM but a pseudo-random @zero_pct of its pages, decided for runs
 * of @zero_run pages at a time (1: each page on its own; 512: 2 MiB runs, as
 * in a guest whose unused memory lies in large free areas). Returns the zero
 * page count.
 */
uint64_t lb_ram_fill(uint8_t *ram, const struct lb_cfg *cfg)
{
	uint64_t npages = cfg->ram / cfg->page_size, zeros = 0, i;
	uint64_t rng = cfg->seed ? cfg->seed : 0x9e3779b97f4a7c15ull;
	uint64_t zrng = rng ^ 0x5bd1e995ull;
	uint64_t zero_thresh = (uint64_t)(cfg->zero_pct * 100.0 + 0.5); /* per 10000 */
	uint64_t run = cfg->zero_run ? cfg->zero_run : 1;
	bool zero = false;

	for (i = 0; i < npages; i++) {
		if (i % run == 0)
			zero = zero_thresh && xorshift64(&zrng) % 10000 < zero_thresh;
		if (zero) {
			zeros++;
			continue;
		}
		fill_page(ram + i * cfg->page_size, cfg->page_size, cfg->fill, &rng);
	}
	return zeros;
}

/* ---- writer thread ------------------------------------------------------ */

static void *writer_main(void *arg)
{
	struct lb_writer *w = arg;
	uint64_t npages = w->ws / w->page_size;
	uint64_t rng = w->seed | 1;
	uint64_t t0 = lb_now_ns(), done = 0, period0 = 0;

	pthread_setname_np(pthread_self(), "lb-writer");
	for (;;) {
		uint64_t allowed, elapsed, page;
		unsigned int pct;

		if (__atomic_load_n(&w->pause_req, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&w->quit, __ATOMIC_ACQUIRE)) {
			pthread_mutex_lock(&w->lock);
			if (w->pause_req && !w->quit) {
				w->parked = true;
				pthread_cond_broadcast(&w->cond);
				while (w->pause_req && !w->quit)
					pthread_cond_wait(&w->cond, &w->lock);
				w->parked = false;
				t0 = lb_now_ns();
				done = 0;
				period0 = 0;
			}
			if (w->quit) {
				pthread_mutex_unlock(&w->lock);
				break;
			}
			pthread_mutex_unlock(&w->lock);
		}

		pct = __atomic_load_n(&w->throttle_pct, __ATOMIC_RELAXED);
		if (pct) {
			uint64_t now = lb_now_ns(), off_at, slept;

			if (!period0)
				period0 = now; /* a new throttle starts with writing */
			else if (now - period0 >= LB_THROTTLE_PERIOD_NS)
				period0 +=
				    (now - period0) / LB_THROTTLE_PERIOD_NS * LB_THROTTLE_PERIOD_NS;
			off_at = period0 + LB_THROTTLE_PERIOD_NS * (100 - pct) / 100;
			if (now >= off_at) {
				/* held: sleep to the period's end, 1 ms at a time to
				 * answer a pause; the pace does not count it */
				uint64_t nap = period0 + LB_THROTTLE_PERIOD_NS - now;
				struct timespec ts = {0, nap < 1000000 ? (long)nap : 1000000};

				nanosleep(&ts, NULL);
				slept = lb_now_ns() - now;
				t0 += slept;
				w->held_ns += slept;
				continue;
			}
		} else {
			period0 = 0;
		}

		elapsed = lb_now_ns() - t0;
		allowed = (uint64_t)((double)w->rate * (double)elapsed / 1e9);
		if (done + w->page_size > allowed) {
			uint64_t wait_ns = (uint64_t)((double)(done + w->page_size - allowed) *
						      1e9 / (double)w->rate);
			struct timespec ts = {0, 0};

			if (wait_ns > 1000000)
				wait_ns = 1000000; /* answer a pause within ~1 ms */
			if (wait_ns < 50000)
				wait_ns = 50000;
			ts.tv_nsec = (long)wait_ns;
			nanosleep(&ts, NULL);
			continue;
		}
		page = xorshift64(&rng) % npages;
		if (w->read_only) {
			const volatile uint64_t *q =
			    (const volatile uint64_t *)(w->ram + page * w->page_size);
			size_t k;

			for (k = 0; k < w->page_size / 8; k += 64)
				w->read_sum += q[k];
			done += w->page_size;
			w->pages_written++;
			continue;
		}
		if (AnnotateIgnoreWritesBegin)
			AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
		if (w->dirty_bytes) {
			/* a few bytes of the page: what XBZRLE turns into a small delta */
			uint8_t tmp[64];
			size_t off = xorshift64(&rng) % (w->page_size - w->dirty_bytes + 1), n;

			for (n = 0; n < w->dirty_bytes; n += sizeof(tmp)) {
				size_t k = w->dirty_bytes - n < sizeof(tmp) ? w->dirty_bytes - n
									    : sizeof(tmp);

				fill_page(tmp, sizeof(tmp), w->fill, &rng);
				memcpy(w->ram + page * w->page_size + off + n, tmp, k);
			}
		} else {
			fill_page(w->ram + page * w->page_size, w->page_size, w->fill, &rng);
		}
		if (AnnotateIgnoreWritesEnd)
			AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
		if (w->block)
			tern_ram_mark_dirty(w->block, page * w->page_size, w->page_size);
		done += w->page_size;
		w->pages_written++;
	}
	return NULL;
}

int lb_writer_start(struct lb_writer *w)
{
	int ret;

	if (!w->rate || !w->ws)
		return 0;
	ret = pthread_create(&w->thread, NULL, writer_main, w);
	if (ret)
		return -ret;
	w->started = true;
	return 0;
}

/*
 * Stop and join the writer. It marks pages on the session's RAM block, so
 * this comes before tern_session_free() (tern.h, "Lifetime"). The callbacks
 * stay usable: a pause finds the writer gone and returns at once.
 */
void lb_writer_stop(struct lb_writer *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		__atomic_store_n(&w->quit, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
}

/* After tern_session_free(): no callback runs any more. */
void lb_writer_fini(struct lb_writer *w)
{
	lb_writer_stop(w);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

int lb_writer_pause(void *opaque, struct tern_error *err)
{
	struct lb_writer *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->pauses++;
	__atomic_store_n(&w->pause_req, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->cond);
	while (w->started && !w->parked && !w->quit)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void lb_writer_resume(void *opaque)
{
	struct lb_writer *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->resumes++;
	__atomic_store_n(&w->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Auto-converge, on the migration thread: the writer reads it lock-free. */
void lb_writer_throttle(void *opaque, unsigned int percent)
{
	struct lb_writer *w = opaque;

	if (percent > 99)
		percent = 99;
	__atomic_store_n(&w->throttle_pct, percent, __ATOMIC_RELAXED);
	if (percent > __atomic_load_n(&w->throttle_max, __ATOMIC_RELAXED))
		__atomic_store_n(&w->throttle_max, percent, __ATOMIC_RELAXED);
}
