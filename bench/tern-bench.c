/* SPDX-License-Identifier: MIT */
/*
 * tern-bench: run one migration scenario end to end with real KVM guests and
 * report the figures.
 *
 * Each run starts two tern-vm processes (vm/, the reference VMM): a
 * destination (`--incoming`) and a source (`--migrate-to`) whose guest fills
 * its RAM and keeps dirtying it at the scenario's rate. tern-bench reads the
 * destination's first line for the address it listens on, waits for both
 * under a deadline, and copies the figures from their final JSON lines (the
 * library's stats): it links nothing of libtern and times nothing itself.
 * With --reps N it prints the median, min and max of every figure.
 *
 * Exit status: 0 iff every run completed, verified (with --verify) and the
 * guest kept making progress on the destination; 1 otherwise; 2 on a usage
 * error; 130 when interrupted.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPS 1000
#define KILL_GRACE_S 30

static const char *prog = "tern-bench";

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s [options]\n"
	    "Runs a live migration of a real KVM guest between two tern-vm processes on\n"
	    "this host and prints the figures. Defaults: the main job's scenario, a 1 GiB\n"
	    "guest dirtying 64 MiB at 50 MB/s, 2 channels over tcp, verify on, 1 rep.\n"
	    "\n"
	    "guest:\n"
	    "  --ram SIZE              guest RAM (K M G = powers of 1024; default 1G)\n"
	    "  --vcpus N               vCPUs (default 1)\n"
	    "  --fill random|text      what the guest writes first (default random)\n"
	    "  --zero-pct P            share of zero pages after the fill (default 0)\n"
	    "  --dirty-rate RATE       bytes/s the guest keeps writing (K M G = 10^3 10^6\n"
	    "                          10^9; default 50M; 0 = idle after the fill)\n"
	    "  --dirty-ws SIZE         working set it writes to (default 64M)\n"
	    "  --dirty-pages N         the guest stops dirtying after N page writes\n"
	    "  --pattern P             sequential|random|hot-cold (default sequential)\n"
	    "migration:\n"
	    "  --channels N            worker channels (default 2)\n"
	    "  --transport tcp|unix    loopback TCP or a Unix socket (default tcp)\n"
	    "  --codec NAME            multifd-compression: none zlib zstd xbzrle auto\n"
	    "  --downtime-limit MS     (default 300)\n"
	    "  --max-bandwidth RATE    bytes/s, 0 = unlimited (default 0)\n"
	    "  --clear-bitmap-shift N  (default 18)\n"
	    "  --verify, --no-verify   digest all RAM on both sides at the end (default on)\n"
	    "  --watch-ms MS           how long tern-vm watches the guest after resume\n"
	    "run:\n"
	    "  --reps N                runs of the scenario; N > 1 adds a summary (default 1)\n"
	    "  --json                  one JSON object per run (and the summary) on stdout;\n"
	    "                          the lines for a person go to stderr\n"
	    "  --vm PATH               tern-vm binary (default: ../vm/tern-vm next to this one)\n"
	    "  --timeout S             passed to each tern-vm (default 120)\n"
	    "  --kill-after S          kill both tern-vm still running S s after the run\n"
	    "                          started (default: timeout + %d)\n"
	    "  -v, -q                  passed to tern-vm\n"
	    "  -h, --help\n",
	    prog, KILL_GRACE_S);
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

/*
 * @binary: sizes, K M G T are powers of 1024 ("64M", "1GiB", "1G");
 * otherwise rates, powers of 1000 ("50M", "50MB/s"), as tern-vm reads them.
 * Both are passed on to tern-vm as plain numbers of bytes.
 */
static uint64_t opt_bytes(const char *opt, const char *s, bool binary)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	errno = 0;
	if (*s == '-' || *s == '+')
		die_usage("%s: bad value '%s'", opt, s);
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		die_usage("%s: bad value '%s'", opt, s);
	switch (*end) {
	case 'k':
	case 'K':
		mul = binary ? 1ull << 10 : 1000ull;
		break;
	case 'm':
	case 'M':
		mul = binary ? 1ull << 20 : 1000000ull;
		break;
	case 'g':
	case 'G':
		mul = binary ? 1ull << 30 : 1000000000ull;
		break;
	case 't':
	case 'T':
		mul = binary ? 1ull << 40 : 1000000000000ull;
		break;
	default:
		break;
	}
	if (mul > 1) {
		end++;
		if (binary && *end == 'i')
			end++;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (!binary && !strcmp(end, "/s"))
		end += 2;
	if (*end)
		die_usage("%s: bad value '%s' (e.g. %s)", opt, s,
			  binary ? "4096, 64M, 1G, 1GiB" : "0, 50M, 1G, 50MB/s");
	if (v > UINT64_MAX / mul)
		die_usage("%s: '%s' is too large", opt, s);
	return (uint64_t)v * mul;
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

static const char *opt_word(const char *opt, const char *s, const char *const words[])
{
	unsigned int i;

	for (i = 0; words[i]; i++)
		if (!strcmp(s, words[i]))
			return words[i];
	die_usage("%s: '%s' is not one of the accepted values", opt, s);
}

/* ../vm/tern-vm relative to the directory of this very binary (build/bench/ -> build/vm/). */
static char *default_vm(void)
{
	char self[PATH_MAX], path[PATH_MAX + 32], *real;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return strdup("tern-vm");
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/../vm/tern-vm", dirname(self));
	real = realpath(path, NULL);
	return real ? real : strdup(path);
}

enum {
	OPT_RAM = 256,
	OPT_VCPUS,
	OPT_CHANNELS,
	OPT_TRANSPORT,
	OPT_DIRTY_RATE,
	OPT_DIRTY_WS,
	OPT_DIRTY_PAGES,
	OPT_PATTERN,
	OPT_ZERO_PCT,
	OPT_FILL,
	OPT_DOWNTIME,
	OPT_MAXBW,
	OPT_VERIFY,
	OPT_NO_VERIFY,
	OPT_CBS,
	OPT_REPS,
	OPT_JSON,
	OPT_VM,
	OPT_TIMEOUT,
	OPT_KILL_AFTER,
	OPT_CODEC,
	OPT_WATCH,
};

static const struct option long_opts[] = {
    {"ram", required_argument, NULL, OPT_RAM},
    {"vcpus", required_argument, NULL, OPT_VCPUS},
    {"channels", required_argument, NULL, OPT_CHANNELS},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"dirty-rate", required_argument, NULL, OPT_DIRTY_RATE},
    {"dirty-ws", required_argument, NULL, OPT_DIRTY_WS},
    {"dirty-pages", required_argument, NULL, OPT_DIRTY_PAGES},
    {"pattern", required_argument, NULL, OPT_PATTERN},
    {"zero-pct", required_argument, NULL, OPT_ZERO_PCT},
    {"fill", required_argument, NULL, OPT_FILL},
    {"downtime-limit", required_argument, NULL, OPT_DOWNTIME},
    {"max-bandwidth", required_argument, NULL, OPT_MAXBW},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"clear-bitmap-shift", required_argument, NULL, OPT_CBS},
    {"reps", required_argument, NULL, OPT_REPS},
    {"json", no_argument, NULL, OPT_JSON},
    {"vm", required_argument, NULL, OPT_VM},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"kill-after", required_argument, NULL, OPT_KILL_AFTER},
    {"codec", required_argument, NULL, OPT_CODEC},
    {"watch-ms", required_argument, NULL, OPT_WATCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *const transports[] = {"tcp", "unix", NULL};
static const char *const patterns[] = {"sequential", "random", "hot-cold", NULL};
static const char *const fills[] = {"random", "text", NULL};
/* multifd-compression methods; tern-vm hands the name to the library. */
static const char *const codecs[] = {"none", "zlib", "zstd", "xbzrle", "auto", NULL};

static void parse_opts(int argc, char **argv, struct bench_opts *o)
{
	bool kill_after_set = false;
	int c;

	*o = (struct bench_opts){
	    .sc =
		{
		    .ram = 1ull << 30,
		    .vcpus = 1,
		    .channels = 2,
		    .transport = "tcp",
		    .dirty_rate = 50000000,
		    .dirty_ws = 64ull << 20,
		    .pattern = "sequential",
		    .zero_pct = 0,
		    .fill = "random",
		    .downtime_limit = 300,
		    .max_bandwidth = 0,
		    .verify = true,
		    .clear_bitmap_shift = 18,
		    .codec = "none",
		},
	    .reps = 1,
	    .timeout_s = 120,
	};

	while ((c = getopt_long(argc, argv, "hvq", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_RAM:
			o->sc.ram = opt_bytes("--ram", optarg, true);
			if (!o->sc.ram)
				die_usage("--ram: must not be 0");
			break;
		case OPT_VCPUS:
			o->sc.vcpus = opt_uint("--vcpus", optarg, 1, 256);
			break;
		case OPT_CHANNELS:
			o->sc.channels = opt_uint("--channels", optarg, 1, 64);
			break;
		case OPT_TRANSPORT:
			o->sc.transport = opt_word("--transport", optarg, transports);
			break;
		case OPT_DIRTY_RATE:
			o->sc.dirty_rate = opt_bytes("--dirty-rate", optarg, false);
			break;
		case OPT_DIRTY_WS:
			o->sc.dirty_ws = opt_bytes("--dirty-ws", optarg, true);
			break;
		case OPT_DIRTY_PAGES:
			o->sc.dirty_pages = opt_bytes("--dirty-pages", optarg, false);
			break;
		case OPT_PATTERN:
			o->sc.pattern = opt_word("--pattern", optarg, patterns);
			break;
		case OPT_ZERO_PCT:
			o->sc.zero_pct = opt_uint("--zero-pct", optarg, 0, 100);
			break;
		case OPT_FILL:
			o->sc.fill = opt_word("--fill", optarg, fills);
			break;
		case OPT_DOWNTIME:
			o->sc.downtime_limit = opt_uint("--downtime-limit", optarg, 1, 2000000);
			break;
		case OPT_MAXBW:
			o->sc.max_bandwidth = opt_bytes("--max-bandwidth", optarg, false);
			break;
		case OPT_VERIFY:
			o->sc.verify = true;
			break;
		case OPT_NO_VERIFY:
			o->sc.verify = false;
			break;
		case OPT_CBS:
			o->sc.clear_bitmap_shift = opt_uint("--clear-bitmap-shift", optarg, 6, 31);
			break;
		case OPT_REPS:
			o->reps = opt_uint("--reps", optarg, 1, MAX_REPS);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_VM:
			o->vm = optarg;
			break;
		case OPT_TIMEOUT:
			o->timeout_s = opt_uint("--timeout", optarg, 1, 86400);
			break;
		case OPT_KILL_AFTER:
			o->kill_after_s = opt_uint("--kill-after", optarg, 1, 86400 * 2);
			kill_after_set = true;
			break;
		case OPT_CODEC:
			o->sc.codec = opt_word("--codec", optarg, codecs);
			break;
		case OPT_WATCH:
			o->sc.watch_ms = opt_uint("--watch-ms", optarg, 1, 3600000);
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
	if (!o->sc.dirty_ws && o->sc.dirty_rate)
		die_usage("--dirty-ws: must not be 0 with a dirty rate");
	if (o->sc.dirty_ws > o->sc.ram)
		die_usage("--dirty-ws: larger than --ram");
	if (!kill_after_set)
		o->kill_after_s = o->timeout_s + KILL_GRACE_S;
}

static void on_signal(int sig)
{
	bench_interrupted = 1;
}

static void print_json(json_object *j)
{
	puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(j);
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct bench_opts o;
	struct bench_run *runs;
	char *vm_owned = NULL;
	FILE *human;
	unsigned int i, ran = 0;
	bool all_ok = true;

	parse_opts(argc, argv, &o);
	if (!o.vm)
		o.vm = vm_owned = default_vm();
	if (access(o.vm, X_OK)) {
		fprintf(stderr,
			"%s: no tern-vm at %s (%s): build it (ninja -C build) or pass --vm\n", prog,
			o.vm, strerror(errno));
		free(vm_owned);
		return 2;
	}
	runs = calloc(o.reps, sizeof(*runs));
	if (!runs) {
		fprintf(stderr, "%s: out of memory\n", prog);
		free(vm_owned);
		return 1;
	}
	/* No SA_RESTART: the poll loop sees EINTR and forwards the cancel at once. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* With --json, stdout holds JSON only; the lines for a person go to stderr. */
	human = o.json ? stderr : stdout;
	bench_print_scenario(&o, human);
	for (i = 0; i < o.reps && !bench_interrupted; i++) {
		bench_run_one(&o, i + 1, &runs[i]);
		ran++;
		bench_print_run(&o, &runs[i], human);
		if (o.json)
			print_json(bench_run_json(&o, &runs[i]));
		if (!runs[i].ok)
			all_ok = false;
	}
	if (ran > 1) {
		bench_print_summary(&o, runs, ran, human);
		if (o.json)
			print_json(bench_summary_json(&o, runs, ran));
	}
	for (i = 0; i < ran; i++)
		bench_run_fini(&runs[i]);
	free(runs);
	free(vm_owned);
	if (bench_interrupted) {
		fprintf(stderr, "%s: interrupted after %u of %u runs\n", prog, ran, o.reps);
		return 130;
	}
	return all_ok && ran == o.reps ? 0 : 1;
}
