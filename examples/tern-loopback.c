/* SPDX-License-Identifier: MIT */
/*
 * tern-loopback: migrate a block of anonymous memory between two processes
 * over loopback and print each side's figures as one JSON line.
 *
 * By default the program forks before it starts any thread. The child is the
 * destination: it listens on tcp:127.0.0.1:0 (or unix:/tmp/tern-loopback-<pid>.sock),
 * sends the bound URI to the parent through a pipe and waits for the
 * migration. The parent is the source: it fills its RAM (not timed), starts
 * an optional writer thread that keeps dirtying pages, migrates, and waits.
 * The destination line is printed first, then the source line; the exit
 * status is 0 only when both sides completed (and verified, with --verify).
 *
 * --incoming URI and --migrate-to URI run one side only, for two hosts or
 * two terminals.
 *
 * Management sockets (docs/MGMT.md): --mgmt PATH serves the side this
 * process runs itself: the source in the two-process mode and with
 * --migrate-to, the destination with --incoming. --mgmt-dest PATH serves the
 * forked destination of the two-process mode. Each server starts once its
 * side's tern_migrate() / tern_incoming() returned (a destination's before
 * it hands its URI over), so no client's migrate or incoming races ours.
 *
 * Auto-converge throttles the writer thread: at p % it writes in the first
 * (100 - p) % of every 100 ms and sleeps through the rest, and its pacing
 * does not count the time it slept, so it does not catch up afterwards.
 *
 * The destination allocates fresh memory and never touches it: landing
 * pages into untouched memory fast is part of what is measured. Only the
 * library decides how that memory is advised.
 *
 * This program uses the public API only, as a third-party VMM would.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <tern/tern.h>
#include "common/json_out.h"

#define LB_HUGE_ALIGN (2ull << 20)
#define LB_THROTTLE_PERIOD_NS 100000000ull /* 100 ms */
#define LB_URI_MAX 256
#define LB_LINE_MAX 4096

enum lb_fill {
	LB_FILL_INVALID = 0,
	LB_FILL_RANDOM,
	LB_FILL_TEXT,
	LB_FILL_MAX,
};

struct lb_cfg {
	uint64_t ram;
	unsigned int channels;
	const char *transport;
	double zero_pct;
	uint64_t zero_run; /* pages decided together: 1 = scattered, 512 = 2 MiB runs */
	enum lb_fill fill;
	uint64_t dirty_rate;
	uint64_t dirty_ws;
	uint64_t downtime_limit;
	uint64_t max_bandwidth;
	bool verify;
	const char *codec;     /* multifd-compression */
	uint64_t zlib_level;   /* 0: the default */
	uint64_t zstd_level;   /* 0: the default */
	uint64_t xbzrle_cache; /* 0: the default */
	size_t dirty_bytes;    /* writer rewrites this much of a page (0: all) */
	const char *incoming;
	const char *migrate_to;
	unsigned int timeout_s;
	int log_level;
	uint64_t seed;
	size_t page_size;
	const char *mgmt;      /* this process's side (the source when both run) */
	const char *mgmt_dest; /* the forked destination's */
	/* source only; 0 / NULL: the library's default */
	bool auto_converge;
	bool pause_before_switchover;
	uint64_t throttle_initial;
	uint64_t throttle_increment;
	uint64_t max_throttle;
	uint64_t migration_timeout; /* s */
	const char *timeout_policy;
};

/*
 * The source's writer thread: dirties random pages of the first @ws bytes at
 * @rate bytes/s, calling tern_ram_mark_dirty() after each write. pause()
 * parks it (and waits until it says so), resume() lets it go again;
 * throttle() makes it sleep a share of each 100 ms. Its per-page path takes
 * no lock: it reads pause_req, quit and the throttle with atomics, and takes
 * the lock only when one of the first two is set.
 */
struct lb_writer {
	/* immutable once started */
	uint8_t *ram;
	uint64_t ws;
	uint64_t rate;
	size_t page_size;
	enum lb_fill fill;
	size_t dirty_bytes;
	struct tern_ram_block *block;
	uint64_t seed;
	pthread_t thread;
	bool started;
	/* protected by ->lock (pause_req and quit: written under it with
	 * atomics, also read with atomics without it) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;
	bool parked;
	bool quit;
	unsigned int pauses;
	unsigned int resumes;
	/* atomics: set by the throttle callback (migration thread) */
	unsigned int throttle_pct;
	unsigned int throttle_max;
	/* writer thread only; read after join */
	uint64_t pages_written;
	uint64_t held_ns; /* slept for the throttle */
};

struct lb_dest_ctx {
	bool resumed; /* set on the load thread, read after tern_wait() */
};

static const char *prog = "tern-loopback";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* 4096, 64K, 256M, 1G, 1GiB, 1GB: binary multiples, as QEMU reads them. */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

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
	case 't':
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	case 'b':
	case 'B':
		break;
	default:
		return -EINVAL;
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

static uint64_t opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v))
		die("%s: bad size '%s' (e.g. 4096, 64K, 256M, 1G, 1GiB)", opt, arg);
	return v;
}

static unsigned long opt_uint(const char *opt, const char *arg, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v > max)
		die("%s: bad value '%s' (0..%lu)", opt, arg, max);
	return v;
}

/* ---- RAM ---------------------------------------------------------------- */

/* Fresh anonymous memory aligned to 2 MiB: over-allocate, then trim. */
static uint8_t *ram_alloc(uint64_t size)
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
static uint64_t ram_fill(uint8_t *ram, const struct lb_cfg *cfg)
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
	uint64_t t0 = now_ns(), done = 0, period0 = 0;

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
				t0 = now_ns();
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
			uint64_t now = now_ns(), off_at, slept;

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
				slept = now_ns() - now;
				t0 += slept;
				w->held_ns += slept;
				continue;
			}
		} else {
			period0 = 0;
		}

		elapsed = now_ns() - t0;
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
		tern_ram_mark_dirty(w->block, page * w->page_size, w->page_size);
		done += w->page_size;
		w->pages_written++;
	}
	return NULL;
}

static int writer_start(struct lb_writer *w)
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

static void writer_stop(struct lb_writer *w)
{
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		__atomic_store_n(&w->quit, true, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

static int src_pause(void *opaque, struct tern_error *err)
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

static void src_resume(void *opaque)
{
	struct lb_writer *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->resumes++;
	__atomic_store_n(&w->pause_req, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Auto-converge, on the migration thread: the writer reads it lock-free. */
static void src_throttle(void *opaque, unsigned int percent)
{
	struct lb_writer *w = opaque;

	if (percent > 99)
		percent = 99;
	__atomic_store_n(&w->throttle_pct, percent, __ATOMIC_RELAXED);
	if (percent > __atomic_load_n(&w->throttle_max, __ATOMIC_RELAXED))
		__atomic_store_n(&w->throttle_max, percent, __ATOMIC_RELAXED);
}

static void dst_resume(void *opaque)
{
	struct lb_dest_ctx *d = opaque;

	__atomic_store_n(&d->resumed, true, __ATOMIC_RELEASE);
}

/* ---- output ------------------------------------------------------------- */

static uint64_t t_start_ns; /* set once in main(), before fork */

static void log_to_stderr(void *opaque, int level, const char *msg)
{
	uint64_t t = now_ns() - t_start_ns;

	fprintf(stderr, "%4" PRIu64 ".%03" PRIu64 " [%s] %s\n", t / UINT64_C(1000000000),
		t / UINT64_C(1000000) % 1000, (const char *)opaque, msg);
}

/* One write per line, so that the two processes' lines never interleave. */
static void emit_line(const char *line)
{
	if (write(STDOUT_FILENO, line, strlen(line)) < 0)
		perror("write");
}

/*
 * When both sides run here, the source keeps its line until the destination
 * has printed and exited, so that the destination's line always comes first.
 */
static char *deferred_line;

static bool side_ok(const struct tern_stats *st, const struct lb_cfg *cfg)
{
	return st->status == TERN_STATUS_COMPLETED && (!cfg->verify || st->verified);
}

/* @w: the source's writer (its throttle figures), NULL on the destination. */
static void print_json(const char *side, const char *transport, const struct lb_cfg *cfg,
		       const struct tern_stats *st, const struct lb_writer *w,
		       const char *extra_err)
{
	char line[LB_LINE_MAX], esc[600], reason[300];
	static const char *const cn[TERN_STATS_CODECS] = {"", "none", "zlib", "zstd", "xbzrle"};
	int c;
	const char *err = extra_err && *extra_err ? extra_err : st->error;
	int n;

	n = snprintf(line, sizeof(line),
		     "{\"side\":\"%s\",\"status\":\"%s\",\"verified\":%s,\"ram_bytes\":%" PRIu64
		     ",\"total_ms\":%" PRIu64 ",\"setup_ms\":%" PRIu64 ",\"downtime_ms\":%" PRIu64
		     ",\"expected_downtime_ms\":%" PRIu64 ",\"verify_ms\":%" PRIu64
		     ",\"transferred_bytes\":%" PRIu64 ",\"ram_transferred_bytes\":%" PRIu64
		     ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64 ",\"rounds\":%" PRIu64
		     ",\"dirty_rate_bps\":%" PRIu64 ",\"throughput_bps\":%" PRIu64
		     ",\"bandwidth_bps\":%" PRIu64 ",\"channels\":%u,\"transport\":\"%s\","
		     "\"codec\":\"%s\",\"zero_pct\":%g,\"zero_run\":%" PRIu64
		     ",\"fill\":\"%s\",\"dirty_rate_set_bps\":%" PRIu64,
		     side, tern_status_name(st->status), st->verified ? "true" : "false", cfg->ram,
		     st->total_ms, st->setup_ms, st->downtime_ms, st->expected_downtime_ms,
		     st->verify_ms, st->wire_bytes, st->ram_transferred, st->normal_pages,
		     st->zero_pages, st->rounds, st->dirty_pages_rate * (uint64_t)st->page_size,
		     st->throughput_bps, st->bandwidth_bps, cfg->channels, transport,
		     st->multifd_compression[0] ? st->multifd_compression : cfg->codec,
		     cfg->zero_pct, cfg->zero_run ? cfg->zero_run : 1,
		     cfg->fill == LB_FILL_TEXT ? "text" : "random", cfg->dirty_rate);
	for (c = TERN_STATS_CODEC_NONE; c < TERN_STATS_CODECS; c++)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      ",\"%s_pages\":%" PRIu64 ",\"%s_bytes_in\":%" PRIu64
			      ",\"%s_bytes_out\":%" PRIu64 ",\"%s_rate\":%.3f,\"%s_ms\":%" PRIu64
			      ",\"auto_%s_packets\":%" PRIu64,
			      cn[c], st->codec[c].pages, cn[c], st->codec[c].bytes_in, cn[c],
			      st->codec[c].bytes_out, cn[c], st->codec[c].compression_rate, cn[c],
			      st->codec[c].time_ms, cn[c], st->codec[c].auto_packets);
	json_escape(reason, sizeof(reason), st->auto_reason);
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      ",\"xbzrle_cache_size\":%" PRIu64 ",\"xbzrle_hits\":%" PRIu64
		      ",\"xbzrle_misses\":%" PRIu64 ",\"xbzrle_overflows\":%" PRIu64
		      ",\"xbzrle_delta_bytes\":%" PRIu64 ",\"xbzrle_hit_rate\":%.4f"
		      ",\"xbzrle_encoding_rate\":%.3f,\"auto_reason\":\"%s\",\"dirty_bytes\":%zu",
		      st->xbzrle_cache_size, st->xbzrle_cache_hits, st->xbzrle_cache_misses,
		      st->xbzrle_overflows, st->xbzrle_bytes, st->xbzrle_cache_hit_rate,
		      st->xbzrle_encoding_rate, reason, cfg->dirty_bytes);
	n +=
	    snprintf(line + n, sizeof(line) - (size_t)n,
		     ",\"round_bytes\":%" PRIu64 ",\"round_sent_bytes\":%" PRIu64
		     ",\"cpu_throttle_percent\":%u,\"expected_sync_us\":%" PRIu64
		     ",\"expected_ram_us\":%" PRIu64 ",\"expected_device_us\":%" PRIu64
		     ",\"expected_resume_us\":%" PRIu64 ",\"downtime_pause_us\":%" PRIu64
		     ",\"downtime_wait_us\":%" PRIu64 ",\"downtime_sync_us\":%" PRIu64
		     ",\"downtime_ram_us\":%" PRIu64 ",\"downtime_device_us\":%" PRIu64
		     ",\"downtime_resume_us\":%" PRIu64
		     ",\"throttle_max_percent\":%u,\"throttle_held_ms\":%" PRIu64,
		     st->round_bytes, st->round_sent_bytes, st->cpu_throttle_percent,
		     st->expected_sync_us, st->expected_ram_us, st->expected_device_us,
		     st->expected_resume_us, st->downtime_pause_us, st->downtime_wait_us,
		     st->downtime_sync_us, st->downtime_ram_us, st->downtime_device_us,
		     st->downtime_resume_us, w ? w->throttle_max : 0, w ? w->held_ns / 1000000 : 0);
	if (!side_ok(st, cfg)) {
		if (!*err && st->status == TERN_STATUS_COMPLETED)
			err = "verify-ram was requested but the RAM was not verified";
		json_escape(esc, sizeof(esc), *err ? err : "unknown error");
		n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"error\":\"%s\"", esc);
	}
	snprintf(line + n, sizeof(line) - (size_t)n, "}\n");
	if (deferred_line) {
		snprintf(deferred_line, LB_LINE_MAX, "%s", line);
		return;
	}
	emit_line(line);
}

/* ---- one migration side ------------------------------------------------- */

static bool status_final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

/* Wait for the end, cancelling after --timeout. Returns the final status. */
static enum tern_status wait_final(struct tern_session *s, const struct lb_cfg *cfg,
				   const char *side, bool *ret_timed_out)
{
	uint64_t deadline = cfg->timeout_s ? now_ns() + cfg->timeout_s * 1000000000ull : 0;
	enum tern_status st;

	*ret_timed_out = false;
	for (;;) {
		st = tern_wait(s, 1000);
		if (status_final(st))
			return st;
		if (deadline && now_ns() > deadline)
			break;
	}
	fprintf(stderr, "%s: %s: no end after %u s (status %s), cancelling\n", prog, side,
		cfg->timeout_s, tern_status_name(st));
	*ret_timed_out = true;
	tern_cancel(s);
	return tern_wait(s, 30000);
}

static int session_setup(struct tern_session *s, const struct lb_cfg *cfg, const char *side,
			 struct tern_error *err)
{
	int ret;

	if (cfg->log_level >= 0)
		tern_set_log_fn(s, log_to_stderr, (void *)side, cfg->log_level);
	ret = tern_param_set(s, "multifd-channels", cfg->channels, err);
	if (!ret && cfg->downtime_limit)
		ret = tern_param_set(s, "downtime-limit", cfg->downtime_limit, err);
	if (!ret && cfg->max_bandwidth)
		ret = tern_param_set(s, "max-bandwidth", cfg->max_bandwidth, err);
	if (!ret && cfg->verify)
		ret = tern_cap_set(s, "verify-ram", true, err);
	/* the destination follows what the source's HELLO says */
	if (!ret && !strcmp(side, "src"))
		ret = tern_param_set_str(s, "multifd-compression", cfg->codec, err);
	if (!ret && cfg->zlib_level)
		ret = tern_param_set(s, "multifd-zlib-level", cfg->zlib_level, err);
	if (!ret && cfg->zstd_level)
		ret = tern_param_set(s, "multifd-zstd-level", cfg->zstd_level, err);
	if (!ret && cfg->xbzrle_cache)
		ret = tern_param_set(s, "xbzrle-cache-size", cfg->xbzrle_cache, err);
	if (strcmp(side, "src"))
		return ret;
	if (!ret && cfg->auto_converge)
		ret = tern_cap_set(s, "auto-converge", true, err);
	if (!ret && cfg->pause_before_switchover)
		ret = tern_cap_set(s, "pause-before-switchover", true, err);
	if (!ret && cfg->throttle_initial)
		ret = tern_param_set(s, "cpu-throttle-initial", cfg->throttle_initial, err);
	if (!ret && cfg->throttle_increment)
		ret = tern_param_set(s, "cpu-throttle-increment", cfg->throttle_increment, err);
	if (!ret && cfg->max_throttle)
		ret = tern_param_set(s, "max-cpu-throttle", cfg->max_throttle, err);
	if (!ret && cfg->migration_timeout)
		ret = tern_param_set(s, "migration-timeout", cfg->migration_timeout, err);
	if (!ret && cfg->timeout_policy)
		ret = tern_param_set_str(s, "migration-timeout-policy", cfg->timeout_policy, err);
	return ret;
}

static const char *uri_transport(const char *uri)
{
	if (!strncmp(uri, "unix:", 5))
		return "unix";
	if (!strncmp(uri, "rdma:", 5))
		return "rdma";
	return "tcp";
}

/*
 * The destination. @uri_fd: where to send the bound URI (-1: print it on
 * stderr); @mgmt: its management socket, or NULL. Returns the exit status.
 */
static int run_destination(const struct lb_cfg *cfg, const char *uri, int uri_fd, const char *mgmt)
{
	static const struct tern_vmm_ops ops = {.resume = dst_resume};
	struct lb_dest_ctx ctx = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct tern_session *s = NULL;
	char bound[LB_URI_MAX] = "";
	bool timed_out = false;
	const char *msg = NULL;
	uint8_t *ram;
	int ret;

	ram = ram_alloc(cfg->ram);
	if (!ram)
		die("destination: cannot allocate %" PRIu64 " bytes", cfg->ram);
	/* fresh memory: not touched here, the library advises it */
	ret = tern_session_new(&ops, &ctx, &s, &err);
	if (!ret)
		ret = session_setup(s, cfg, "dst", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, NULL, &err);
	if (!ret)
		ret = tern_incoming(s, uri, &err);
	if (!ret)
		ret = tern_incoming_uri(s, bound, sizeof(bound));
	if (!ret && mgmt)
		ret = tern_mgmt_listen(s, mgmt, &err);
	if (ret < 0) {
		if (!err.code)
			snprintf(err.msg, sizeof(err.msg), "destination setup: %s", strerror(-ret));
		if (uri_fd >= 0)
			close(uri_fd);
		st.status = TERN_STATUS_FAILED;
		print_json("destination", uri_transport(uri), cfg, &st, NULL, err.msg);
		tern_session_free(s);
		return 1;
	}
	if (uri_fd >= 0) {
		size_t len = strlen(bound) + 1;

		if (write(uri_fd, bound, len) != (ssize_t)len)
			perror("write uri");
		close(uri_fd);
	} else {
		fprintf(stderr, "%s: listening on %s\n", prog, bound);
	}

	wait_final(s, cfg, "destination", &timed_out);
	tern_stats_get(s, &st);
	if (timed_out)
		msg = "timed out";
	else if (st.status == TERN_STATUS_COMPLETED &&
		 !__atomic_load_n(&ctx.resumed, __ATOMIC_ACQUIRE))
		msg = "completed but the resume callback was not called";
	print_json("destination", uri_transport(bound), cfg, &st, NULL, msg);
	tern_session_free(s);
	if (!strncmp(bound, "unix:", 5))
		unlink(bound + 5);
	munmap(ram, cfg->ram);
	return side_ok(&st, cfg) && !msg ? 0 : 1;
}

static int run_source(const struct lb_cfg *cfg, const char *uri)
{
	static const struct tern_vmm_ops ops = {
	    .pause = src_pause, .resume = src_resume, .throttle = src_throttle};
	struct lb_writer w = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct tern_session *s = NULL;
	struct tern_ram_block *block = NULL;
	char mgmt_err[sizeof(err.msg) + 16] = "";
	bool timed_out = false;
	const char *msg = NULL;
	uint8_t *ram;
	int ret;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	ram = ram_alloc(cfg->ram);
	if (!ram)
		die("source: cannot allocate %" PRIu64 " bytes", cfg->ram);
	madvise(ram, cfg->ram, MADV_HUGEPAGE);
	ram_fill(ram, cfg);

	ret = tern_session_new(&ops, &w, &s, &err);
	if (!ret)
		ret = session_setup(s, cfg, "src", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, &block, &err);
	if (!ret) {
		w.ram = ram;
		w.ws = cfg->dirty_ws < cfg->ram ? cfg->dirty_ws : cfg->ram;
		w.ws -= w.ws % cfg->page_size;
		w.rate = cfg->dirty_rate;
		w.page_size = cfg->page_size;
		w.fill = cfg->fill;
		w.dirty_bytes = cfg->dirty_bytes;
		w.block = block;
		w.seed = (cfg->seed ? cfg->seed : 0x2545f4914f6cdd1dull) ^ 0xd1b54a32d192ed03ull;
		ret = writer_start(&w);
		if (ret < 0)
			snprintf(err.msg, sizeof(err.msg), "writer thread: %s", strerror(-ret));
	}
	if (!ret)
		ret = tern_migrate(s, uri, &err);
	if (!ret && cfg->mgmt && tern_mgmt_listen(s, cfg->mgmt, &err)) {
		/* running already: cancel it, and say why */
		snprintf(mgmt_err, sizeof(mgmt_err), "--mgmt: %s", err.msg);
		tern_cancel(s);
	}
	if (ret < 0) {
		if (!err.msg[0])
			snprintf(err.msg, sizeof(err.msg), "source setup: %s", strerror(-ret));
		st.status = TERN_STATUS_FAILED;
		print_json("source", uri_transport(uri), cfg, &st, NULL, err.msg);
		tern_session_free(s);
		writer_stop(&w);
		return 1;
	}

	wait_final(s, cfg, "source", &timed_out);
	tern_stats_get(s, &st);
	/* join the library's threads first: no callback may run after this */
	tern_session_free(s);
	writer_stop(&w);
	if (mgmt_err[0])
		msg = mgmt_err;
	else if (timed_out)
		msg = "timed out";
	else if (st.status == TERN_STATUS_COMPLETED && w.pauses == 0)
		msg = "completed but the pause callback was not called";
	else if (st.status == TERN_STATUS_COMPLETED && w.pauses <= w.resumes)
		/* the library rehearses a pause and a resume at setup: the last
		 * pause, for switchover, must have no resume after it */
		msg = "completed but the source guest was resumed";
	print_json("source", uri_transport(uri), cfg, &st, &w, msg);
	if (cfg->log_level >= LOG_INFO && cfg->dirty_rate)
		fprintf(stderr, "%s: writer dirtied %" PRIu64 " pages\n", prog, w.pages_written);
	munmap(ram, cfg->ram);
	return side_ok(&st, cfg) && !msg ? 0 : 1;
}

/* Wait up to @grace_ms for the child, then kill it. Returns its exit status (or 1). */
static int reap_child(pid_t pid, unsigned int grace_ms)
{
	int status = 0;
	unsigned int waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return 1;
		if (waited >= grace_ms) {
			fprintf(stderr,
				"%s: destination still running %u ms after the source ended, "
				"killing it\n",
				prog, grace_ms);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 1;
		}
		usleep(10000);
		waited += 10;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "%s: destination killed by signal %d\n", prog,
		WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return 1;
}

static int run_both(const struct lb_cfg *cfg)
{
	char uri[LB_URI_MAX], src_line[LB_LINE_MAX] = "";
	size_t got = 0;
	int fds[2], src_ret, dst_ret;
	pid_t pid;

	if (pipe(fds))
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		char listen_uri[LB_URI_MAX];

		close(fds[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!strcmp(cfg->transport, "unix")) {
			snprintf(listen_uri, sizeof(listen_uri), "unix:/tmp/tern-loopback-%d.sock",
				 (int)getpid());
			unlink(listen_uri + 5);
		} else {
			snprintf(listen_uri, sizeof(listen_uri), "tcp:127.0.0.1:0");
		}
		_exit(run_destination(cfg, listen_uri, fds[1], cfg->mgmt_dest));
	}
	close(fds[1]);
	while (got < sizeof(uri)) {
		ssize_t n = read(fds[0], uri + got, sizeof(uri) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(uri, '\0', got))
			break;
	}
	close(fds[0]);
	if (!got || !memchr(uri, '\0', got)) {
		fprintf(stderr, "%s: the destination did not start\n", prog);
		reap_child(pid, 10000);
		return 1;
	}
	deferred_line = src_line;
	src_ret = run_source(cfg, uri);
	deferred_line = NULL;
	/* the destination ends with the source; give it time on failure */
	dst_ret = reap_child(pid, src_ret ? 30000 : 60000);
	if (src_line[0])
		emit_line(src_line);
	return src_ret || dst_ret ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options]\n"
		"  --ram SIZE             memory to migrate (default 256M; 1G, 1GiB, ...)\n"
		"  --channels N           worker channels, 1..%d (default 2)\n"
		"  --transport tcp|unix   loopback transport (default tcp)\n"
		"  --zero-pct P           percentage of pages left zero (default 0)\n"
		"  --zero-run N           zero or not is decided for runs of N pages\n"
		"                         (default 1: scattered; 512: 2 MiB runs)\n"
		"  --fill random|text     page contents (default random)\n"
		"  --dirty-rate B/s       source writer dirties this much per second (default 0)\n"
		"  --dirty-ws SIZE        ... within the first SIZE bytes (default: all RAM)\n"
		"  --downtime-limit MS    downtime-limit parameter\n"
		"  --max-bandwidth B/s    max-bandwidth parameter (default unlimited)\n"
		"  --dirty-bytes N        ... rewriting N bytes of a page per write, not the\n"
		"                         whole page (default: whole pages)\n"
		"  --verify               verify-ram capability on both sides\n"
		"  --codec NAME           multifd-compression: none (default), zlib, zstd,\n"
		"                         xbzrle, auto\n"
		"  --zlib-level N         multifd-zlib-level, 1..9\n"
		"  --zstd-level N         multifd-zstd-level, 1..20\n"
		"  --xbzrle-cache SIZE    xbzrle-cache-size (default 64M)\n"
		"  --incoming URI         run the destination only, listening on URI\n"
		"  --migrate-to URI       run the source only, migrating to URI\n"
		"  --timeout S            cancel after S seconds (default 600, 0 = never)\n"
		"  --seed N               fill seed\n"
		"  --mgmt PATH            management socket of this process's side (the\n"
		"                         source, or the destination with --incoming)\n"
		"  --mgmt-dest PATH       management socket of the forked destination\n"
		"  --auto-converge        source: auto-converge (throttles the writer)\n"
		"  --cpu-throttle-initial P    source: cpu-throttle-initial, 1..99\n"
		"  --cpu-throttle-increment P  source: cpu-throttle-increment, 1..99\n"
		"  --max-cpu-throttle P   source: max-cpu-throttle, 1..99\n"
		"  --migration-timeout S  source: migration-timeout, 0..31536000 s\n"
		"  --timeout-policy P     source: migration-timeout-policy, cancel | force\n"
		"  --pause-before-switchover  source: wait in pre-switchover until\n"
		"                         `continue` on the source's --mgmt socket\n"
		"  -v, --verbose          library log at LOG_INFO (twice: LOG_DEBUG)\n"
		"  -q, --quiet            no library log at all\n",
		prog, TERN_MAX_CHANNELS);
}

int main(int argc, char **argv)
{
	enum {
		OPT_RAM = 256,
		OPT_CHANNELS,
		OPT_TRANSPORT,
		OPT_ZERO_PCT,
		OPT_ZERO_RUN,
		OPT_FILL,
		OPT_DIRTY_RATE,
		OPT_DIRTY_WS,
		OPT_DOWNTIME,
		OPT_MAX_BW,
		OPT_VERIFY,
		OPT_INCOMING,
		OPT_MIGRATE_TO,
		OPT_TIMEOUT,
		OPT_SEED,
		OPT_CODEC,
		OPT_ZLIB_LEVEL,
		OPT_ZSTD_LEVEL,
		OPT_XBZRLE_CACHE,
		OPT_DIRTY_BYTES,
		OPT_MGMT,
		OPT_MGMT_DEST,
		OPT_AUTO_CONVERGE,
		OPT_THROTTLE_INITIAL,
		OPT_THROTTLE_INCREMENT,
		OPT_MAX_THROTTLE,
		OPT_MIGRATION_TIMEOUT,
		OPT_TIMEOUT_POLICY,
		OPT_PAUSE_BEFORE_SWITCHOVER,
	};
	static const struct option longopts[] = {
	    {"ram", required_argument, NULL, OPT_RAM},
	    {"channels", required_argument, NULL, OPT_CHANNELS},
	    {"transport", required_argument, NULL, OPT_TRANSPORT},
	    {"zero-pct", required_argument, NULL, OPT_ZERO_PCT},
	    {"zero-run", required_argument, NULL, OPT_ZERO_RUN},
	    {"fill", required_argument, NULL, OPT_FILL},
	    {"dirty-rate", required_argument, NULL, OPT_DIRTY_RATE},
	    {"dirty-ws", required_argument, NULL, OPT_DIRTY_WS},
	    {"downtime-limit", required_argument, NULL, OPT_DOWNTIME},
	    {"max-bandwidth", required_argument, NULL, OPT_MAX_BW},
	    {"verify", no_argument, NULL, OPT_VERIFY},
	    {"incoming", required_argument, NULL, OPT_INCOMING},
	    {"migrate-to", required_argument, NULL, OPT_MIGRATE_TO},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"codec", required_argument, NULL, OPT_CODEC},
	    {"zlib-level", required_argument, NULL, OPT_ZLIB_LEVEL},
	    {"zstd-level", required_argument, NULL, OPT_ZSTD_LEVEL},
	    {"xbzrle-cache", required_argument, NULL, OPT_XBZRLE_CACHE},
	    {"dirty-bytes", required_argument, NULL, OPT_DIRTY_BYTES},
	    {"mgmt", required_argument, NULL, OPT_MGMT},
	    {"mgmt-dest", required_argument, NULL, OPT_MGMT_DEST},
	    {"auto-converge", no_argument, NULL, OPT_AUTO_CONVERGE},
	    {"cpu-throttle-initial", required_argument, NULL, OPT_THROTTLE_INITIAL},
	    {"cpu-throttle-increment", required_argument, NULL, OPT_THROTTLE_INCREMENT},
	    {"max-cpu-throttle", required_argument, NULL, OPT_MAX_THROTTLE},
	    {"migration-timeout", required_argument, NULL, OPT_MIGRATION_TIMEOUT},
	    {"timeout-policy", required_argument, NULL, OPT_TIMEOUT_POLICY},
	    {"pause-before-switchover", no_argument, NULL, OPT_PAUSE_BEFORE_SWITCHOVER},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct lb_cfg cfg = {
	    .ram = 256ull << 20,
	    .channels = 2,
	    .transport = "tcp",
	    .fill = LB_FILL_RANDOM,
	    .timeout_s = 600,
	    .log_level = LOG_WARNING,
	    .codec = "none",
	};
	bool source_only = false;
	int c;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_RAM:
			cfg.ram = opt_size("--ram", optarg);
			break;
		case OPT_CHANNELS:
			cfg.channels =
			    (unsigned int)opt_uint("--channels", optarg, TERN_MAX_CHANNELS);
			break;
		case OPT_TRANSPORT:
			if (strcmp(optarg, "tcp") && strcmp(optarg, "unix"))
				die("--transport: tcp or unix, not '%s'", optarg);
			cfg.transport = optarg;
			break;
		case OPT_ZERO_PCT: {
			char *end;

			cfg.zero_pct = strtod(optarg, &end);
			if (end == optarg || *end || cfg.zero_pct < 0 || cfg.zero_pct > 100)
				die("--zero-pct: 0..100, not '%s'", optarg);
			break;
		}
		case OPT_ZERO_RUN: {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (end == optarg || *end || !v || v > (1ull << 30))
				die("--zero-run: a page count 1..2^30, not '%s'", optarg);
			cfg.zero_run = v;
			break;
		}
		case OPT_FILL:
			if (!strcmp(optarg, "random"))
				cfg.fill = LB_FILL_RANDOM;
			else if (!strcmp(optarg, "text"))
				cfg.fill = LB_FILL_TEXT;
			else
				die("--fill: random or text, not '%s'", optarg);
			break;
		case OPT_DIRTY_RATE:
			cfg.dirty_rate = opt_size("--dirty-rate", optarg);
			break;
		case OPT_DIRTY_WS:
			cfg.dirty_ws = opt_size("--dirty-ws", optarg);
			break;
		case OPT_DOWNTIME:
			cfg.downtime_limit = opt_uint("--downtime-limit", optarg, 2000000);
			break;
		case OPT_MAX_BW:
			cfg.max_bandwidth = opt_size("--max-bandwidth", optarg);
			break;
		case OPT_VERIFY:
			cfg.verify = true;
			break;
		case OPT_INCOMING:
			cfg.incoming = optarg;
			break;
		case OPT_MIGRATE_TO:
			cfg.migrate_to = optarg;
			break;
		case OPT_TIMEOUT:
			cfg.timeout_s = (unsigned int)opt_uint("--timeout", optarg, 86400);
			break;
		case OPT_SEED:
			cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case OPT_CODEC:
			if (strcmp(optarg, "none") && strcmp(optarg, "zlib") &&
			    strcmp(optarg, "zstd") && strcmp(optarg, "xbzrle") &&
			    strcmp(optarg, "auto"))
				die("--codec: none, zlib, zstd, xbzrle or auto, not '%s'", optarg);
			cfg.codec = optarg;
			break;
		case OPT_ZLIB_LEVEL:
			cfg.zlib_level = opt_uint("--zlib-level", optarg, 9);
			if (!cfg.zlib_level)
				die("--zlib-level: 1..9");
			break;
		case OPT_ZSTD_LEVEL:
			cfg.zstd_level = opt_uint("--zstd-level", optarg, 20);
			if (!cfg.zstd_level)
				die("--zstd-level: 1..20");
			break;
		case OPT_XBZRLE_CACHE:
			cfg.xbzrle_cache = opt_size("--xbzrle-cache", optarg);
			break;
		case OPT_DIRTY_BYTES:
			cfg.dirty_bytes = opt_uint("--dirty-bytes", optarg, 1u << 20);
			break;
		case OPT_MGMT:
			if (!optarg[0])
				die("--mgmt: a socket path");
			cfg.mgmt = optarg;
			break;
		case OPT_MGMT_DEST:
			if (!optarg[0])
				die("--mgmt-dest: a socket path");
			cfg.mgmt_dest = optarg;
			break;
		case OPT_AUTO_CONVERGE:
			cfg.auto_converge = true;
			source_only = true;
			break;
		case OPT_THROTTLE_INITIAL:
			cfg.throttle_initial = opt_uint("--cpu-throttle-initial", optarg, 99);
			if (!cfg.throttle_initial)
				die("--cpu-throttle-initial: 1..99");
			source_only = true;
			break;
		case OPT_THROTTLE_INCREMENT:
			cfg.throttle_increment = opt_uint("--cpu-throttle-increment", optarg, 99);
			if (!cfg.throttle_increment)
				die("--cpu-throttle-increment: 1..99");
			source_only = true;
			break;
		case OPT_MAX_THROTTLE:
			cfg.max_throttle = opt_uint("--max-cpu-throttle", optarg, 99);
			if (!cfg.max_throttle)
				die("--max-cpu-throttle: 1..99");
			source_only = true;
			break;
		case OPT_MIGRATION_TIMEOUT:
			cfg.migration_timeout = opt_uint("--migration-timeout", optarg, 31536000);
			source_only = true;
			break;
		case OPT_TIMEOUT_POLICY:
			if (strcmp(optarg, "cancel") && strcmp(optarg, "force"))
				die("--timeout-policy: cancel or force, not '%s'", optarg);
			cfg.timeout_policy = optarg;
			source_only = true;
			break;
		case OPT_PAUSE_BEFORE_SWITCHOVER:
			cfg.pause_before_switchover = true;
			source_only = true;
			break;
		case 'v':
			cfg.log_level = cfg.log_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
			break;
		case 'q':
			cfg.log_level = -1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	t_start_ns = now_ns();
	cfg.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (!cfg.ram || cfg.ram % cfg.page_size)
		die("--ram: a non-zero multiple of the page size (%zu)", cfg.page_size);
	if (!cfg.channels)
		die("--channels: 1..%d", TERN_MAX_CHANNELS);
	if (cfg.incoming && cfg.migrate_to)
		die("--incoming and --migrate-to are exclusive");
	if (!cfg.dirty_ws)
		cfg.dirty_ws = cfg.ram;
	if (cfg.dirty_ws < cfg.page_size && cfg.dirty_rate)
		die("--dirty-ws: at least one page");
	if (cfg.dirty_bytes >= cfg.page_size)
		die("--dirty-bytes: less than a page (%zu)", cfg.page_size);
	if (source_only && cfg.incoming)
		die("--auto-converge, --cpu-throttle-*, --max-cpu-throttle, --migration-timeout, "
		    "--timeout-policy and --pause-before-switchover are source options");
	if (cfg.mgmt_dest && (cfg.incoming || cfg.migrate_to))
		die("--mgmt-dest: only when both sides run here (with --incoming, use --mgmt)");
	if (cfg.mgmt && cfg.mgmt_dest && !strcmp(cfg.mgmt, cfg.mgmt_dest))
		die("--mgmt and --mgmt-dest: two different paths");
	/* nothing but a `continue` on the source's socket would end the wait */
	if (cfg.pause_before_switchover && !cfg.mgmt)
		die("--pause-before-switchover needs --mgmt (continue comes through it)");
	signal(SIGPIPE, SIG_IGN);

	if (cfg.incoming) {
		cfg.transport = uri_transport(cfg.incoming);
		return run_destination(&cfg, cfg.incoming, -1, cfg.mgmt);
	}
	if (cfg.migrate_to) {
		cfg.transport = uri_transport(cfg.migrate_to);
		return run_source(&cfg, cfg.migrate_to);
	}
	return run_both(&cfg);
}
