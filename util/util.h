/* SPDX-License-Identifier: MIT */
/*
 * util: what every layer shares and nothing else -- errors, logging,
 * monotonic time, big-endian byte order, atomic bitmaps, full-length I/O
 * helpers and thread CPU accounting. Depends on nothing of ours but the
 * public header's types.
 */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "tern/tern.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- errors ------------------------------------------------------------ */

/*
 * tern_error_set() - record @code and a message in @err unless one is there
 * already (first error wins). @err may be NULL. Returns @code, so that
 * "return tern_error_set(err, -EPROTO, ...)" reads as one step.
 */
int tern_error_set(struct tern_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like tern_error_set(), but puts "@prefix: " before an existing message. */
int tern_error_prefix(struct tern_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tern_error_clear(struct tern_error *err);

/* ---- logging ----------------------------------------------------------- */

struct tern_log {
	tern_log_fn fn;
	void *opaque;
	int level;
};

void tern_log_msg(const struct tern_log *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- time -------------------------------------------------------------- */

static inline uint64_t tern_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tern_now_ms(void)
{
	return tern_now_ns() / 1000000ull;
}

/* The CLOCK_REALTIME time @ms from now, for pthread_cond_timedwait(). */
static inline struct timespec tern_deadline_ms(uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* ---- byte order (the wire is big-endian) ------------------------------ */

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, 8);
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return __builtin_bswap64(v);
}

/* ---- bitmaps: 64 bits a word, bit i of word 0 is item i --------------- */

#define BITS_PER_WORD 64
#define BITMAP_WORDS(nbits) DIV_ROUND_UP((uint64_t)(nbits), BITS_PER_WORD)

uint64_t *bitmap_new(uint64_t nbits);
void bitmap_free(uint64_t *map);

static inline bool bitmap_test(const uint64_t *map, uint64_t bit)
{
	return (map[bit / 64] >> (bit % 64)) & 1;
}

static inline void bitmap_set(uint64_t *map, uint64_t bit)
{
	map[bit / 64] |= 1ull << (bit % 64);
}

static inline void bitmap_clear_bit(uint64_t *map, uint64_t bit)
{
	map[bit / 64] &= ~(1ull << (bit % 64));
}

/* Lock-free, for maps that several threads write (a word at a time). */
static inline void bitmap_set_atomic(uint64_t *map, uint64_t bit)
{
	__atomic_fetch_or(&map[bit / 64], 1ull << (bit % 64), __ATOMIC_RELAXED);
}

static inline bool bitmap_test_atomic(const uint64_t *map, uint64_t bit)
{
	return (__atomic_load_n(&map[bit / 64], __ATOMIC_RELAXED) >> (bit % 64)) & 1;
}

/* Set bits [start, start + n) atomically. */
void bitmap_set_range_atomic(uint64_t *map, uint64_t start, uint64_t n);
/* Set bits [start, start + n) (not atomic). */
void bitmap_set_range(uint64_t *map, uint64_t start, uint64_t n);
/* First set bit at or after @start, or @nbits when there is none. */
uint64_t bitmap_find_next(const uint64_t *map, uint64_t nbits, uint64_t start);
/* The first clear bit at or after @start, or @nbits: where a run of set bits ends. */
uint64_t bitmap_find_next_zero(const uint64_t *map, uint64_t nbits, uint64_t start);
/* Number of set bits among the first @nbits. */
uint64_t bitmap_count(const uint64_t *map, uint64_t nbits);
/*
 * Move every set bit of @src into @dst (dst |= src; src = 0), word by word
 * with an atomic exchange on @src: a bit set concurrently lands in one of the
 * two, never lost. Returns the number of bits taken from @src (whether or
 * not @dst had them already).
 */
uint64_t bitmap_drain_atomic(uint64_t *dst, uint64_t *src, uint64_t nbits);

/* ---- thread CPU accounting (cpu_acct.c) --------------------------------- */

/*
 * struct cpu_acct - a migration's CPU per thread class (enum
 * tern_cpu_class): the user and system microseconds its threads added
 * between cpu_acct_open() and cpu_acct_close(). Adds outside that window
 * are dropped. Every call is thread-safe.
 */
struct cpu_acct {
	pthread_mutex_t lock;
	/* protected by ->lock */
	bool open;
	uint64_t user_us[TERN_CPU_CLASSES];
	uint64_t sys_us[TERN_CPU_CLASSES];
};

void cpu_acct_init(struct cpu_acct *a);
void cpu_acct_fini(struct cpu_acct *a);
/* Zero the totals and start counting. */
void cpu_acct_open(struct cpu_acct *a);
/* Stop counting: the totals stay as they are until the next open. */
void cpu_acct_close(struct cpu_acct *a);
/* Add to @cls (an invalid class counts as other); false when closed (dropped). */
bool cpu_acct_add(struct cpu_acct *a, enum tern_cpu_class cls, uint64_t user_us, uint64_t sys_us);
void cpu_acct_get(struct cpu_acct *a, uint64_t user_us[TERN_CPU_CLASSES],
		  uint64_t sys_us[TERN_CPU_CLASSES]);

/*
 * struct cpu_thread - one thread's share: its usage when it last added to
 * @acct (getrusage(RUSAGE_THREAD), and its exact CPU clock). Only the
 * thread itself may call the functions below on it.
 */
struct cpu_thread {
	struct cpu_acct *acct; /* NULL: count nothing */
	enum tern_cpu_class cls;
	uint64_t user_us, sys_us;
	uint64_t run_ns; /* CLOCK_THREAD_CPUTIME_ID; 0: not read */
};

/*
 * cpu_thread_start() - on the thread it describes, at its start: name the
 * thread (printf-style @fmt, cut to the kernel's 15 bytes; NULL: keep its
 * name) and mark its usage. @a: NULL to name only.
 */
struct cpu_thread cpu_thread_start(struct cpu_acct *a, enum tern_cpu_class cls, const char *fmt,
				   ...) __attribute__((format(printf, 3, 4)));
/* Add the usage since the last mark to the class, and mark again. */
void cpu_thread_flush(struct cpu_thread *t);
/* Flush, then count what follows in @cls. */
void cpu_thread_switch(struct cpu_thread *t, enum tern_cpu_class cls);
/* Flush for the last time; later calls add nothing. */
void cpu_thread_end(struct cpu_thread *t);

/*
 * CPU_THREAD() - one declaration at the top of a thread's function: names
 * the thread, and adds its CPU to @acct's class @cls on every way out of
 * the function (the cleanup runs before the thread can be joined).
 *	CPU_THREAD(ct, s->cfg.cpu, TERN_CPU_SEND, "tern-send/%u", c->index);
 */
#define CPU_THREAD(var, acct, cls, ...)                                                            \
	struct cpu_thread var __attribute__((cleanup(cpu_thread_end), unused)) =                   \
	    cpu_thread_start(acct, cls, __VA_ARGS__)

/* The calling thread yields to the process's others from now on (nice). */
void thread_set_background(int nice);

/* ---- misc --------------------------------------------------------------- */

/* 16 random bytes (getrandom). */
int tern_uuid_generate(uint8_t uuid[16]);
/* "xxxxxxxx-xxxx-..." into @buf (37 bytes). */
void tern_uuid_format(const uint8_t uuid[16], char buf[37]);

/* Parse a decimal u64; -EINVAL on garbage or overflow. */
int parse_u64(const char *s, uint64_t *ret);

/*
 * unix_path_reclaim() - make @path free for bind() of a Unix socket: 0 when
 * nothing is there or when a stale socket (connect() refused: nobody listens)
 * was there and is now removed. -EADDRINUSE: a process listens there (the
 * file is left alone). -EEXIST: @path is not a socket (left alone). Another
 * negative errno: lstat(), connect() or unlink() failed (nothing removed
 * unless it was stale).
 */
int unix_path_reclaim(const char *path);

struct stat;
/* 1 when a socket in our network namespace listens on the file @st
 * describes, 0 when none does, negative errno when the kernel cannot say. */
int unix_sock_listening(const struct stat *st);

#endif /* TERN_UTIL_H */
