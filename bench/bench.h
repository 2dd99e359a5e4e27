/* SPDX-License-Identifier: MIT */
/*
 * tern-bench's pieces:
 *
 *   bench_matrix.c  the axes of a scenario, their values from flags or a
 *                   matrix file, the cartesian product (the scenarios)
 *   bench_link.c    a shaped link: two network namespaces, a veth pair, tbf
 *   bench_run.c     one run: a destination and a source (two tern-vm, or two
 *                   tern-loopback), their final JSON lines, the verdict
 *   bench_report.c  a line for a person and a JSON record per run
 *   bench_table.c   records grouped by scenario: medians, the table, --baseline
 *   bench_plot.c    gnuplot data, scripts and images from the same groups
 *
 * Every figure is a program's own (the library's stats); tern-bench reads
 * and summarises them and times nothing but a run's wall clock, kept as a
 * sanity field.
 */
#ifndef TERN_BENCH_H
#define TERN_BENCH_H

#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>

/* ---- axes and scenarios ------------------------------------------------------ */

/*
 * What a scenario is made of. The order is the order of the labels
 * ("codec=zstd channels=2") and of the cartesian product (the first axis
 * changes slowest).
 */
enum bench_axis {
	AX_LINK,
	AX_TRANSPORT,
	AX_CODEC,
	AX_CHANNELS,
	AX_RAM,
	AX_VCPUS,
	AX_FILL,
	AX_DIRTY_RATE,
	AX_DIRTY_WS,
	AX_PATTERN,
	AX_DOWNTIME,
	AX_AUTO_CONVERGE,
	AX_VERIFY,
	AX_MAX
};

enum bench_kind {
	AK_SIZE, /* bytes, K M G T = powers of 1024 */
	AK_RATE, /* bytes/s, K M G T = powers of 1000 */
	AK_UINT, /* a plain number */
	AK_WORD, /* one of ->words */
	AK_BOOL, /* on | off */
	AK_LINK, /* loopback | a tc rate: 1gbit, 500mbit, ... (num: bits/s, 0 = loopback) */
};

struct bench_axis_def {
	const char *name; /* the option without "--", and the matrix file's key */
	const char *json; /* the key in a record's "axes" object */
	enum bench_kind kind;
	const char *const *words; /* AK_WORD */
	uint64_t min, max;	  /* AK_SIZE, AK_RATE, AK_UINT */
	const char *def;	  /* the default, as text */
	bool kvm_only;		  /* means nothing to the process guest */
};

extern const struct bench_axis_def bench_axes[AX_MAX];

#define BENCH_VAL_TEXT 24
#define BENCH_AXIS_VALS_MAX 32
#define BENCH_SCENARIOS_MAX 4096
#define BENCH_LABEL_MAX 256
#define BENCH_KEY_MAX 512

/* One value of an axis: the number (bytes, bytes/s, ms, bits/s, 0/1) and its canonical text. */
struct bench_val {
	uint64_t num;
	char text[BENCH_VAL_TEXT]; /* "256M", "50M", "zstd", "1gbit", "on" */
};

struct bench_axis_vals {
	unsigned int n;
	bool given; /* by a flag or the matrix file, not the default */
	struct bench_val v[BENCH_AXIS_VALS_MAX];
};

struct bench_link;

struct bench_scenario {
	unsigned int index; /* 1-based, in matrix order */
	struct bench_val v[AX_MAX];
	char label[BENCH_LABEL_MAX]; /* the varying axes, "codec=zstd channels=2" */
	struct bench_link *link;     /* NULL on loopback */
};

enum bench_guest {
	GUEST_KVM = 1, /* tern-vm: a real KVM guest, needs /dev/kvm */
	GUEST_PROCESS, /* tern-loopback: anonymous memory and a writer thread */
};

struct bench_opts {
	struct bench_axis_vals ax[AX_MAX];
	struct bench_scenario *sc;
	unsigned int n_sc;
	enum bench_guest guest;
	const char *prog; /* tern-vm or tern-loopback: what runs on both sides */
	char *prog_help;  /* its --help, to check an option exists before passing it */
	unsigned int reps;
	/* per run, single-valued */
	uint64_t max_bandwidth; /* bytes/s, 0 = unlimited */
	unsigned int zero_pct;	/* of the random and text fills; fill=zero is ZERO_HEAVY_PCT */
	uint64_t dirty_pages;	/* kvm: the guest stops dirtying after so many */
	unsigned int clear_bitmap_shift;  /* kvm */
	unsigned int watch_ms;		  /* kvm: 0 = tern-vm's default */
	unsigned int timeout_s;		  /* each program's own --timeout */
	unsigned int kill_after_s;	  /* hard deadline of one run */
	unsigned int migration_timeout_s; /* passed only when set */
	bool migration_timeout_set;
	const char *timeout_policy; /* NULL = not passed */
	const char *mgmt;	    /* NULL = not passed */
	const char *verbosity;	    /* NULL, "-v" or "-q" */
	const char *tbf_burst;	    /* NULL = scaled with the rate */
	const char *tbf_latency;
	const char *rdma_addr; /* --transport rdma: both sides' address */
	bool rdma_pin_all;
	bool zero_copy_send; /* the source's zero-copy-send (tcp runs only) */
	bool json;
};

/* ZERO_HEAVY_PCT: the share of zero pages of fill=zero. */
#define ZERO_HEAVY_PCT 90

/* bench_matrix.c */
int bench_axis_by_name(const char *name);
int bench_axis_parse(enum bench_axis a, const char *s, struct bench_val *v, char *err, size_t len);
int bench_axis_parse_list(enum bench_axis a, const char *list, struct bench_axis_vals *vals,
			  char *err, size_t len);
int bench_matrix_read(const char *path, struct bench_axis_vals ax[AX_MAX], unsigned int *reps,
		      bool *reps_given, char *err, size_t len);
int bench_matrix_build(struct bench_opts *o, FILE *note, char *err, size_t len);
void bench_matrix_free(struct bench_opts *o);
json_object *bench_axis_json(enum bench_axis a, const struct bench_val *v);
bool bench_axis_from_json(enum bench_axis a, json_object *axes, struct bench_val *v);
const char *bench_fill_word(const struct bench_val *fill);
unsigned int bench_fill_zero_pct(const struct bench_opts *o, const struct bench_val *fill);

/* bench_link.c: a veth pair between two namespaces, tbf at @rate on both ends' egress. */
struct bench_link {
	uint64_t rate_bps;
	char rate[BENCH_VAL_TEXT];
	char burst[24];
	char latency[24];
	char ns_src[40], ns_dst[40];
	char dev_src[16], dev_dst[16];
	char addr_src[24], addr_dst[24];
	char ip[256]; /* ip's path: `ip netns exec NS prog ...` runs a side in its namespace */
	bool made_src, made_dst;
};

int bench_link_check(char *err, size_t len);
int bench_link_up(struct bench_link *l, unsigned int index, const struct bench_val *rate,
		  const char *burst, const char *latency, char *err, size_t len);
void bench_link_describe(const struct bench_link *l, FILE *f);
void bench_link_down(struct bench_link *l);

/* ---- runs -------------------------------------------------------------------- */

struct bench_run {
	const struct bench_scenario *sc;
	unsigned int seq;  /* 1-based over the whole invocation */
	unsigned int rep;  /* 1-based */
	json_object *src;  /* the source's final line, or NULL */
	json_object *dst;  /* the destination's final line, or NULL */
	char src_exit[64]; /* "exit 0", "killed by signal 9 (sent by us)", ... */
	char dst_exit[64];
	int src_code; /* exit code, -1 if none */
	int dst_code;
	bool timed_out;
	bool interrupted;
	char problem[512]; /* what tern-bench itself saw go wrong, "" if nothing */
	double wall_ms;	   /* destination start to both reaped: a sanity field */
	bool ok;
	/* The error of a side that failed while the other still ran, "" if none. */
	char first_error[320];
};

/* Set by SIGINT/SIGTERM/SIGHUP: the current run is cancelled, no further run starts. */
extern volatile sig_atomic_t bench_interrupted;

/* bench_run.c: run @sc once. @r is filled in; free it with bench_run_fini(). */
void bench_run_one(const struct bench_opts *o, const struct bench_scenario *sc, unsigned int seq,
		   unsigned int rep, struct bench_run *r);
void bench_run_fini(struct bench_run *r);

/* Field readers: missing or mistyped fields read as the default / false. */
const char *bench_json_str(json_object *o, const char *key, const char *def);
bool bench_json_bool(json_object *o, const char *key, bool *ret);
bool bench_json_num(json_object *o, const char *key, double *ret);

/* bench_report.c */
const char *bench_guest_name(enum bench_guest g);
void bench_print_plan(const struct bench_opts *o, FILE *f);
void bench_print_run(const struct bench_opts *o, const struct bench_run *r, FILE *f);
json_object *bench_run_json(const struct bench_opts *o, const struct bench_run *r);
void bench_fmt_size(uint64_t bytes, char *buf, size_t len);
void bench_fmt_rate(uint64_t bps, char *buf, size_t len);

/* ---- results: records grouped by scenario --------------------------------------- */

/* The source's figures a record carries, summarised per scenario. */
extern const char *const bench_fig_names[];
extern const unsigned int bench_fig_count;

/*
 * What the migration cost each side in CPU (the programs' cpu_* fields,
 * common/stats_json.c): per thread class, in the order the table shows
 * them. A record carries the source's under the programs' names and the
 * destination's with "dest_" before them.
 */
extern const char *const bench_cpu_classes[];
extern const unsigned int bench_cpu_class_count;
/* The classes that are one thread per side: their ceiling caps the whole migration. */
bool bench_cpu_class_serial(const char *cls);
/*
 * bench_cpu_key() - the record's name of a CPU figure: @what "s_per_gib",
 * "user_us" or "sys_us" of class @cls, or of the side's total when @cls is
 * NULL ("cpu_s_per_gib", "cpu_lib_user_us", ...); "dest_" first when @dest.
 */
void bench_cpu_key(char *buf, size_t len, bool dest, const char *cls, const char *what);

struct bench_group {
	char key[BENCH_KEY_MAX];     /* guest and every axis: what --baseline matches on */
	char label[BENCH_LABEL_MAX]; /* the axes that vary in this result set */
	char guest[16];
	struct bench_val v[AX_MAX];
	json_object **rec;
	unsigned int n, cap;
	unsigned int completed, ok;
};

struct bench_results {
	struct bench_group *g;
	unsigned int n, cap;
	bool varies[AX_MAX];
	unsigned int skipped; /* lines that were not run records */
};

struct bench_stat {
	unsigned int n;
	double median, min, max;
};

/* bench_table.c */
int bench_results_add(struct bench_results *res, json_object *rec);
int bench_results_load(struct bench_results *res, const char *path, char *err, size_t len);
void bench_results_finish(struct bench_results *res);
void bench_results_fini(struct bench_results *res);
bool bench_group_stat(const struct bench_group *g, const char *field, struct bench_stat *st);
/* "verify on", "verify off", or that it varies: every table and plot says which. */
const char *bench_verify_caption(const struct bench_results *res);
void bench_print_table(const struct bench_results *res, FILE *f);
void bench_print_baseline(const struct bench_results *now, const struct bench_results *base,
			  const char *base_path, FILE *f);
json_object *bench_group_summary_json(const struct bench_group *g);

/* bench_plot.c: .dat, .gp and (with gnuplot on PATH) images in @dir. */
void bench_plots(const struct bench_results *res, const char *dir, FILE *f);
int bench_mkdir_p(const char *path);

#endif
