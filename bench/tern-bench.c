/* SPDX-License-Identifier: MIT */
/*
 * tern-bench: run a matrix of migration scenarios end to end and report the
 * figures.
 *
 * Every axis of a scenario (link, transport, codec, channels, RAM, vCPUs,
 * fill, dirty rate and working set, pattern, downtime limit, auto-converge)
 * takes a comma list, from a flag or a matrix file; the scenarios are their
 * cartesian product and the runs are interleaved (every scenario once, then
 * again in reverse order, --reps times) so that drift in the machine, and
 * the position after another scenario's run, hit all of them alike.
 *
 * Each run starts a destination and a source: two tern-vm processes (real
 * KVM guests, --guest kvm) or two tern-loopback processes (anonymous memory
 * and a writer thread, --guest process), over loopback or over a veth pair
 * between two network namespaces shaped with tc tbf (--link 1gbit). The
 * figures come from their final JSON lines (the library's stats): tern-bench
 * links nothing of libtern and times nothing but each run's wall clock,
 * which it keeps as a sanity field.
 *
 * Out: a line per run, a JSON record per run in a results file (JSON lines),
 * a table of medians (min..max) per scenario, plots through gnuplot, and
 * with --baseline the ratios of medians against an earlier results file.
 *
 * Exit status: 0 iff every run completed, verified (with --verify) and, with
 * a KVM guest, the guest kept making progress on the destination; 1
 * otherwise; 2 on a usage error; 130 when interrupted.
 */
#include "bench.h"
#include "bench_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 1000
/* a run's hard deadline beyond --timeout; tern-loopback's destination waits 30 s longer */
#define KILL_GRACE_KVM_S 30
#define KILL_GRACE_PROCESS_S 60
#define HELP_DEADLINE_S 10

static const char *prog = "tern-bench";

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s [options]\n"
	    "Live-migrates a guest between two processes on this host, for every scenario\n"
	    "of a matrix, and reports the figures. Defaults: one scenario, a 1 GiB guest\n"
	    "dirtying 64 MiB at 50 MB/s, 2 channels over loopback tcp, verify on, 1 rep.\n"
	    "\n"
	    "axes: each takes a comma list (--channels 1,2,4 --codec none,zstd); the\n"
	    "scenarios are the cartesian product, run interleaved (A B, then B A, ...):\n"
	    "  --link L                loopback (default) or a tbf rate: 1gbit, 10gbit,\n"
	    "                          500mbit (a veth pair between two network\n"
	    "                          namespaces made for the run; needs root)\n"
	    "  --transport tcp|unix|rdma  (default tcp; unix only on loopback; rdma\n"
	    "                          needs --rdma-addr: an RDMA device's address)\n"
	    "  --codec NAME            none zlib zstd xbzrle auto (default none)\n"
	    "  --channels N            worker channels, 1..64 (default 2)\n"
	    "  --ram SIZE              guest RAM (K M G = powers of 1024; default 1G)\n"
	    "  --vcpus N               vCPUs, kvm only (default 1)\n"
	    "  --fill F                random | text | zero (%d%% zero pages; default random)\n"
	    "  --dirty-rate RATE       bytes/s the guest keeps writing (K M G = 10^3 10^6\n"
	    "                          10^9; default 50M; 0 = idle after the fill)\n"
	    "  --dirty-ws SIZE         working set it writes to (default 64M)\n"
	    "  --pattern P             sequential|random|hot-cold, kvm only (default sequential)\n"
	    "  --downtime-limit MS     (default 300)\n"
	    "  --auto-converge[=on,off]  throttle a guest that does not converge (default off;\n"
	    "                          the flag alone: on)\n"
	    "  --verify[=on,off]       verify-ram: digest all RAM on both sides and compare\n"
	    "                          (default on; the flag alone: on); --no-verify = off\n"
	    "  --matrix FILE           axes (and reps) from FILE, a `key = v1, v2` per line,\n"
	    "                          # comments; a flag overrides its line\n"
	    "per run, one value:\n"
	    "  --guest kvm|process     tern-vm (a KVM guest) or tern-loopback (process memory\n"
	    "                          and a writer thread); default kvm if /dev/kvm exists\n"
	    "  --zero-pct P            zero pages of the random and text fills (default 0)\n"
	    "  --max-bandwidth RATE    bytes/s, 0 = unlimited (default 0)\n"
	    "  --rdma-addr ADDR        --transport rdma: the address both sides use, on\n"
	    "                          the RDMA device's netdev (default $TERN_RDMA_ADDR)\n"
	    "  --rdma-pin-all          --transport rdma: the rdma-pin-all capability\n"
	    "  --zero-copy-send        --transport tcp: the source's zero-copy-send capability\n"
	    "  --migration-timeout S   the library's migration-timeout (passed only when set)\n"
	    "  --timeout-policy P      cancel|force (passed only when set)\n"
	    "  --mgmt PATH             management socket: the source's at PATH, the\n"
	    "                          destination's at PATH.dst (passed only when set)\n"
	    "  --dirty-pages N         kvm: the guest stops dirtying after N page writes\n"
	    "  --clear-bitmap-shift N  kvm (default 18)\n"
	    "  --watch-ms MS           kvm: how long tern-vm watches the guest after resume\n"
	    "  --tbf-burst B, --tbf-latency T  the shaped link's tbf (default 256kb per\n"
	    "                          Gbit/s, at least 64kb; 10ms)\n"
	    "run:\n"
	    "  --reps N                runs of every scenario (default 1)\n"
	    "  --timeout S             each program's own --timeout (default 120)\n"
	    "  --kill-after S          kill both programs S s into a run (default: timeout\n"
	    "                          + %d with kvm, + %d with process)\n"
	    "  --vm PATH               tern-vm (default: ../vm/tern-vm next to this binary)\n"
	    "  --loopback PATH         tern-loopback (default: ../examples/tern-loopback)\n"
	    "  -v, -q                  passed to both programs\n"
	    "output:\n"
	    "  --out FILE              the results, a JSON record per run (default\n"
	    "                          OUT-DIR/<time>.jsonl)\n"
	    "  --out-dir DIR           (default results)\n"
	    "  --plot-dir DIR          (default: the results file without .jsonl, + -plots)\n"
	    "  --no-plots\n"
	    "  --baseline FILE         ratios of medians against an earlier results file\n"
	    "  --report FILE           run nothing: the table, plots and --baseline of FILE\n"
	    "  --json                  the records on stdout too (and a summary per scenario\n"
	    "                          when there was more than one run); the lines for a\n"
	    "                          person go to stderr\n"
	    "  -h, --help\n",
	    prog, ZERO_HEAVY_PCT, KILL_GRACE_KVM_S, KILL_GRACE_PROCESS_S);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(%s --help lists the options)\n", prog);
	exit(2);
}

static unsigned int opt_uint(const char *opt, const char *s, unsigned int min, unsigned int max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		die_usage("%s: bad value '%s' (%u..%u)", opt, s, min, max);
	return (unsigned int)v;
}

/* A single size or rate through the axis parser of the same kind. */
static uint64_t opt_bytes(enum bench_axis like, const char *opt, const char *s)
{
	struct bench_val v;
	char err[256];

	if (bench_axis_parse(like, s, &v, err, sizeof(err)))
		die_usage("%s: bad value '%s'", opt, s);
	return v.num;
}

/* @rel relative to the directory of this very binary (build/bench/ -> build/vm/). */
static char *next_to_self(const char *rel)
{
	char self[PATH_MAX], path[PATH_MAX + 64], *real;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return strdup(rel);
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/%s", dirname(self), rel);
	real = realpath(path, NULL);
	return real ? real : strdup(path);
}

enum {
	OPT_AXIS = 256, /* OPT_AXIS + enum bench_axis */
	OPT_MATRIX = OPT_AXIS + AX_MAX,
	OPT_GUEST,
	OPT_ZERO_PCT,
	OPT_MAXBW,
	OPT_NO_VERIFY,
	OPT_RDMA_ADDR,
	OPT_RDMA_PIN_ALL,
	OPT_ZERO_COPY_SEND,
	OPT_MIG_TIMEOUT,
	OPT_TIMEOUT_POLICY,
	OPT_MGMT,
	OPT_DIRTY_PAGES,
	OPT_CBS,
	OPT_WATCH,
	OPT_TBF_BURST,
	OPT_TBF_LATENCY,
	OPT_REPS,
	OPT_TIMEOUT,
	OPT_KILL_AFTER,
	OPT_VM,
	OPT_LOOPBACK,
	OPT_OUT,
	OPT_OUT_DIR,
	OPT_PLOT_DIR,
	OPT_NO_PLOTS,
	OPT_BASELINE,
	OPT_REPORT,
	OPT_JSON,
};

static const struct option long_opts[] = {
    {"link", required_argument, NULL, OPT_AXIS + AX_LINK},
    {"transport", required_argument, NULL, OPT_AXIS + AX_TRANSPORT},
    {"codec", required_argument, NULL, OPT_AXIS + AX_CODEC},
    {"channels", required_argument, NULL, OPT_AXIS + AX_CHANNELS},
    {"ram", required_argument, NULL, OPT_AXIS + AX_RAM},
    {"vcpus", required_argument, NULL, OPT_AXIS + AX_VCPUS},
    {"fill", required_argument, NULL, OPT_AXIS + AX_FILL},
    {"dirty-rate", required_argument, NULL, OPT_AXIS + AX_DIRTY_RATE},
    {"dirty-ws", required_argument, NULL, OPT_AXIS + AX_DIRTY_WS},
    {"pattern", required_argument, NULL, OPT_AXIS + AX_PATTERN},
    {"downtime-limit", required_argument, NULL, OPT_AXIS + AX_DOWNTIME},
    {"auto-converge", optional_argument, NULL, OPT_AXIS + AX_AUTO_CONVERGE},
    {"verify", optional_argument, NULL, OPT_AXIS + AX_VERIFY},
    {"matrix", required_argument, NULL, OPT_MATRIX},
    {"guest", required_argument, NULL, OPT_GUEST},
    {"zero-pct", required_argument, NULL, OPT_ZERO_PCT},
    {"max-bandwidth", required_argument, NULL, OPT_MAXBW},
    {"rdma-addr", required_argument, NULL, OPT_RDMA_ADDR},
    {"rdma-pin-all", no_argument, NULL, OPT_RDMA_PIN_ALL},
    {"zero-copy-send", no_argument, NULL, OPT_ZERO_COPY_SEND},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"migration-timeout", required_argument, NULL, OPT_MIG_TIMEOUT},
    {"timeout-policy", required_argument, NULL, OPT_TIMEOUT_POLICY},
    {"mgmt", required_argument, NULL, OPT_MGMT},
    {"dirty-pages", required_argument, NULL, OPT_DIRTY_PAGES},
    {"clear-bitmap-shift", required_argument, NULL, OPT_CBS},
    {"watch-ms", required_argument, NULL, OPT_WATCH},
    {"tbf-burst", required_argument, NULL, OPT_TBF_BURST},
    {"tbf-latency", required_argument, NULL, OPT_TBF_LATENCY},
    {"reps", required_argument, NULL, OPT_REPS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
    {"vm", required_argument, NULL, OPT_VM},
    {"loopback", required_argument, NULL, OPT_LOOPBACK},
    {"out", required_argument, NULL, OPT_OUT},
    {"out-dir", required_argument, NULL, OPT_OUT_DIR},
    {"plot-dir", required_argument, NULL, OPT_PLOT_DIR},
    {"no-plots", no_argument, NULL, OPT_NO_PLOTS},
    {"baseline", required_argument, NULL, OPT_BASELINE},
    {"report", required_argument, NULL, OPT_REPORT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What main() needs beyond struct bench_opts. */
struct cli {
	const char *matrix;
	const char *vm, *loopback;
	const char *out, *out_dir, *plot_dir;
	const char *baseline, *report;
	bool no_plots;
	bool reps_given, kill_after_given;
	bool dirty_pages_given, cbs_given, watch_given;
};

static void parse_opts(int argc, char **argv, struct bench_opts *o, struct cli *c)
{
	char err[512];
	int ch;

	*o = (struct bench_opts){
	    .reps = 1,
	    .clear_bitmap_shift = 18,
	    .timeout_s = 120,
	};
	*c = (struct cli){.out_dir = "results"};

	/* "+": no permutation, so a stray word stops the parse and is reported */
	while ((ch = getopt_long(argc, argv, "+hvq", long_opts, NULL)) != -1) {
		if (ch >= OPT_AXIS && ch < OPT_AXIS + AX_MAX) {
			enum bench_axis a = (enum bench_axis)(ch - OPT_AXIS);
			const char *val = optarg;

			/* --auto-converge alone is "on"; "--auto-converge on,off" works
			 * too; the same for --verify */
			if ((a == AX_AUTO_CONVERGE || a == AX_VERIFY) && !val)
				val =
				    optind < argc && argv[optind][0] != '-' ? argv[optind++] : "on";
			if (o->ax[a].given)
				die_usage("--%s given twice: give one comma list",
					  bench_axes[a].name);
			if (bench_axis_parse_list(a, val, &o->ax[a], err, sizeof(err)))
				die_usage("%s", err);
			continue;
		}
		switch (ch) {
		case OPT_MATRIX:
			c->matrix = optarg;
			break;
		case OPT_GUEST:
			if (!strcmp(optarg, "kvm"))
				o->guest = GUEST_KVM;
			else if (!strcmp(optarg, "process"))
				o->guest = GUEST_PROCESS;
			else
				die_usage("--guest: kvm or process, not '%s'", optarg);
			break;
		case OPT_ZERO_PCT:
			o->zero_pct = opt_uint("--zero-pct", optarg, 0, 100);
			break;
		case OPT_MAXBW:
			o->max_bandwidth = opt_bytes(AX_DIRTY_RATE, "--max-bandwidth", optarg);
			break;
		case OPT_RDMA_ADDR:
			o->rdma_addr = optarg;
			break;
		case OPT_RDMA_PIN_ALL:
			o->rdma_pin_all = true;
			break;
		case OPT_ZERO_COPY_SEND:
			o->zero_copy_send = true;
			break;
		case OPT_NO_VERIFY:
			if (o->ax[AX_VERIFY].given)
				die_usage("--verify given twice: give one comma list");
			if (bench_axis_parse_list(AX_VERIFY, "off", &o->ax[AX_VERIFY], err,
						  sizeof(err)))
				die_usage("%s", err);
			break;
		case OPT_MIG_TIMEOUT:
			o->migration_timeout_s =
			    opt_uint("--migration-timeout", optarg, 0, 31536000);
			o->migration_timeout_set = true;
			break;
		case OPT_TIMEOUT_POLICY:
			if (strcmp(optarg, "cancel") && strcmp(optarg, "force"))
				die_usage("--timeout-policy: cancel or force, not '%s'", optarg);
			o->timeout_policy = optarg;
			break;
		case OPT_MGMT:
			o->mgmt = optarg;
			break;
		case OPT_DIRTY_PAGES:
			o->dirty_pages = opt_bytes(AX_DIRTY_RATE, "--dirty-pages", optarg);
			c->dirty_pages_given = true;
			break;
		case OPT_CBS:
			o->clear_bitmap_shift = opt_uint("--clear-bitmap-shift", optarg, 6, 31);
			c->cbs_given = true;
			break;
		case OPT_WATCH:
			o->watch_ms = opt_uint("--watch-ms", optarg, 1, 3600000);
			c->watch_given = true;
			break;
		case OPT_TBF_BURST:
			o->tbf_burst = optarg;
			break;
		case OPT_TBF_LATENCY:
			o->tbf_latency = optarg;
			break;
		case OPT_REPS:
			o->reps = opt_uint("--reps", optarg, 1, MAX_REPS);
			c->reps_given = true;
			break;
		case OPT_TIMEOUT:
			o->timeout_s = opt_uint("--timeout", optarg, 1, 86400);
			break;
		case OPT_KILL_AFTER:
			o->kill_after_s = opt_uint("--kill-after", optarg, 1, 86400 * 2);
			c->kill_after_given = true;
			break;
		case OPT_VM:
			c->vm = optarg;
			break;
		case OPT_LOOPBACK:
			c->loopback = optarg;
			break;
		case OPT_OUT:
			c->out = optarg;
			break;
		case OPT_OUT_DIR:
			c->out_dir = optarg;
			break;
		case OPT_PLOT_DIR:
			c->plot_dir = optarg;
			break;
		case OPT_NO_PLOTS:
			c->no_plots = true;
			break;
		case OPT_BASELINE:
			c->baseline = optarg;
			break;
		case OPT_REPORT:
			c->report = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'v':
			o->verbosity = "-v";
			break;
		case 'q':
			o->verbosity = "-q";
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			die_usage("bad option");
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (c->matrix &&
	    bench_matrix_read(c->matrix, o->ax, &o->reps, &c->reps_given, err, sizeof(err)))
		die_usage("%s", err);
}

/* The guest: --guest, else what --vm or --loopback implies, else kvm iff /dev/kvm exists. */
static void pick_guest(struct bench_opts *o, const struct cli *c, FILE *human)
{
	if (!o->guest && c->vm && !c->loopback)
		o->guest = GUEST_KVM;
	else if (!o->guest && c->loopback && !c->vm)
		o->guest = GUEST_PROCESS;
	if (!o->guest) {
		o->guest = access("/dev/kvm", F_OK) ? GUEST_PROCESS : GUEST_KVM;
		if (o->guest == GUEST_PROCESS)
			fprintf(human,
				"%s: no /dev/kvm here: the guest is tern-loopback's process memory "
				"(--guest process); --guest kvm needs /dev/kvm\n",
				prog);
	}
}

/*
 * Axes and knobs that mean nothing to the process guest: said once, and the
 * axis folded to one value so that the matrix holds no duplicate scenarios.
 */
static void drop_kvm_only(struct bench_opts *o, const struct cli *c, FILE *human)
{
	char err[256];
	unsigned int a;

	if (o->guest != GUEST_PROCESS)
		return;
	for (a = 0; a < AX_MAX; a++) {
		if (!bench_axes[a].kvm_only || !o->ax[a].given)
			continue;
		fprintf(human,
			"%s: --%s applies to the kvm guest only: ignored with --guest process\n",
			prog, bench_axes[a].name);
		o->ax[a].n = 1;
		o->ax[a].given = false;
		bench_axis_parse(a, bench_axes[a].def, &o->ax[a].v[0], err, sizeof(err));
	}
	if (c->dirty_pages_given || c->cbs_given || c->watch_given)
		fprintf(human,
			"%s: --dirty-pages, --clear-bitmap-shift and --watch-ms apply to the kvm "
			"guest only: ignored with --guest process\n",
			prog);
}

/* The program's --help, to check that an option exists before we pass it. */
static char *program_help(const char *path)
{
	char *argv[] = {(char *)path, "--help", NULL};
	struct bench_proc p;
	struct bench_proc *const one[1] = {&p};
	char *out = NULL;

	if (!bench_proc_spawn(&p, "help", argv) &&
	    bench_proc_pump(one, 1, bench_now_ns() + HELP_DEADLINE_S * 1000000000ull))
		out = strdup(p.out ? p.out : "");
	bench_proc_fini(&p);
	return out;
}

/* Refuse (exit 2) an option the program does not have yet, rather than fail every run. */
static void need_option(const struct bench_opts *o, const char *opt, const char *why)
{
	char word[64];
	const char *at = o->prog_help;
	size_t n;

	snprintf(word, sizeof(word), "%s", opt);
	n = strlen(word);
	while (at && (at = strstr(at, word))) {
		if (!at[n] || at[n] == ' ' || at[n] == '\n' || at[n] == ',' || at[n] == '=')
			return;
		at += n;
	}
	fprintf(stderr,
		"%s: %s has no %s option (its --help does not list it) but %s: rebuild it, or "
		"leave that out\n",
		prog, o->prog, opt, why);
	exit(2);
}

static void check_options(const struct bench_opts *o)
{
	unsigned int i;
	bool ac = false;

	for (i = 0; i < o->ax[AX_AUTO_CONVERGE].n; i++)
		ac = ac || o->ax[AX_AUTO_CONVERGE].v[i].num;
	if (ac)
		need_option(o, "--auto-converge", "the matrix has auto-converge on");
	if (o->migration_timeout_set)
		need_option(o, "--migration-timeout", "--migration-timeout was given");
	if (o->timeout_policy)
		need_option(o, "--timeout-policy", "--timeout-policy was given");
	if (o->mgmt)
		need_option(o, "--mgmt", "--mgmt was given");
	for (i = 0; i < o->ax[AX_CODEC].n; i++)
		if (strcmp(o->ax[AX_CODEC].v[i].text, "none"))
			need_option(o, "--codec", "the matrix has a codec other than none");
}

static void on_signal(int sig)
{
	bench_interrupted = 1;
}

/* FILE.jsonl -> FILE-plots */
static char *plot_dir_for(const char *results)
{
	size_t n = strlen(results);
	char *d = malloc(n + 8);

	if (!d)
		return NULL;
	memcpy(d, results, n + 1);
	if (n > 6 && !strcmp(d + n - 6, ".jsonl"))
		d[n - 6] = '\0';
	strcat(d, "-plots");
	return d;
}

/* The results file: --out, or OUT-DIR/<local time>.jsonl (-2, -3 ... if that exists). */
static FILE *open_results(const struct cli *c, char *path, size_t len)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	unsigned int i;
	int ret;

	if (c->out) {
		snprintf(path, len, "%s", c->out);
		return fopen(path, "we");
	}
	ret = bench_mkdir_p(c->out_dir);
	if (ret) {
		errno = -ret;
		snprintf(path, len, "%s", c->out_dir);
		return NULL;
	}
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	for (i = 1; i < 100; i++) {
		FILE *f;

		if (i == 1)
			snprintf(path, len, "%s/%s.jsonl", c->out_dir, stamp);
		else
			snprintf(path, len, "%s/%s-%u.jsonl", c->out_dir, stamp, i);
		f = fopen(path, "wxe");
		if (f || errno != EEXIST)
			return f;
	}
	return NULL;
}

static void print_json(json_object *j)
{
	puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
}

/* Table, plots, baseline: the end of a run, and all of --report. */
static void report(struct bench_results *res, const struct bench_results *base, const struct cli *c,
		   const char *results_path, FILE *human)
{
	char *dir;

	bench_results_finish(res);
	if (!res->n) {
		fprintf(human, "\nno run to summarise\n");
		return;
	}
	bench_print_table(res, human);
	if (!c->no_plots) {
		dir = c->plot_dir ? strdup(c->plot_dir) : plot_dir_for(results_path);
		if (dir)
			bench_plots(res, dir, human);
		free(dir);
	}
	if (base)
		bench_print_baseline(res, base, c->baseline, human);
	fflush(human);
}

static int report_only(const struct cli *c, struct bench_results *base)
{
	struct bench_results res = {0};
	char err[512];

	if (bench_results_load(&res, c->report, err, sizeof(err))) {
		fprintf(stderr, "%s: --report %s\n", prog, err);
		return 2;
	}
	printf("%s: %s: %u scenario%s%s\n", prog, c->report, res.n, res.n == 1 ? "" : "s",
	       res.skipped ? " (some lines were not run records: skipped)" : "");
	report(&res, base, c, c->report, stdout);
	bench_results_fini(&res);
	return 0;
}

/* Make a shaped link per rate of the link axis; the scenarios point at theirs. */
static int links_up(struct bench_opts *o, struct bench_link *links, unsigned int *n_links,
		    FILE *human)
{
	char err[512];
	unsigned int i, k;

	*n_links = 0;
	for (i = 0; i < o->ax[AX_LINK].n; i++) {
		const struct bench_val *v = &o->ax[AX_LINK].v[i];
		struct bench_link *l = &links[*n_links];

		if (!v->num)
			continue;
		(*n_links)++;
		if (bench_link_up(l, *n_links, v, o->tbf_burst, o->tbf_latency, err, sizeof(err))) {
			fprintf(stderr, "%s: link %s: %s\n", prog, v->text, err);
			return -EIO;
		}
		bench_link_describe(l, human);
		for (k = 0; k < o->n_sc; k++)
			if (o->sc[k].v[AX_LINK].num == v->num)
				o->sc[k].link = l;
		if (bench_interrupted)
			return -EINTR;
	}
	return 0;
}

static void links_down(struct bench_link *links, unsigned int n)
{
	while (n)
		bench_link_down(&links[--n]);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct bench_link links[BENCH_AXIS_VALS_MAX];
	struct bench_results res = {0}, base = {0};
	struct bench_opts o;
	struct cli c;
	char *prog_owned = NULL, results_path[4096], err[512];
	unsigned int n_links = 0, rep, s, i, seq = 0, ok = 0, total;
	bool shaped = false, failed_setup = false;
	FILE *human, *out;
	int ret = 0;

	parse_opts(argc, argv, &o, &c);
	/* With --json, stdout holds JSON only; the lines for a person go to stderr. */
	human = o.json ? stderr : stdout;
	if (c.baseline && bench_results_load(&base, c.baseline, err, sizeof(err))) {
		fprintf(stderr, "%s: --baseline %s\n", prog, err);
		return 2;
	}
	if (c.report) {
		ret = report_only(&c, c.baseline ? &base : NULL);
		bench_results_fini(&base);
		return ret;
	}

	if (!o.rdma_addr && getenv("TERN_RDMA_ADDR") && *getenv("TERN_RDMA_ADDR"))
		o.rdma_addr = getenv("TERN_RDMA_ADDR");
	pick_guest(&o, &c, human);
	drop_kvm_only(&o, &c, human);
	if (!c.kill_after_given)
		o.kill_after_s =
		    o.timeout_s + (o.guest == GUEST_KVM ? KILL_GRACE_KVM_S : KILL_GRACE_PROCESS_S);
	if (o.guest == GUEST_KVM)
		o.prog = c.vm ? c.vm : (prog_owned = next_to_self("../vm/tern-vm"));
	else
		o.prog = c.loopback ? c.loopback
				    : (prog_owned = next_to_self("../examples/tern-loopback"));
	if (access(o.prog, X_OK)) {
		fprintf(stderr, "%s: no %s at %s (%s): build it (ninja -C build) or pass %s\n",
			prog, o.guest == GUEST_KVM ? "tern-vm" : "tern-loopback", o.prog,
			strerror(errno), o.guest == GUEST_KVM ? "--vm" : "--loopback");
		return 2;
	}
	if (bench_matrix_build(&o, human, err, sizeof(err)))
		die_usage("%s", err);
	total = o.n_sc * o.reps;
	o.prog_help = program_help(o.prog);
	if (!o.prog_help) {
		fprintf(stderr, "%s: %s --help did not answer\n", prog, o.prog);
		return 2;
	}
	check_options(&o);
	for (s = 0; s < o.ax[AX_LINK].n; s++)
		shaped = shaped || o.ax[AX_LINK].v[s].num;
	if (shaped && bench_link_check(err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 2;
	}
	out = open_results(&c, results_path, sizeof(results_path));
	if (!out) {
		fprintf(stderr, "%s: cannot write the results to %s: %s\n", prog, results_path,
			strerror(errno));
		return 2;
	}

	/* No SA_RESTART: the poll loop sees EINTR and forwards the cancel at once. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	bench_print_plan(&o, human);
	fprintf(human, "%s: results: %s\n", prog, results_path);
	fflush(human);
	if (links_up(&o, links, &n_links, human))
		failed_setup = true;
	fflush(human);

	/* Interleaved: every scenario once per rep, in matrix order on odd
	 * reps and reversed on even ones (A B, B A, A B ...). The position in
	 * a rep matters here: the run that follows another scenario's pays for
	 * the memory that one just freed (the destination's first touch: the
	 * verify on/off pairs gave 1.48 in one order and 0.77 in the other). */
	for (rep = 1; rep <= o.reps && !failed_setup && !bench_interrupted; rep++) {
		for (i = 0; i < o.n_sc && !bench_interrupted; i++) {
			struct bench_run r;
			json_object *rec;

			s = rep % 2 ? i : o.n_sc - 1 - i;
			bench_run_one(&o, &o.sc[s], ++seq, rep, &r);
			bench_print_run(&o, &r, human);
			rec = bench_run_json(&o, &r);
			fprintf(out, "%s\n",
				json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
			fflush(out);
			if (o.json)
				print_json(rec);
			if (bench_results_add(&res, rec))
				fprintf(stderr, "%s: out of memory: run %u left out of the table\n",
					prog, seq);
			json_object_put(rec);
			ok += r.ok;
			bench_run_fini(&r);
		}
	}
	links_down(links, n_links);
	if (fclose(out))
		fprintf(stderr, "%s: writing %s: %s\n", prog, results_path, strerror(errno));

	report(&res, c.baseline ? &base : NULL, &c, results_path, human);
	fprintf(human, "\n%s: %u of %u runs OK; results in %s\n", prog, ok, seq, results_path);
	if (o.json && seq > 1)
		for (s = 0; s < res.n; s++) {
			json_object *j = bench_group_summary_json(&res.g[s]);

			print_json(j);
			json_object_put(j);
		}
	bench_results_fini(&res);
	bench_results_fini(&base);
	free(o.prog_help);
	bench_matrix_free(&o);
	free(prog_owned);
	if (bench_interrupted) {
		fprintf(stderr, "%s: interrupted after %u of %u runs\n", prog, seq, total);
		return 130;
	}
	if (failed_setup)
		return 1;
	return ok == total ? 0 : 1;
}
