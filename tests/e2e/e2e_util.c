/* SPDX-License-Identifier: MIT */
/*
 * e2e helpers. The writer thread stands in for the guest's vCPUs: it keeps
 * rewriting pages while the migration runs, and it stops for switchover when
 * the library calls the VMM's pause callback.
 *
 * Pause protocol: pause() sets ->pause_req and waits on ->cond until the
 * writer sets ->parked. The writer checks ->pause_req only between two
 * pages, after tern_ram_mark_dirty() for the previous one, so a page written
 * before the pause is always marked dirty before the library's final sync.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

const char *e2e_side = "e2e";

void e2e_fail(unsigned int *failures, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%s] FAIL: ", e2e_side);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	(*failures)++;
}

void e2e_note(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "[%s] ", e2e_side);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

uint64_t e2e_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void e2e_fill_random(void *buf, size_t len, uint64_t *rng)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = e2e_xorshift64(rng);

		memcpy(p + i, &v, 8);
	}
	if (i < len) {
		uint64_t v = e2e_xorshift64(rng);

		memcpy(p + i, &v, len - i);
	}
}

bool e2e_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!len)
		return true;
	return p[0] == 0 && !memcmp(p, p + 1, len - 1);
}

int e2e_parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

void *e2e_ram_alloc(uint64_t size)
{
	uint64_t len = size + E2E_HUGE_ALIGN;
	uintptr_t start, head, tail;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)p + E2E_HUGE_ALIGN - 1) & ~(uintptr_t)(E2E_HUGE_ALIGN - 1);
	head = start - (uintptr_t)p;
	tail = len - head - size;
	if (head)
		munmap(p, head);
	if (tail)
		munmap((uint8_t *)start + size, tail);
	return (void *)start;
}

int e2e_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int e2e_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- writer ------------------------------------------------------------- */

/*
 * ThreadSanitizer: the guest writes its RAM while the library reads it to
 * send it -- the race live migration is built on, resolved by dirty tracking
 * rather than by locks. TSan would report it once per page (and its report
 * path, flooded, stalls the migration), so a TSan build ignores the writer's
 * page writes, and only those. Outside TSan these symbols are absent.
 */
void AnnotateIgnoreWritesBegin(const char *file, int line) __attribute__((weak));
void AnnotateIgnoreWritesEnd(const char *file, int line) __attribute__((weak));

/* The guest's write to page @page: zeros (returns true) or new random data. */
static bool writer_dirty_page(struct e2e_writer *w, uint64_t page, uint64_t r, uint64_t *rng)
{
	uint8_t *p = w->ram + page * w->page_size;
	bool zero = w->zero_one_in && (r >> 40) % w->zero_one_in == 0;

	if (w->dirty_bytes)
		zero = false;
	if (AnnotateIgnoreWritesBegin)
		AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
	if (w->dirty_bytes)
		e2e_fill_random(p + (r >> 8) % (w->page_size - w->dirty_bytes + 1), w->dirty_bytes,
				rng);
	else if (zero)
		memset(p, 0, w->page_size);
	else
		e2e_fill_random(p, w->page_size, rng);
	if (AnnotateIgnoreWritesEnd)
		AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
	return zero;
}

/*
 * The throttle: within each E2E_THROTTLE_PERIOD_NS, once the share the
 * writer may run is used up, it sleeps (a ms at a time, so that a pause is
 * still answered quickly) until the period ends. The sleep moves the pace's
 * origin @t0 forward, so the lost writes are never made up. Returns true
 * when it slept (the caller checks for a pause again).
 */
static bool writer_throttled(struct e2e_writer *w, uint64_t *period_start, uint64_t *t0)
{
	unsigned int pct = __atomic_load_n(&w->throttle_pct, __ATOMIC_RELAXED);
	uint64_t now = e2e_now_ns(), run_ns, left, slept;
	struct timespec ts = {0, 0};

	if (now - *period_start >= E2E_THROTTLE_PERIOD_NS)
		*period_start = now;
	if (!pct)
		return false;
	if (pct > 100)
		pct = 100;
	run_ns = E2E_THROTTLE_PERIOD_NS * (100 - pct) / 100;
	if (now - *period_start < run_ns)
		return false;
	left = *period_start + E2E_THROTTLE_PERIOD_NS - now;
	ts.tv_nsec = (long)(left < 1000000 ? left : 1000000);
	nanosleep(&ts, NULL);
	slept = e2e_now_ns() - now;
	*t0 += slept;
	__atomic_store_n(&w->throttled_ns, w->throttled_ns + slept, __ATOMIC_RELAXED);
	return true;
}

static void *writer_main(void *arg)
{
	struct e2e_writer *w = arg;
	uint64_t npages = w->ws / w->page_size;
	uint64_t rng = w->seed | 1;
	uint64_t t0 = e2e_now_ns(), done = 0, period_start = t0;

	pthread_setname_np(pthread_self(), "e2e-writer");
	for (;;) {
		uint64_t allowed, elapsed, page, r;

		pthread_mutex_lock(&w->lock);
		if (w->pause_req && !w->quit) {
			w->parked = true;
			w->paused_iter = __atomic_load_n(&w->iter, __ATOMIC_RELAXED);
			pthread_cond_broadcast(&w->cond);
			while (w->pause_req && !w->quit)
				pthread_cond_wait(&w->cond, &w->lock);
			w->parked = false;
			t0 = e2e_now_ns();
			done = 0;
		}
		if (w->quit) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		pthread_mutex_unlock(&w->lock);

		if (w->max_writes && __atomic_load_n(&w->iter, __ATOMIC_RELAXED) >= w->max_writes) {
			/* idle: answer pause and quit within a ms */
			struct timespec idle = {0, 1000000};

			nanosleep(&idle, NULL);
			continue;
		}
		if (writer_throttled(w, &period_start, &t0))
			continue;
		elapsed = e2e_now_ns() - t0;
		allowed = (uint64_t)((double)w->rate * (double)elapsed / 1e9);
		if (done + w->page_size > allowed) {
			uint64_t wait_ns = (uint64_t)((double)(done + w->page_size - allowed) *
						      1e9 / (double)w->rate);
			struct timespec ts = {0, 0};

			/* wake at least every ms, so that a pause is answered quickly */
			if (wait_ns > 1000000)
				wait_ns = 1000000;
			if (wait_ns < 50000)
				wait_ns = 50000;
			ts.tv_nsec = (long)wait_ns;
			nanosleep(&ts, NULL);
			continue;
		}

		r = e2e_xorshift64(&rng);
		page = w->sequential ? w->iter % npages : r % npages;
		if (writer_dirty_page(w, page, r, &rng))
			__atomic_store_n(&w->zero_writes, w->zero_writes + 1, __ATOMIC_RELAXED);
		tern_ram_mark_dirty(w->block, page * w->page_size, w->page_size);
		__atomic_store_n(&w->iter, w->iter + 1, __ATOMIC_RELAXED);
		done += w->page_size;
	}
	return NULL;
}

void e2e_writer_init(struct e2e_writer *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

int e2e_writer_start(struct e2e_writer *w)
{
	int ret;

	if (!w->rate || w->ws < w->page_size)
		return 0;
	ret = pthread_create(&w->thread, NULL, writer_main, w);
	if (ret)
		return -ret;
	w->started = true;
	return 0;
}

void e2e_writer_stop(struct e2e_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->quit = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	pthread_mutex_lock(&w->lock);
	w->started = false;
	pthread_mutex_unlock(&w->lock);
}

void e2e_writer_destroy(struct e2e_writer *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

void e2e_writer_pause(struct e2e_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->pauses++;
	w->pause_req = true;
	pthread_cond_broadcast(&w->cond);
	while (w->started && !w->parked && !w->quit)
		pthread_cond_wait(&w->cond, &w->lock);
	if (!w->started)
		w->paused_iter = 0;
	pthread_mutex_unlock(&w->lock);
}

void e2e_writer_resume(struct e2e_writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->resumes++;
	w->pause_req = false;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

bool e2e_writer_is_parked(struct e2e_writer *w)
{
	bool parked;

	pthread_mutex_lock(&w->lock);
	parked = !w->started || (w->pause_req && w->parked);
	pthread_mutex_unlock(&w->lock);
	return parked;
}

void e2e_writer_throttle(struct e2e_writer *w, unsigned int percent)
{
	__atomic_store_n(&w->throttle_pct, percent, __ATOMIC_RELAXED);
}

uint64_t e2e_writer_iter(struct e2e_writer *w)
{
	return __atomic_load_n(&w->iter, __ATOMIC_RELAXED);
}

/* ---- thread names ------------------------------------------------------- */

static void names_scan(struct e2e_names *nw)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[300], comm[32];
		unsigned int i;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* ended meanwhile */
		if (fgets(comm, sizeof(comm), f)) {
			comm[strcspn(comm, "\n")] = '\0';
			for (i = 0; i < nw->n && strcmp(nw->name[i], comm); i++)
				;
			if (i == nw->n && nw->n < E2E_NAMES_MAX)
				snprintf(nw->name[nw->n++], sizeof(nw->name[0]), "%.15s", comm);
		}
		fclose(f);
	}
	closedir(d);
}

static void *names_main(void *arg)
{
	struct e2e_names *nw = arg;
	struct timespec ts = {.tv_nsec = 1000000};

	pthread_setname_np(pthread_self(), "e2e-names");
	while (!__atomic_load_n(&nw->quit, __ATOMIC_ACQUIRE)) {
		names_scan(nw);
		nanosleep(&ts, NULL);
	}
	names_scan(nw);
	return NULL;
}

int e2e_names_start(struct e2e_names *nw)
{
	memset(nw, 0, sizeof(*nw));
	if (pthread_create(&nw->thread, NULL, names_main, nw))
		return -1;
	nw->started = true;
	return 0;
}

void e2e_names_stop(struct e2e_names *nw)
{
	if (!nw->started)
		return;
	__atomic_store_n(&nw->quit, true, __ATOMIC_RELEASE);
	pthread_join(nw->thread, NULL);
	nw->started = false;
}

bool e2e_names_seen(const struct e2e_names *nw, const char *name)
{
	unsigned int i;

	for (i = 0; i < nw->n; i++)
		if (!strcmp(nw->name[i], name))
			return true;
	return false;
}

void e2e_names_list(const struct e2e_names *nw, char *buf, size_t len)
{
	size_t used = 0;
	unsigned int i;

	if (!len)
		return;
	buf[0] = '\0';
	for (i = 0; i < nw->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? " " : "", nw->name[i]);
}

uint64_t e2e_process_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
