/* SPDX-License-Identifier: MIT */
/*
 * The e2e programs' shared types: the test's configuration, the device
 * sections, the destination's report, the two-process harness (e2e_pair.c)
 * and the checks the source runs on the report (e2e_check.c).
 */
#ifndef TERN_E2E_H
#define TERN_E2E_H

#include "e2e_util.h"

#define E2E_URI_MAX 256
#define E2E_REPORT_MAGIC 0x7465726eu /* "tern" */
#define E2E_CHUNK (1u << 20)
#define E2E_NSECTIONS 2
#define E2E_MAX_REPORTED_DIFFS 8
#define E2E_MAX_THROTTLE_CALLS 256

struct e2e_cfg {
	const char *transport;
	unsigned int channels;
	uint64_t ram;
	double zero_pct;
	uint64_t ws;
	uint64_t dirty_rate;
	uint64_t downtime_limit;
	uint64_t max_bandwidth;
	uint64_t avail_switchover_bandwidth; /* 0: not declared */
	unsigned int timeout_s;
	unsigned int min_rounds;
	bool verify;
	const char *codec;	 /* multifd-compression */
	uint64_t xbzrle_cache;	 /* 0: the default */
	size_t dirty_bytes;	 /* writer rewrites this much of a page (0: all of it) */
	uint64_t max_writes;	 /* writer stops after that many (0: never) */
	bool expect_xbzrle_hits; /* assert hit rate > 50%, fewer wire bytes than none */
	uint64_t seed;
	int log_level;
	size_t page_size;
	bool sequential;	/* the writer cycles through the working set in order */
	bool no_zero_writes;	/* the writer never writes a zero page */
	bool expect_dirty_rate; /* assert the source's dirty rate is near the writer's */
	const char *rdma_addr;	/* rdma: the address both sides use ($TERN_RDMA_ADDR) */
	bool rdma_pin_all;
	uint64_t rdma_pin_limit; /* 0: the default */
	bool zero_copy_send;	 /* the source's zero-copy-send capability */
};

/*
 * One device section. Source: what save() wrote. Destination: what load()
 * read. The payload is u64 counter, u32 len, len bytes derived from the
 * counter and the salt, so a section saved at the wrong time (or not at
 * all, or garbled) does not match.
 */
struct e2e_section {
	const char *name;
	uint32_t instance;
	uint32_t version;
	uint32_t min_version;
	uint64_t salt;
	struct e2e_writer *writer; /* source only */
	/* set by save (migration thread) or load (load thread); read after the end */
	unsigned int calls;
	uint32_t loaded_version;
	uint64_t counter;
	uint32_t len;
	uint8_t *data;
	char err[160];
};

/* destination -> source, after the end */
struct e2e_report {
	uint32_t magic;
	uint32_t resumed;
	uint32_t ram_follows;
	uint32_t pad;
	struct tern_stats stats;
	struct {
		uint32_t calls;
		uint32_t version;
		uint64_t counter;
		uint64_t len;
	} sec[E2E_NSECTIONS];
	char msg[256];
	/* the destination process's user + system CPU from just before
	 * tern_incoming() to the final status, and the thread names it showed
	 * meanwhile (space-separated) */
	uint64_t proc_cpu_us;
	char names[E2E_NAMES_MAX * 16];
};

/* What the fill left, so that stats can be bounded from both sides. */
struct e2e_fill_counts {
	uint64_t pages;
	uint64_t zero;
	uint64_t zero_outside_ws;
	uint64_t data_outside_ws;
};

struct e2e_src {
	const struct e2e_cfg *cfg;
	struct e2e_writer writer;
	struct e2e_section sec[E2E_NSECTIONS];
	unsigned int failures;
	/* set by e2e_src_setup() */
	struct tern_session *s;
	struct tern_ram_block *block;
	uint8_t *ram;
	struct e2e_fill_counts fc;
	char uri[E2E_URI_MAX];
	/* the throttle callback's arguments, in order (migration thread; the
	 * count is published with release after the value) */
	unsigned int throttle_calls;
	unsigned int throttle_pct[E2E_MAX_THROTTLE_CALLS];
};

/* ---- the two-process harness (e2e_pair.c) ---- */

bool e2e_status_final(enum tern_status st);
/* Wait for a final status; after @timeout_s, cancel. Returns the status. */
enum tern_status e2e_wait_final(struct tern_session *s, unsigned int timeout_s,
				bool *ret_timed_out);
/* The source's callbacks: pause, resume and throttle the writer. */
extern const struct tern_vmm_ops e2e_src_ops;
/*
 * Source: fill RAM, read the destination's URI from @fd, create the session
 * (src->s) with e2e_src_ops and the configuration's parameters, register
 * RAM and sections, start the writer. The caller calls tern_migrate().
 * Returns 0, or -1 after printing why.
 */
int e2e_src_setup(struct e2e_src *src, const struct e2e_cfg *cfg, int fd);
/*
 * Source, once both sides ended: read the destination's report into @rep.
 * @expect_complete: the destination must have completed and resumed its
 * guest, and its RAM and sections are compared with ours; otherwise it must
 * not have completed nor resumed. Failures are counted. Returns 0, or -1
 * when no report came.
 */
int e2e_src_report(struct e2e_src *src, int fd, struct e2e_report *rep, bool expect_complete);
/* Free the session (joins the library's threads), stop the writer, free RAM. */
void e2e_src_free(struct e2e_src *src);
/*
 * Fork the destination (it runs to its end and sends its report), run
 * @source in this process with the other end of the report socket, reap
 * the child. The destination's exit status counts only when
 * @dst_must_complete. Returns the exit status for main(): 0 pass, 1 fail.
 */
int e2e_run_pair(const struct e2e_cfg *cfg,
		 int (*source)(const struct e2e_cfg *cfg, int fd, pid_t child, void *arg),
		 void *arg, bool dst_must_complete);

/* Destination RAM (streamed on @fd) against ours, frozen at switchover. */
void e2e_compare_ram(struct e2e_src *src, int fd, const uint8_t *ram);
/* Section bytes (streamed on @fd) against what save() wrote. */
void e2e_compare_sections(struct e2e_src *src, int fd, const struct e2e_report *rep);
/* The source's final stats against what the fill and the writer did. */
void e2e_check_stats(struct e2e_src *src, const struct tern_stats *st,
		     const struct e2e_fill_counts *fc, uint64_t writes);
/* Codec figures: both sides' agree, the method's codecs carried the pages. */
void e2e_check_codecs(struct e2e_src *src, const struct tern_stats *st,
		      const struct tern_stats *dst);
/*
 * A completed migration's downtime breakdown: the downtime_*_us parts add
 * up to downtime_ms (the verify part non-zero exactly with verify-ram), and
 * the expected_*_us parts add up to expected_downtime_ms, the round-trip
 * parts non-zero. @waited_us: the
 * least time the test kept it in pre-switchover. @pending: the last
 * round's estimate had RAM to count (expected_ram_us > 0).
 */
void e2e_check_breakdown(struct e2e_src *src, const struct tern_stats *st, uint64_t waited_us,
			 bool pending);
/*
 * A completed migration's CPU per thread class (both sides): the classes
 * that did the work are non-zero on their side and absent on the other, and
 * the classes add up to no more than the process's CPU over the migration
 * (@proc_us: the source's, from just before tern_migrate()). And the
 * library's threads were named: @names (the source's) and the report's.
 */
void e2e_check_cpu(struct e2e_src *src, const struct tern_stats *st, uint64_t proc_us,
		   const struct e2e_names *names, const struct e2e_report *rep);

#endif /* TERN_E2E_H */
