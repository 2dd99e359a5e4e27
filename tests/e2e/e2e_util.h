/* SPDX-License-Identifier: MIT */
/*
 * e2e helpers: RAM allocation, pseudo-random data, full-length I/O and the
 * source's writer thread. Public API only (tern/tern.h), like a VMM.
 */
#ifndef TERN_E2E_UTIL_H
#define TERN_E2E_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tern/tern.h>

#define E2E_HUGE_ALIGN (2ull << 20)

uint64_t e2e_now_ns(void);

/* "src" or "dst": prefixes every line the test prints on stderr. */
extern const char *e2e_side;
/* Print "[side] FAIL: ..." and count it in *@failures. */
void e2e_fail(unsigned int *failures, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "[side] ...". */
void e2e_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline uint64_t e2e_xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* splitmix64 finaliser: a well-mixed, never-zero-for-most-inputs seed from @x. */
static inline uint64_t e2e_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x ? x : 1;
}

void e2e_fill_random(void *buf, size_t len, uint64_t *rng);
bool e2e_is_zero(const void *buf, size_t len);

/* 4096, 64K, 256M, 1G, 1GiB: binary multiples. Returns 0 or -EINVAL / -ERANGE. */
int e2e_parse_size(const char *s, uint64_t *ret);

/* Fresh anonymous memory aligned to 2 MiB (over-allocated, then trimmed). */
void *e2e_ram_alloc(uint64_t size);

/* Whole-buffer I/O; return 0, -errno, or -EPIPE on a short read (EOF). */
int e2e_write_full(int fd, const void *buf, size_t len);
int e2e_read_full(int fd, void *buf, size_t len);

/*
 * struct e2e_writer - the source's "vCPU": rewrites pseudo-random pages of
 * the first @ws bytes at about @rate bytes/s, one in @zero_one_in of them
 * with zeros (so that pages go from data to zero), and calls
 * tern_ram_mark_dirty() after each write. pause() parks it and waits until it
 * says so; resume() lets it go on.
 *
 * With @dirty_bytes, a write rewrites only that many bytes at a random place
 * of the page (and never zeroes it): the workload XBZRLE is made for. @rate
 * still counts whole pages. With @max_writes, it stops writing after that
 * many (the guest goes idle, so the migration converges). With @sequential,
 * it writes the pages of the working set in order, round and round, so that
 * how much of it a time span dirties is exact (all of it, or rate x span).
 *
 * Throttle (auto-converge): e2e_writer_throttle() sets a percentage; the
 * writer then stays off for that share of every E2E_THROTTLE_PERIOD_NS and
 * never catches up afterwards (its pace counts only the time it was let
 * run), like a vCPU kept out of the guest.
 */
#define E2E_THROTTLE_PERIOD_NS 10000000ull
struct e2e_writer {
	/* immutable once started */
	uint8_t *ram;
	uint64_t ws;
	uint64_t rate;
	size_t page_size;
	unsigned int zero_one_in;
	size_t dirty_bytes;
	uint64_t max_writes;
	bool sequential;
	struct tern_ram_block *block;
	uint64_t seed;
	pthread_t thread;
	bool started;
	/* protected by ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;
	bool parked;
	bool quit;
	unsigned int pauses;
	unsigned int resumes;
	uint64_t paused_iter; /* ->iter when the last pause took effect */
	/* written by the writer thread only, atomically; read anywhere */
	uint64_t iter; /* pages written so far */
	uint64_t zero_writes;
	uint64_t throttled_ns; /* time kept off by the throttle */
	/* written by e2e_writer_throttle(), atomically */
	unsigned int throttle_pct;
};

void e2e_writer_init(struct e2e_writer *w);
int e2e_writer_start(struct e2e_writer *w);
/* Stop the writer thread for good; pause() and resume() return at once
 * afterwards (the library may still call them). */
void e2e_writer_stop(struct e2e_writer *w);
/* Once nothing may call into the writer any more. */
void e2e_writer_destroy(struct e2e_writer *w);
/* Park the writer and wait until it is parked. */
void e2e_writer_pause(struct e2e_writer *w);
void e2e_writer_resume(struct e2e_writer *w);
/* true when the writer is parked (or was never started) */
bool e2e_writer_is_parked(struct e2e_writer *w);
/* Keep the writer off @percent % of the time (0: run freely). Thread-safe. */
void e2e_writer_throttle(struct e2e_writer *w, unsigned int percent);
/* Pages written so far. Thread-safe. */
uint64_t e2e_writer_iter(struct e2e_writer *w);

/*
 * struct e2e_names - the thread names this process showed while it ran: a
 * thread of its own (e2e-names) reads /proc/self/task/STAR/comm every
 * millisecond and keeps each name it has not seen yet (the library names
 * its threads, so that top -H and profilers tell them apart).
 */
#define E2E_NAMES_MAX 64
struct e2e_names {
	pthread_t thread;
	bool started;
	bool quit; /* atomic */
	/* the watcher's until stopped, then the caller's */
	unsigned int n;
	char name[E2E_NAMES_MAX][16];
};

int e2e_names_start(struct e2e_names *nw);
void e2e_names_stop(struct e2e_names *nw);
/* After stop: whether @name was seen. */
bool e2e_names_seen(const struct e2e_names *nw, const char *name);
/* After stop: every name seen, space-separated, into @buf (cut to @len). */
void e2e_names_list(const struct e2e_names *nw, char *buf, size_t len);
/* This process's user + system CPU so far (getrusage(RUSAGE_SELF)), us. */
uint64_t e2e_process_cpu_us(void);

#endif /* TERN_E2E_UTIL_H */
