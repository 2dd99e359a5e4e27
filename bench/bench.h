/* SPDX-License-Identifier: MIT */
/*
 * tern-bench's pieces: the scenario (what the user asked for), one run (a
 * destination and a source tern-vm, their final JSON lines) and the report
 * (a line for a person or a JSON object per run, then medians).
 */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

struct bench_scenario {
	uint64_t ram; /* bytes */
	unsigned int vcpus;
	unsigned int channels;
	const char *transport; /* "tcp" | "unix" */
	uint64_t dirty_rate;   /* bytes/s, 0 = idle after the fill */
	uint64_t dirty_ws;
	uint64_t dirty_pages; /* the guest stops dirtying after so many; 0 = never */ /* bytes */
	const char *pattern;	     /* sequential | random | hot-cold */
	unsigned int zero_pct;	     /* 0..100 */
	const char *fill;	     /* random | text */
	unsigned int downtime_limit; /* ms */
	uint64_t max_bandwidth;	     /* bytes/s, 0 = unlimited */
	bool verify;
	unsigned int clear_bitmap_shift;
	const char *codec;     /* "none" only, for now */
	unsigned int watch_ms; /* 0 = tern-vm's default */
};

struct bench_opts {
	struct bench_scenario sc;
	unsigned int reps;
	bool json;
	const char *vm;		   /* tern-vm binary */
	unsigned int timeout_s;	   /* passed to tern-vm as --timeout */
	unsigned int kill_after_s; /* hard deadline of one run */
	const char *verbosity;	   /* NULL, "-v" or "-q": passed to tern-vm */
};

/* The figures copied from the source's line and summarised over reps. */
enum bench_fig {
	FIG_TOTAL_MS,
	FIG_SETUP_MS,
	FIG_DOWNTIME_MS,
	FIG_EXPECTED_DOWNTIME_MS,
	FIG_TRANSFERRED_BYTES,
	FIG_NORMAL_PAGES,
	FIG_ZERO_PAGES,
	FIG_ROUNDS,
	FIG_DIRTY_RATE_BPS,
	FIG_THROUGHPUT_BPS,
	FIG_DIRTY_SYNC_US,
	FIG_DIRTY_CLEAR_US,
	FIG_KVM_SYNC_NS,
	FIG_KVM_CLEAR_NS,
	FIG_FILL_MS,
	FIG_MAX
};

extern const char *const bench_fig_names[FIG_MAX];

struct bench_run {
	unsigned int index; /* 1-based */
	json_object *src;   /* the source's final line, or NULL */
	json_object *dst;   /* the destination's final line, or NULL */
	char src_exit[64];  /* "exit 0", "killed by signal 9 (sent by us)", ... */
	char dst_exit[64];
	int src_code; /* exit code, -1 if none */
	int dst_code;
	bool timed_out;
	bool interrupted;
	char problem[512]; /* what tern-bench itself saw go wrong, "" if nothing */
	double fig[FIG_MAX];
	bool have_fig[FIG_MAX];
	bool ok;
};

/* Set by SIGINT/SIGTERM: the current run is cancelled, no further run starts. */
extern volatile sig_atomic_t bench_interrupted;

/* bench_run.c: run the scenario once. @r is filled in; free it with bench_run_fini(). */
void bench_run_one(const struct bench_opts *o, unsigned int index, struct bench_run *r);
void bench_run_fini(struct bench_run *r);

/* Field readers for a tern-vm line: missing or mistyped fields read as the default. */
const char *bench_json_str(json_object *o, const char *key, const char *def);
bool bench_json_bool(json_object *o, const char *key, bool *ret);
bool bench_json_num(json_object *o, const char *key, double *ret);

/* bench_report.c */
void bench_print_scenario(const struct bench_opts *o, FILE *f);
json_object *bench_scenario_json(const struct bench_opts *o);
void bench_print_run(const struct bench_opts *o, const struct bench_run *r, FILE *f);
json_object *bench_run_json(const struct bench_opts *o, const struct bench_run *r);
void bench_print_summary(const struct bench_opts *o, const struct bench_run *runs, unsigned int n,
			 FILE *f);
json_object *bench_summary_json(const struct bench_opts *o, const struct bench_run *runs,
				unsigned int n);
void bench_fmt_size(uint64_t bytes, char *buf, size_t len);
void bench_fmt_rate(uint64_t bps, char *buf, size_t len);

#endif
