/* SPDX-License-Identifier: MIT */
/*
 * What the parts of tern-loopback share: the options (struct lb_cfg), the
 * source's writer thread (struct lb_writer), and the calls between
 * tern-loopback.c (options, the two processes), lb_side.c (one migration
 * side), lb_writer.c (guest memory and the writer) and lb_report.c (stderr
 * and the JSON lines). Private to this program; it uses the public API only.
 */
#ifndef TERN_EXAMPLES_LB_H
#define TERN_EXAMPLES_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <time.h>

#include <tern/tern.h>
#include "common/converge_opts.h"

#define LB_HUGE_ALIGN (2ull << 20)
#define LB_THROTTLE_PERIOD_NS 100000000ull /* 100 ms */
#define LB_URI_MAX 256
#define LB_LINE_MAX 8192

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
	uint64_t avail_switchover_bandwidth;
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
	const char *rdma_addr; /* --transport rdma: the address both sides use */
	bool rdma_pin_all;
	uint64_t rdma_pin_limit;	/* 0: the default */
	bool zero_copy_send;		/* source: the zero-copy-send capability */
	bool postcopy;			/* postcopy-ram on both sides */
	uint64_t postcopy_after_ms;	/* source: tern_postcopy_start() this long
					 * after tern_migrate() (0: only through
					 * the management socket) */
	bool dest_read;			/* postcopy: the destination's guest reads
					 * its working set instead of writing it */
	uint64_t pc_recover_timeout_ms; /* postcopy-recover-timeout (0: none) */
	uint64_t io_timeout_ms;		/* io-timeout, both sides (0: the default) */
	/* source only; 0 / NULL: the library's default */
	struct converge_opts conv; /* the source's convergence options */
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
	/* the destination's guest in postcopy: no block to mark (NULL), and
	 * with @read_only it reads pages (a checksum) instead of writing */
	bool read_only;
	uint64_t read_sum;
};

extern const char *const lb_prog;

static inline uint64_t lb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* lb_writer.c */
uint8_t *lb_ram_alloc(uint64_t size);
uint64_t lb_ram_fill(uint8_t *ram, const struct lb_cfg *cfg);
int lb_writer_start(struct lb_writer *w);
void lb_writer_stop(struct lb_writer *w);
void lb_writer_fini(struct lb_writer *w);
int lb_writer_pause(void *opaque, struct tern_error *err);
void lb_writer_resume(void *opaque);
void lb_writer_throttle(void *opaque, unsigned int percent);

/* lb_report.c */
void lb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void lb_log_start(void);
void lb_log_to_stderr(void *opaque, int level, const char *msg);
void lb_emit_line(const char *line);
void lb_defer_line(char *buf);
/* The process's CPU time is counted from here (the migration's start) to the
 * JSON line: "cpu_user_us" and "cpu_sys_us", every thread of the process. */
void lb_cpu_mark(void);
bool lb_side_ok(const struct tern_stats *st, const struct lb_cfg *cfg);
void lb_print_json(const char *side, const char *transport, const struct lb_cfg *cfg,
		   const struct tern_stats *st, const struct lb_writer *w, const char *extra_err);

/* lb_side.c */
const char *lb_uri_transport(const char *uri);
int lb_run_destination(const struct lb_cfg *cfg, const char *uri, int uri_fd, const char *mgmt);
int lb_run_source(const struct lb_cfg *cfg, const char *uri);

#endif /* TERN_EXAMPLES_LB_H */
