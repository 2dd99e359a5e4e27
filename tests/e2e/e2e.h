/* SPDX-License-Identifier: MIT */
/*
 * e2e_migrate's shared types: the test's configuration, the device sections,
 * the destination's report and the checks the source runs on it.
 */
#ifndef TERN_E2E_H
#define TERN_E2E_H

#include "e2e_util.h"

#define E2E_URI_MAX 256
#define E2E_REPORT_MAGIC 0x7465726eu /* "tern" */
#define E2E_CHUNK (1u << 20)
#define E2E_NSECTIONS 2
#define E2E_MAX_REPORTED_DIFFS 8

struct e2e_cfg {
	const char *transport;
	unsigned int channels;
	uint64_t ram;
	double zero_pct;
	uint64_t ws;
	uint64_t dirty_rate;
	uint64_t downtime_limit;
	uint64_t max_bandwidth;
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
};

struct e2e_src {
	const struct e2e_cfg *cfg;
	struct e2e_writer writer;
	struct e2e_section sec[E2E_NSECTIONS];
	unsigned int failures;
};

/* What the fill left, so that stats can be bounded from both sides. */
struct e2e_fill_counts {
	uint64_t pages;
	uint64_t zero;
	uint64_t zero_outside_ws;
	uint64_t data_outside_ws;
};

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

#endif /* TERN_E2E_H */
