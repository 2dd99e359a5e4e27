/* SPDX-License-Identifier: MIT */
/*
 * tern-vm: a small reference VMM. It runs a real KVM guest (vm/guest/: a
 * workload that fills its RAM, then dirties it at a set rate) and migrates
 * it with libtern, exactly as a third-party VMM would: public headers only.
 *
 *   standalone     boot, fill, watch the guest for --watch-ms, print a line;
 *   --migrate-to   boot, fill, migrate (the guest stays paused after success,
 *                  runs on after a failure or cancel), print a line;
 *   --incoming     create an empty VM, listen, print the listening line,
 *                  load RAM and vCPU state, run the guest, watch it, print;
 *   --mgmt alone   boot, fill, serve the socket, print a ready line, run the
 *                  guest until a `migrate` through the socket completes (as
 *                  --migrate-to then) or a signal ends it; a failed or
 *                  cancelled attempt prints an event line and the guest
 *                  runs on, ready for the next `migrate`.
 *
 * The command line and the output are a contract shared with tern-bench and
 * the tests: see vm/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <tern/kvm.h>

#include "tv.h"
#include "common/json_out.h"
#include "common/stats_json.h"

#define TV_LINE_MAX 8192
#define TV_FINAL_GRACE_MS 30000 /* after a cancel, how long the library may take to end */

static const char *prog = "tern-vm";
static uint64_t t_start_ns;

uint64_t tv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tv_err(struct tern_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && !err->code) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void tv_log(const struct tv_cfg *cfg, int level, const char *fmt, ...)
{
	va_list ap;

	if (level > cfg->log_level && level > LOG_WARNING)
		return;
	if (cfg->log_level < 0 && level > LOG_ERR)
		return;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", prog);
	exit(2);
}

/* ---- command line ---------------------------------------------------------- */

/* A number with an optional K, M or G: sizes take powers of 1024, rates of 1000. */
static uint64_t parse_scaled(const char *opt, const char *arg, bool rate)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	errno = 0;
	if (arg[0] < '0' || arg[0] > '9')
		usage_die("%s: not a number: '%s'", opt, arg);
	v = strtoull(arg, &end, 10);
	if (errno || end == arg)
		usage_die("%s: not a number: '%s'", opt, arg);
	switch (*end) {
	case 'k':
	case 'K':
		mul = rate ? 1000ull : 1ull << 10;
		break;
	case 'm':
	case 'M':
		mul = rate ? 1000000ull : 1ull << 20;
		break;
	case 'g':
	case 'G':
		mul = rate ? 1000000000ull : 1ull << 30;
		break;
	case '\0':
		break;
	default:
		usage_die("%s: bad suffix in '%s' (K, M or G)", opt, arg);
	}
	if (*end && end[1])
		usage_die("%s: bad suffix in '%s' (K, M or G)", opt, arg);
	if (v > UINT64_MAX / mul)
		usage_die("%s: '%s' is too large", opt, arg);
	return (uint64_t)v * mul;
}

static uint64_t parse_uint(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (arg[0] < '0' || arg[0] > '9')
		usage_die("%s: not a number: '%s'", opt, arg);
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || v < min || v > max)
		usage_die("%s: '%s' is not in %" PRIu64 "..%" PRIu64, opt, arg, min, max);
	return (uint64_t)v;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: %s --ram SIZE [options]\n"
	    "  --ram SIZE              guest RAM, a multiple of 2M, 4M..64G (K M G = 1024^n)\n"
	    "  --vcpus N               vCPUs, 1..%u (default 1)\n"
	    "  --fill random|text      fill data (default random)\n"
	    "  --zero-pct P            pages left zero, 0..100 (default 0)\n"
	    "  --dirty-rate BYTES/s    guest writes after the fill, all vCPUs together\n"
	    "                          (K M G = 1000^n; default 0: idle)\n"
	    "  --dirty-ws SIZE         working set those writes fall into (default 64M)\n"
	    "  --dirty-pages N         stop dirtying after N page writes (default 0: never)\n"
	    "  --dirty-rounds N        instead of --dirty-rate: rewrite half of every\n"
	    "                          --dirty-ws page once in each of the first N rounds\n"
	    "                          of the migration, then idle; each round's dirty-log\n"
	    "                          sync waits for that pass (driven by the migration,\n"
	    "                          not the clock; for tests and benchmarks)\n"
	    "  --pattern P             sequential | random | hot-cold (default sequential)\n"
	    "  --incoming URI          destination: listen on URI (tcp:HOST:PORT, unix:PATH)\n"
	    "  --migrate-to URI        source: migrate the guest to URI once it is filled\n"
	    "  --channels N            multifd-channels, 1..%d (default 2)\n"
	    "  --downtime-limit MS     downtime-limit, 1..2000000 (default 300)\n"
	    "  --max-bandwidth BYTES/s max-bandwidth (default 0: unlimited)\n"
	    "  --avail-switchover-bandwidth BYTES/s  what the switchover may use\n"
	    "                         (default 0: not declared, learned)\n"
	    "  --clear-bitmap-shift N  clear-bitmap-shift, 6..31 (default 18)\n"
	    "  --codec NAME            multifd-compression: none zlib zstd xbzrle auto\n"
	    "                          (source; the destination follows; default none)\n"
	    "  --codec-level N         multifd-zstd-level (1..20) or multifd-zlib-level (1..9)\n"
	    "  --xbzrle-cache SIZE     xbzrle-cache-size (default 64M)\n"
	    "  --verify                verify-ram capability\n"
	    "  --rdma-pin-all          rdma: register all guest RAM at setup (rdma-pin-all)\n"
	    "  --zero-copy-send        source, tcp: send raw pages with MSG_ZEROCOPY\n"
	    "  --rdma-pin-limit SIZE   rdma: most RAM registered at once otherwise\n"
	    "  --postcopy              postcopy-ram capability (both sides): the\n"
	    "                          destination's vCPUs fault in missing pages\n"
	    "                          through userfaultfd\n"
	    "  --postcopy-after MS     source: switch to postcopy MS ms after the\n"
	    "                          start (implies --postcopy; else `postcopy` on --mgmt)\n"
	    "  --postcopy-recover-timeout MS  postcopy-paused: give up after MS ms\n"
	    "  --mgmt PATH             serve the management socket (docs/MGMT.md) at PATH\n"
	    "                          once the migration (or listening) has started;\n"
	    "                          alone: run the guest until a `migrate` through it\n"
	    "                          completes (--timeout then defaults to 0)\n"
	    "  --auto-converge         source: auto-converge capability (throttle the vCPUs)\n"
	    "  --cpu-throttle-initial P    source: cpu-throttle-initial, 1..99 %%\n"
	    "  --cpu-throttle-increment P  source: cpu-throttle-increment, 1..99 %%\n"
	    "  --max-cpu-throttle P    source: max-cpu-throttle, 1..99 %%\n"
	    "  --migration-timeout S   source: migration-timeout, 0..31536000 s (0: none)\n"
	    "  --timeout-policy P      source: migration-timeout-policy, cancel | force\n"
	    "  --pause-before-switchover  source: wait paused in pre-switchover until a\n"
	    "                          `continue` on the --mgmt socket (needs --mgmt)\n"
	    "  --watch-ms MS           watch the running guest this long (default 1000)\n"
	    "  --timeout S             give up after S seconds, 0 = never (default 120)\n"
	    "  --cancel-on STATE       test hook: cancel on entering setup|active|device\n"
	    "  -v, --verbose           library log at info (twice: debug)\n"
	    "  -q, --quiet             errors only\n",
	    prog, KG_MAX_VCPUS, TERN_MAX_CHANNELS);
}

/* The value of the word @arg among @words (NULL-terminated), or a usage error. */
static int pick_word(const char *opt, const char *arg, const char *const *words, const int *values,
		     const char *accepted)
{
	unsigned int i;

	for (i = 0; words[i]; i++)
		if (!strcmp(arg, words[i]))
			return values[i];
	usage_die("%s: %s, not '%s'", opt, accepted, arg);
}

static const char *const fill_words[] = {"random", "text", NULL};
static const int fill_values[] = {TV_FILL_RANDOM, TV_FILL_TEXT};
static const char *const pattern_words[] = {"sequential", "random", "hot-cold", NULL};
static const int pattern_values[] = {TV_PATTERN_SEQUENTIAL, TV_PATTERN_RANDOM, TV_PATTERN_HOT_COLD};
static const char *const cancel_words[] = {"setup", "active", "device", NULL};
static const int cancel_values[] = {TERN_STATUS_SETUP, TERN_STATUS_ACTIVE, TERN_STATUS_DEVICE};
/* migration-timeout-policy: the library takes the word itself */
static const char *const policy_words[] = {"cancel", "force", NULL};
static const int policy_values[] = {0, 1};

static void parse_args(int argc, char **argv, struct tv_cfg *cfg)
{
	enum {
		OPT_RAM = 256,
		OPT_VCPUS,
		OPT_FILL,
		OPT_ZERO_PCT,
		OPT_DIRTY_RATE,
		OPT_DIRTY_WS,
		OPT_DIRTY_PAGES,
		OPT_DIRTY_ROUNDS,
		OPT_PATTERN,
		OPT_INCOMING,
		OPT_MIGRATE_TO,
		OPT_CHANNELS,
		OPT_DOWNTIME,
		OPT_MAX_BW,
		OPT_AVAIL_SW_BW,
		OPT_CLEAR_SHIFT,
		OPT_CODEC,
		OPT_CODEC_LEVEL,
		OPT_XBZRLE_CACHE,
		OPT_VERIFY,
		OPT_RDMA_PIN_ALL,
		OPT_ZERO_COPY_SEND,
		OPT_POSTCOPY,
		OPT_POSTCOPY_AFTER,
		OPT_PC_RECOVER_TIMEOUT,
		OPT_RDMA_PIN_LIMIT,
		OPT_WATCH_MS,
		OPT_TIMEOUT,
		OPT_CANCEL_ON,
		OPT_MGMT,
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
	    {"vcpus", required_argument, NULL, OPT_VCPUS},
	    {"fill", required_argument, NULL, OPT_FILL},
	    {"zero-pct", required_argument, NULL, OPT_ZERO_PCT},
	    {"dirty-rate", required_argument, NULL, OPT_DIRTY_RATE},
	    {"dirty-ws", required_argument, NULL, OPT_DIRTY_WS},
	    {"dirty-pages", required_argument, NULL, OPT_DIRTY_PAGES},
	    {"dirty-rounds", required_argument, NULL, OPT_DIRTY_ROUNDS},
	    {"pattern", required_argument, NULL, OPT_PATTERN},
	    {"incoming", required_argument, NULL, OPT_INCOMING},
	    {"migrate-to", required_argument, NULL, OPT_MIGRATE_TO},
	    {"channels", required_argument, NULL, OPT_CHANNELS},
	    {"downtime-limit", required_argument, NULL, OPT_DOWNTIME},
	    {"max-bandwidth", required_argument, NULL, OPT_MAX_BW},
	    {"avail-switchover-bandwidth", required_argument, NULL, OPT_AVAIL_SW_BW},
	    {"clear-bitmap-shift", required_argument, NULL, OPT_CLEAR_SHIFT},
	    {"codec", required_argument, NULL, OPT_CODEC},
	    {"codec-level", required_argument, NULL, OPT_CODEC_LEVEL},
	    {"xbzrle-cache", required_argument, NULL, OPT_XBZRLE_CACHE},
	    {"verify", no_argument, NULL, OPT_VERIFY},
	    {"rdma-pin-all", no_argument, NULL, OPT_RDMA_PIN_ALL},
	    {"zero-copy-send", no_argument, NULL, OPT_ZERO_COPY_SEND},
	    {"postcopy", no_argument, NULL, OPT_POSTCOPY},
	    {"postcopy-after", required_argument, NULL, OPT_POSTCOPY_AFTER},
	    {"postcopy-recover-timeout", required_argument, NULL, OPT_PC_RECOVER_TIMEOUT},
	    {"rdma-pin-limit", required_argument, NULL, OPT_RDMA_PIN_LIMIT},
	    {"watch-ms", required_argument, NULL, OPT_WATCH_MS},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"cancel-on", required_argument, NULL, OPT_CANCEL_ON},
	    {"mgmt", required_argument, NULL, OPT_MGMT},
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
	bool have_ram = false, source_only = false, have_timeout = false;
	int c;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_RAM:
			cfg->ram = parse_scaled("--ram", optarg, false);
			have_ram = true;
			break;
		case OPT_VCPUS:
			cfg->vcpus = (uint32_t)parse_uint("--vcpus", optarg, 1, KG_MAX_VCPUS);
			break;
		case OPT_FILL:
			cfg->fill = (enum tv_fill)pick_word("--fill", optarg, fill_words,
							    fill_values, "random or text");
			break;
		case OPT_ZERO_PCT: {
			char *end;
			double p;

			errno = 0;
			p = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(p >= 0.0 && p <= 100.0))
				usage_die("--zero-pct: a percentage 0..100, not '%s'", optarg);
			cfg->zero_bp = (uint32_t)lround(p * 100.0);
			break;
		}
		case OPT_DIRTY_RATE:
			cfg->dirty_rate = parse_scaled("--dirty-rate", optarg, true);
			break;
		case OPT_DIRTY_WS:
			cfg->dirty_ws = parse_scaled("--dirty-ws", optarg, false);
			break;
		case OPT_DIRTY_PAGES:
			cfg->dirty_pages = parse_uint("--dirty-pages", optarg, 0, UINT64_MAX / 2);
			break;
		case OPT_DIRTY_ROUNDS:
			cfg->dirty_rounds = parse_uint("--dirty-rounds", optarg, 0, 1000000);
			break;
		case OPT_PATTERN:
			cfg->pattern = (enum tv_pattern)pick_word("--pattern", optarg,
								  pattern_words, pattern_values,
								  "sequential, random or hot-cold");
			break;
		case OPT_INCOMING:
			cfg->incoming = optarg;
			break;
		case OPT_MIGRATE_TO:
			cfg->migrate_to = optarg;
			break;
		case OPT_CHANNELS:
			cfg->channels =
			    (uint32_t)parse_uint("--channels", optarg, 1, TERN_MAX_CHANNELS);
			break;
		case OPT_DOWNTIME:
			cfg->downtime_limit = parse_uint("--downtime-limit", optarg, 1, 2000000);
			break;
		case OPT_MAX_BW:
			cfg->max_bandwidth = parse_scaled("--max-bandwidth", optarg, true);
			break;
		case OPT_AVAIL_SW_BW:
			cfg->avail_switchover_bandwidth =
			    parse_scaled("--avail-switchover-bandwidth", optarg, true);
			break;
		case OPT_CLEAR_SHIFT:
			cfg->clear_bitmap_shift =
			    (uint32_t)parse_uint("--clear-bitmap-shift", optarg, 6, 31);
			break;
		case OPT_CODEC:
			/* the library validates the name and says which it knows */
			cfg->codec = optarg;
			break;
		case OPT_CODEC_LEVEL:
			cfg->codec_level = parse_uint("--codec-level", optarg, 1, 20);
			break;
		case OPT_XBZRLE_CACHE:
			cfg->xbzrle_cache = parse_scaled("--xbzrle-cache", optarg, false);
			break;
		case OPT_RDMA_PIN_ALL:
			cfg->rdma_pin_all = true;
			break;
		case OPT_ZERO_COPY_SEND:
			cfg->zero_copy_send = true;
			break;
		case OPT_POSTCOPY:
			cfg->postcopy = true;
			break;
		case OPT_POSTCOPY_AFTER:
			cfg->postcopy = true;
			cfg->postcopy_after_ms =
			    parse_uint("--postcopy-after", optarg, 1, 86400000);
			break;
		case OPT_PC_RECOVER_TIMEOUT:
			cfg->pc_recover_timeout_ms =
			    parse_uint("--postcopy-recover-timeout", optarg, 0, 31536000000ull);
			break;
		case OPT_RDMA_PIN_LIMIT:
			cfg->rdma_pin_limit = parse_scaled("--rdma-pin-limit", optarg, false);
			break;
		case OPT_VERIFY:
			cfg->verify = true;
			break;
		case OPT_WATCH_MS:
			cfg->watch_ms = parse_uint("--watch-ms", optarg, 1, 86400000);
			break;
		case OPT_TIMEOUT:
			cfg->timeout_s = parse_uint("--timeout", optarg, 0, 86400 * 7);
			have_timeout = true;
			break;
		case OPT_CANCEL_ON:
			cfg->cancel_on =
			    (enum tern_status)pick_word("--cancel-on", optarg, cancel_words,
							cancel_values, "setup, active or device");
			break;
		case OPT_MGMT:
			if (!optarg[0])
				usage_die("--mgmt: a socket path");
			cfg->mgmt = optarg;
			break;
		case OPT_AUTO_CONVERGE:
			cfg->conv.auto_converge = true;
			source_only = true;
			break;
		case OPT_THROTTLE_INITIAL:
			cfg->conv.throttle_initial =
			    parse_uint("--cpu-throttle-initial", optarg, 1, 99);
			source_only = true;
			break;
		case OPT_THROTTLE_INCREMENT:
			cfg->conv.throttle_increment =
			    parse_uint("--cpu-throttle-increment", optarg, 1, 99);
			source_only = true;
			break;
		case OPT_MAX_THROTTLE:
			cfg->conv.max_throttle = parse_uint("--max-cpu-throttle", optarg, 1, 99);
			source_only = true;
			break;
		case OPT_MIGRATION_TIMEOUT:
			cfg->conv.migration_timeout =
			    parse_uint("--migration-timeout", optarg, 0, 31536000);
			source_only = true;
			break;
		case OPT_TIMEOUT_POLICY:
			cfg->conv.timeout_policy =
			    policy_words[pick_word("--timeout-policy", optarg, policy_words,
						   policy_values, "cancel or force")];
			source_only = true;
			break;
		case OPT_PAUSE_BEFORE_SWITCHOVER:
			cfg->conv.pause_before_switchover = true;
			source_only = true;
			break;
		case 'v':
			cfg->log_level = cfg->log_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
			break;
		case 'q':
			cfg->log_level = -1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc)
		usage_die("unexpected argument '%s'", argv[optind]);
	if (!have_ram)
		usage_die("--ram is required");
	if (cfg->ram % KG_RAM_ALIGN || cfg->ram < 2 * KG_RAM_ALIGN || cfg->ram > KG_MAX_RAM)
		usage_die("--ram: a multiple of 2M from 4M to 64G, not %" PRIu64, cfg->ram);
	if ((cfg->ram - KG_WORK_GPA) / TV_PAGE_SIZE < cfg->vcpus)
		usage_die("--ram: too small for %u vCPUs", cfg->vcpus);
	if (cfg->dirty_rate > 1000000000000ull)
		usage_die("--dirty-rate: at most 1000G bytes/s");
	if (cfg->incoming && cfg->migrate_to)
		usage_die("--incoming and --migrate-to exclude each other");
	if (cfg->cancel_on && !cfg->incoming && !cfg->migrate_to && !cfg->mgmt)
		usage_die("--cancel-on needs --incoming, --migrate-to or --mgmt");
	if (source_only && (cfg->incoming || (!cfg->migrate_to && !cfg->mgmt)))
		usage_die("--auto-converge, --cpu-throttle-*, --max-cpu-throttle, "
			  "--migration-timeout, --timeout-policy and --pause-before-switchover "
			  "are source options: they need --migrate-to or --mgmt, not --incoming");
	/* a VM that waits for its operator runs until told otherwise */
	if (cfg->mgmt && !cfg->incoming && !cfg->migrate_to && !have_timeout)
		cfg->timeout_s = 0;
	/* nothing but a `continue` on the socket would end the wait */
	if (cfg->conv.pause_before_switchover && !cfg->mgmt)
		usage_die("--pause-before-switchover needs --mgmt (continue comes through it)");
}

/* ---- output ---------------------------------------------------------------- */

struct tv_result {
	const char *side;
	const char *transport;
	struct tern_stats st;
	bool have_st;
	struct tern_kvm_log_stats ks;
	bool have_ks;
	char error[300];
	uint64_t fill_ms;
	uint64_t progress_at_resume;
	uint64_t progress_after;
	bool progress_rising;
	uint32_t throttle_end; /* the VMM's throttle when the run ended */
	uint32_t throttle_max;
	uint64_t throttle_held_ms;
};

static const char *jbool(bool b)
{
	return b ? "true" : "false";
}

/* The library's figures are common/stats_json.c's, as tern-loopback prints them. */
static void print_result(const struct tv_cfg *cfg, const struct tv_result *r)
{
	const struct tern_stats *st = &r->st;
	const char *status = r->have_st ? tern_status_name(st->status) : "none";
	const char *err = r->error[0] ? r->error : (r->have_st ? st->error : "");
	char line[TV_LINE_MAX], esc[700];
	size_t n = 0;

	json_escape(esc, sizeof(esc), err);
	json_append(line, sizeof(line), &n,
		    "{\"side\":\"%s\",\"status\":\"%s\",\"error\":\"%s\",\"verified\":%s,"
		    "\"ram_bytes\":%" PRIu64 ",\"vcpus\":%u,\"channels\":%u,\"transport\":\"%s\","
		    "\"codec\":\"%s\"",
		    r->side, status, esc, jbool(st->verified), cfg->ram, cfg->vcpus,
		    r->have_st && st->channels ? st->channels : cfg->channels, r->transport,
		    r->have_st && st->multifd_compression[0] ? st->multifd_compression
							     : (cfg->codec ? cfg->codec : "none"));
	stats_json_lib(line, sizeof(line), &n, st);
	json_append(
	    line, sizeof(line), &n,
	    ",\"kvm_manual_protect\":%s,\"kvm_initially_set\":%s,\"kvm_sync_ns\":%" PRIu64
	    ",\"kvm_clear_ns\":%" PRIu64 ",\"fill_ms\":%" PRIu64 ",\"progress_at_resume\":%" PRIu64
	    ",\"progress_after\":%" PRIu64 ",\"progress_rising\":%s,\"throttle_max_percent\":%u"
	    ",\"throttle_end_percent\":%u,\"throttle_held_ms\":%" PRIu64 "}\n",
	    jbool(r->ks.manual_protect), jbool(r->ks.initially_set), r->ks.sync_ns, r->ks.clear_ns,
	    r->fill_ms, r->progress_at_resume, r->progress_after, jbool(r->progress_rising),
	    r->throttle_max, r->throttle_end, r->throttle_held_ms);
	if (n >= sizeof(line) - 1)
		snprintf(line, sizeof(line), "{\"side\":\"%s\",\"status\":\"%s\"}\n", r->side,
			 status);
	fputs(line, stdout);
	fflush(stdout);
}

static const char *uri_transport(const char *uri)
{
	if (!strncmp(uri, "unix:", 5))
		return "unix";
	if (!strncmp(uri, "rdma:", 5))
		return "rdma";
	return "tcp";
}

/* ---- running --------------------------------------------------------------- */

/* What the VMM callbacks share with the main thread. */
struct tv_app {
	/* immutable */
	const struct tv_cfg *cfg;
	struct tv_vm *vm;
	struct tv_ctl *ctl;
	bool managed; /* --mgmt alone: report each attempt that ends */
	/* set before the management server starts (managed) */
	struct tern_session *s;
	/* written by the callbacks, read by main after tern_wait() or under atomics */
	bool resumed;
	uint64_t resume_ns;
	uint64_t progress_at_resume;
	uint32_t pauses;
	uint32_t resumes;
	struct tern_error resume_err;
};

static int app_pause(void *opaque, struct tern_error *err)
{
	struct tv_app *a = opaque;
	int ret;

	__atomic_add_fetch(&a->pauses, 1, __ATOMIC_RELAXED);
	ret = tv_vcpus_pause(a->vm, err);
	/* The library resumes only a guest it paused: some vCPUs may have
	 * parked before the timeout, so let them go (the attempt fails, the
	 * guest must run on, and a --mgmt VM may be migrated again). */
	if (ret) {
		tv_vcpus_resume(a->vm);
		__atomic_add_fetch(&a->resumes, 1, __ATOMIC_RELAXED);
	}
	return ret;
}

/*
 * Source: after the library's rehearsal pause at setup, or after a failure
 * once it paused for switchover. Destination: run the guest.
 */
static void app_resume(void *opaque)
{
	struct tv_app *a = opaque;

	__atomic_add_fetch(&a->resumes, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&a->progress_at_resume, tv_progress(a->vm), __ATOMIC_RELAXED);
	__atomic_store_n(&a->resume_ns, tv_now_ns(), __ATOMIC_RELAXED);
	if (a->cfg->incoming)
		tv_vcpus_start(a->vm, &a->resume_err);
	else
		tv_vcpus_resume(a->vm);
	__atomic_store_n(&a->resumed, true, __ATOMIC_RELEASE);
}

/* Source, auto-converge: on the migration thread. */
static void app_throttle(void *opaque, unsigned int percent)
{
	struct tv_app *a = opaque;

	tv_log(a->cfg, LOG_DEBUG, "throttle %u %%", percent);
	tv_vm_throttle(a->vm, percent);
}

/*
 * --mgmt alone: one line for each attempt that failed or was cancelled. It
 * is printed here, on the migration thread as its last transition, because
 * the operator may start the next attempt the moment it is made, and this
 * attempt's figures would be gone by the time the main thread looked. The
 * library holds no lock of its own here, so tern_stats_get() is safe.
 */
static void attempt_report(struct tv_app *a, enum tern_status to)
{
	struct tern_stats st;
	char err[700], line[1024];

	tern_stats_get(a->s, &st);
	json_escape(err, sizeof(err), st.error);
	snprintf(line, sizeof(line),
		 "{\"event\":\"migration\",\"status\":\"%s\",\"error\":\"%s\",\"total_ms\":%" PRIu64
		 ",\"ram_transferred\":%" PRIu64 ",\"rounds\":%" PRIu64 ",\"progress\":%" PRIu64
		 "}\n",
		 tern_status_name(to), err, st.total_ms, st.ram_transferred, st.rounds,
		 tv_progress(a->vm));
	fputs(line, stdout);
	fflush(stdout);
}

static void app_state_changed(void *opaque, enum tern_status from, enum tern_status to)
{
	struct tv_app *a = opaque;

	tv_log(a->cfg, LOG_DEBUG, "%s: %s -> %s", a->cfg->incoming ? "destination" : "source",
	       tern_status_name(from), tern_status_name(to));
	tv_ctl_state_changed(a->ctl, to);
	if (a->managed && (to == TERN_STATUS_FAILED || to == TERN_STATUS_CANCELLED))
		attempt_report(a, to);
}

static void log_to_stderr(void *opaque, int level, const char *msg)
{
	uint64_t t = tv_now_ns() - t_start_ns;

	fprintf(stderr, "%4" PRIu64 ".%03" PRIu64 " [%s] %s\n", t / UINT64_C(1000000000),
		t / UINT64_C(1000000) % 1000, (const char *)opaque, msg);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/*
 * Watch the guest until @from_ns + --watch-ms; fill the progress fields. A
 * signal that came before (and cancelled the migration) does not shorten the
 * watch: the guest must be seen running on. A new one does.
 */
static void watch(struct tv_app *a, struct tv_result *r, uint64_t from_ns, uint64_t at)
{
	uint64_t end = from_ns + a->cfg->watch_ms * 1000000ull;
	unsigned int sigs = tv_ctl_signals(a->ctl);

	while (tv_now_ns() < end && tv_ctl_signals(a->ctl) == sigs && !tv_vm_failed(a->vm, NULL, 0))
		sleep_ms(10);
	r->progress_at_resume = at;
	r->progress_after = tv_progress(a->vm);
	r->progress_rising = r->progress_after > at;
}

/* Boot and wait for every vCPU's fill. Return: 0, or -1 with r->error set. */
static int boot_and_fill(struct tv_app *a, struct tv_result *r)
{
	struct tern_error err = {0};
	uint64_t t0, done_ns = 0;

	if (tv_vm_init(a->vm, a->cfg, true, &err) || tv_vcpus_start(a->vm, &err)) {
		snprintf(r->error, sizeof(r->error), "%s", err.msg);
		return -1;
	}
	t0 = tv_now_ns();
	while (!tv_fill_done(a->vm, &done_ns)) {
		if (tv_vm_failed(a->vm, r->error, sizeof(r->error)))
			return -1;
		if (tv_ctl_interrupted(a->ctl) || tv_ctl_timed_out(a->ctl)) {
			snprintf(r->error, sizeof(r->error), "%s while the guest filled its RAM",
				 tv_ctl_timed_out(a->ctl) ? "timed out" : "interrupted");
			return -1;
		}
		sleep_ms(5);
	}
	r->fill_ms = (done_ns - t0) / 1000000ull;
	tv_log(a->cfg, LOG_INFO, "guest filled %" PRIu64 " MiB in %" PRIu64 " ms",
	       (uint64_t)((a->cfg->ram - KG_WORK_GPA) >> 20), r->fill_ms);
	return 0;
}

/* A source's boot: on failure the VM is gone and the line printed. */
static int source_boot(struct tv_app *a, struct tv_result *r)
{
	if (!boot_and_fill(a, r))
		return 0;
	tv_vm_fini(a->vm);
	print_result(a->cfg, r);
	return -1;
}

static int run_standalone(struct tv_app *a)
{
	struct tv_result r = {.side = "standalone", .transport = "none"};
	int ok = 0;

	if (!boot_and_fill(a, &r)) {
		watch(a, &r, tv_now_ns(), tv_progress(a->vm));
		tv_vm_failed(a->vm, r.error, sizeof(r.error));
		ok = !r.error[0] && r.progress_rising;
		if (!r.error[0] && !ok)
			snprintf(r.error, sizeof(r.error), "the guest made no progress");
	}
	tv_vm_fini(a->vm);
	print_result(a->cfg, &r);
	return ok ? 0 : 1;
}

static int session_setup(struct tv_app *a, struct tern_session **ret_s, const char *side,
			 struct tern_error *err)
{
	static const struct tern_vmm_ops ops = {.pause = app_pause,
						.resume = app_resume,
						.state_changed = app_state_changed,
						.throttle = app_throttle};
	const struct tv_cfg *cfg = a->cfg;
	struct tern_session *s = NULL;
	int ret;

	ret = tern_session_new(&ops, a, &s, err);
	if (ret)
		return ret;
	*ret_s = s;
	tv_ctl_set_session(a->ctl, s);
	if (cfg->log_level >= 0)
		tern_set_log_fn(s, log_to_stderr, (void *)side, cfg->log_level);
	ret = tern_param_set(s, "multifd-channels", cfg->channels, err);
	if (!ret)
		ret = tern_param_set(s, "downtime-limit", cfg->downtime_limit, err);
	if (!ret)
		ret = tern_param_set(s, "max-bandwidth", cfg->max_bandwidth, err);
	if (!ret && cfg->avail_switchover_bandwidth)
		ret = tern_param_set(s, "avail-switchover-bandwidth",
				     cfg->avail_switchover_bandwidth, err);
	if (!ret)
		ret = tern_param_set(s, "clear-bitmap-shift", cfg->clear_bitmap_shift, err);
	if (!ret && cfg->codec)
		ret = tern_param_set_str(s, "multifd-compression", cfg->codec, err);
	if (!ret && cfg->codec_level && cfg->codec && !strcmp(cfg->codec, "zlib"))
		ret = tern_param_set(s, "multifd-zlib-level", cfg->codec_level, err);
	else if (!ret && cfg->codec_level)
		ret = tern_param_set(s, "multifd-zstd-level", cfg->codec_level, err);
	if (!ret && cfg->xbzrle_cache)
		ret = tern_param_set(s, "xbzrle-cache-size", cfg->xbzrle_cache, err);
	if (!ret && cfg->verify)
		ret = tern_cap_set(s, "verify-ram", true, err);
	if (!ret && cfg->rdma_pin_all)
		ret = tern_cap_set(s, "rdma-pin-all", true, err);
	if (!ret && cfg->rdma_pin_limit)
		ret = tern_param_set(s, "rdma-pin-limit", cfg->rdma_pin_limit, err);
	if (!ret && cfg->zero_copy_send)
		ret = tern_cap_set(s, "zero-copy-send", true, err);
	if (!ret && cfg->postcopy)
		ret = tern_cap_set(s, "postcopy-ram", true, err);
	if (!ret && cfg->pc_recover_timeout_ms)
		ret =
		    tern_param_set(s, "postcopy-recover-timeout", cfg->pc_recover_timeout_ms, err);
	if (!ret)
		ret = converge_opts_apply(s, &cfg->conv, err);
	if (!ret)
		ret = tv_sections_register(s, a->vm, err);
	return ret;
}

/*
 * --mgmt: serve the socket once tern_migrate() / tern_incoming() returned,
 * so that no client's migrate or incoming can race ours (tern_mgmt_listen()'s
 * rule). A client that connects sooner is refused: it retries.
 */
static int mgmt_start(struct tv_app *a, struct tern_session *s, struct tern_error *err)
{
	if (!a->cfg->mgmt)
		return 0;
	return tern_mgmt_listen(s, a->cfg->mgmt, err);
}

/*
 * Wait for the final status. A failed vCPU cancels the migration; after a
 * cancel the library gets TV_FINAL_GRACE_MS to end. Return: false when it
 * did not end (the caller must not free the session then).
 */
static bool wait_final(struct tv_app *a, struct tern_session *s, struct tv_result *r)
{
	uint64_t give_up = 0, postcopy_at = 0;
	bool cancelled = false;

	/* --postcopy-after: from the start of this wait, which follows
	 * tern_migrate() at once */
	if (a->cfg->migrate_to && a->cfg->postcopy_after_ms)
		postcopy_at = tv_now_ns() + a->cfg->postcopy_after_ms * 1000000ull;
	for (;;) {
		enum tern_status st = tern_wait(s, 100);

		if (postcopy_at && tv_now_ns() >= postcopy_at) {
			struct tern_error err = {0};

			postcopy_at = 0;
			if (tern_postcopy_start(s, &err) && err.msg[0])
				tv_log(a->cfg, LOG_WARNING, "%s", err.msg);
		}

		if (st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
		    st == TERN_STATUS_CANCELLED)
			return true;
		if (!cancelled && tv_vm_failed(a->vm, r->error, sizeof(r->error))) {
			tv_ctl_cancel(a->ctl);
			cancelled = true;
		}
		if (!give_up &&
		    (cancelled || tv_ctl_timed_out(a->ctl) || tv_ctl_interrupted(a->ctl)))
			give_up = tv_now_ns() + TV_FINAL_GRACE_MS * 1000000ull;
		if (give_up && tv_now_ns() > give_up) {
			snprintf(r->error, sizeof(r->error),
				 "the migration did not end %u ms after it was cancelled",
				 TV_FINAL_GRACE_MS);
			return false;
		}
	}
}

/*
 * The source's session: parameters, sections, its RAM with the KVM dirty log
 * attached. On failure *@ret_s and *@ret_log hold what was made (free them).
 */
static int source_setup(struct tv_app *a, struct tern_session **ret_s,
			struct tern_kvm_log **ret_log, struct tern_error *err)
{
	struct tern_ram_block *block = NULL;
	struct tern_kvm_slot slot;
	int ret;

	ret = session_setup(a, ret_s, "src", err);
	if (!ret)
		ret = tern_ram_register(*ret_s, "ram", a->vm->kg.ram, a->vm->kg.ram_size, &block,
					err);
	if (!ret) {
		slot = (struct tern_kvm_slot){
		    .slot = a->vm->kg.slot,
		    .flags = 0,
		    .guest_phys_addr = 0,
		    .size = a->vm->kg.ram_size,
		    .host = a->vm->kg.ram,
		    .block = block,
		    .block_offset = 0,
		};
		ret = tern_kvm_log_new(a->vm->kg.vm_fd, &slot, 1, ret_log, err);
	}
	/* before KVM's log: its sync must see the pass it waited for */
	if (!ret && a->cfg->dirty_rounds)
		ret = tv_rounds_attach(a->vm, *ret_s, err);
	if (!ret)
		ret = tern_kvm_log_attach(*ret_s, *ret_log, err);
	if (!ret)
		/* where the vCPU threads report their own writes (held_tsc) */
		tv_vm_set_block(a->vm, block);
	return ret;
}

/*
 * The source's end, whatever happened: the figures, the session freed, the
 * guest left paused after a completion (the library's threads are joined,
 * so the counts are final) or seen running on otherwise, the line printed.
 * @ended: false when the library did not end (then leave without joining).
 * @watch_from: the guest's progress since then is the run's (managed); 0:
 * watch it for --watch-ms from now, as after a one-shot migration.
 */
static int source_finish(struct tv_app *a, struct tv_result *r, struct tern_session *s,
			 struct tern_kvm_log *log, bool ended, uint64_t watch_from)
{
	bool ok;

	tv_throttle_stats(a->vm, &r->throttle_end, &r->throttle_max, &r->throttle_held_ms);
	if (log) {
		tern_kvm_log_stats(log, &r->ks);
		r->have_ks = true;
	}
	tv_ctl_set_session(a->ctl, NULL);
	if (!ended) {
		/* the library is stuck: report and leave without joining it */
		print_result(a->cfg, r);
		_exit(1);
	}
	/* the vCPUs run on: off the block before it dies with the session */
	tv_vm_set_block(a->vm, NULL);
	tern_session_free(s);
	tern_kvm_log_free(log);

	ok = r->st.status == TERN_STATUS_COMPLETED && !r->error[0];
	if (r->st.status != TERN_STATUS_COMPLETED) {
		/*
		 * The library resumed the guest if it had paused it; make sure,
		 * whatever happened to the pause, then see it run on.
		 */
		tv_vcpus_resume(a->vm);
		if (watch_from) {
			r->progress_at_resume = watch_from;
			r->progress_after = tv_progress(a->vm);
			r->progress_rising = r->progress_after > watch_from;
		} else {
			watch(a, r, tv_now_ns(), tv_progress(a->vm));
		}
		if (!r->error[0])
			tv_vm_failed(a->vm, r->error, sizeof(r->error));
	} else {
		uint32_t pauses = __atomic_load_n(&a->pauses, __ATOMIC_RELAXED);
		uint32_t resumes = __atomic_load_n(&a->resumes, __ATOMIC_RELAXED);

		if (pauses <= resumes) {
			snprintf(r->error, sizeof(r->error),
				 "completed but the guest was not left paused (%u pauses, %u "
				 "resumes)",
				 pauses, resumes);
			ok = false;
		}
	}
	tv_vm_fini(a->vm);
	print_result(a->cfg, r);
	return ok ? 0 : 1;
}

static int run_source(struct tv_app *a)
{
	const struct tv_cfg *cfg = a->cfg;
	struct tv_result r = {.side = "source", .transport = uri_transport(cfg->migrate_to)};
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	struct tern_kvm_log *log = NULL;
	bool ended = true;
	int ret;

	if (source_boot(a, &r))
		return 1;
	ret = source_setup(a, &s, &log, &err);
	if (!ret)
		ret = tern_migrate(s, cfg->migrate_to, &err);
	if (!ret && mgmt_start(a, s, &err)) {
		/* running already: cancel it, and say why */
		snprintf(r.error, sizeof(r.error), "--mgmt: %s", err.msg);
		tern_cancel(s);
	}
	if (ret) {
		snprintf(r.error, sizeof(r.error), "%s", err.msg[0] ? err.msg : strerror(-ret));
		r.have_st = s != NULL;
		if (s)
			tern_stats_get(s, &r.st);
		r.st.status = TERN_STATUS_FAILED;
	} else {
		ended = wait_final(a, s, &r);
		tern_stats_get(s, &r.st);
		r.have_st = true;
		if (tv_ctl_timed_out(a->ctl) && !r.error[0])
			snprintf(r.error, sizeof(r.error), "timed out after %" PRIu64 " s: %s",
				 cfg->timeout_s, r.st.error);
	}
	return source_finish(a, &r, s, log, ended, 0);
}

/*
 * --mgmt alone: the operator decides. Boot, fill, serve the socket (its
 * `migrate` starts an attempt, `set` tunes the next or the running one) and
 * run the guest until an attempt completes -- then report as --migrate-to
 * does, the guest left paused -- or a signal, --timeout or a failed vCPU
 * ends the run. A failed or cancelled attempt leaves the guest running (the
 * library resumes what it paused) and the session ready for the next.
 *
 * The main thread only watches; the management server's thread is the one
 * that calls tern_migrate() (tern_mgmt_listen()'s rule), so it stops that
 * server before it cancels: no attempt can start after the cancel.
 */
static int run_managed(struct tv_app *a)
{
	const struct tv_cfg *cfg = a->cfg;
	struct tv_result r = {.side = "source", .transport = "none"};
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	struct tern_kvm_log *log = NULL;
	char uri[300], esc[600];
	enum tern_status st = TERN_STATUS_NONE;
	uint64_t ready_progress;
	bool ended = true;
	int ret;

	if (source_boot(a, &r))
		return 1;
	ret = source_setup(a, &s, &log, &err);
	if (!ret) {
		a->s = s;
		a->managed = true;
		ret = tern_mgmt_listen(s, cfg->mgmt, &err);
	}
	if (ret) {
		snprintf(r.error, sizeof(r.error), "%s", err.msg[0] ? err.msg : strerror(-ret));
		return source_finish(a, &r, s, log, true, tv_progress(a->vm));
	}
	ready_progress = tv_progress(a->vm);
	json_escape(esc, sizeof(esc), cfg->mgmt);
	printf("{\"event\":\"ready\",\"mgmt\":\"%s\"}\n", esc);
	fflush(stdout);

	for (;;) {
		st = tern_wait(s, 200);
		if (st == TERN_STATUS_COMPLETED || tv_vm_failed(a->vm, r.error, sizeof(r.error)) ||
		    tv_ctl_interrupted(a->ctl) || tv_ctl_timed_out(a->ctl))
			break;
		/* no migration runs: tern_wait() returned at once */
		if (st == TERN_STATUS_NONE || st == TERN_STATUS_FAILED ||
		    st == TERN_STATUS_CANCELLED)
			sleep_ms(100);
	}
	if (st != TERN_STATUS_COMPLETED) {
		tern_mgmt_close(s);
		tern_cancel(s);
		/* an attempt that ran (or began before the server closed) ends */
		if (tern_wait(s, 0) != TERN_STATUS_NONE)
			ended = wait_final(a, s, &r);
	}
	tern_stats_get(s, &r.st);
	r.have_st = r.st.status != TERN_STATUS_NONE;
	if (r.have_st && !tern_incoming_uri(s, uri, sizeof(uri)))
		r.transport = uri_transport(uri);
	if (!r.error[0] && tv_ctl_timed_out(a->ctl))
		snprintf(r.error, sizeof(r.error), "timed out after %" PRIu64 " s", cfg->timeout_s);
	else if (!r.error[0] && r.st.status != TERN_STATUS_COMPLETED)
		snprintf(r.error, sizeof(r.error),
			 "stopped by a signal before a migration completed");
	return source_finish(a, &r, s, log, ended, ready_progress ? ready_progress : 1);
}

static int run_destination(struct tv_app *a)
{
	const struct tv_cfg *cfg = a->cfg;
	struct tv_result r = {.side = "destination", .transport = uri_transport(cfg->incoming)};
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	char bound[512] = "", esc[600];
	bool ended, ok;
	int ret;

	ret = tv_vm_init(a->vm, cfg, false, &err);
	if (!ret)
		ret = session_setup(a, &s, "dst", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram", a->vm->kg.ram, a->vm->kg.ram_size, NULL, &err);
	if (!ret)
		ret = tern_incoming(s, cfg->incoming, &err);
	if (!ret)
		ret = tern_incoming_uri(s, bound, sizeof(bound));
	if (!ret)
		ret = mgmt_start(a, s, &err); /* before the listening line: it is up then */
	if (ret) {
		snprintf(r.error, sizeof(r.error), "%s", err.msg[0] ? err.msg : strerror(-ret));
		r.st.status = TERN_STATUS_FAILED;
		r.have_st = true;
		tv_ctl_set_session(a->ctl, NULL);
		tern_session_free(s);
		tv_vm_fini(a->vm);
		print_result(cfg, &r);
		return 1;
	}
	json_escape(esc, sizeof(esc), bound);
	printf("{\"event\":\"listening\",\"uri\":\"%s\"}\n", esc);
	fflush(stdout);

	ended = wait_final(a, s, &r);
	tern_stats_get(s, &r.st);
	r.have_st = true;
	if (tv_ctl_timed_out(a->ctl) && !r.error[0])
		snprintf(r.error, sizeof(r.error), "timed out after %" PRIu64 " s: %s",
			 cfg->timeout_s, r.st.error);
	tv_ctl_set_session(a->ctl, NULL);
	if (!ended) {
		print_result(cfg, &r);
		_exit(1);
	}
	tern_session_free(s);

	if (r.st.status == TERN_STATUS_COMPLETED) {
		if (!__atomic_load_n(&a->resumed, __ATOMIC_ACQUIRE))
			snprintf(r.error, sizeof(r.error), "completed without a resume callback");
		else if (a->resume_err.code)
			snprintf(r.error, sizeof(r.error), "%s", a->resume_err.msg);
		else
			watch(a, &r, __atomic_load_n(&a->resume_ns, __ATOMIC_RELAXED),
			      __atomic_load_n(&a->progress_at_resume, __ATOMIC_RELAXED));
		if (!r.error[0])
			tv_vm_failed(a->vm, r.error, sizeof(r.error));
		if (!r.error[0] && !r.progress_rising)
			snprintf(r.error, sizeof(r.error),
				 "the guest made no progress in %" PRIu64 " ms after resume",
				 cfg->watch_ms);
	}
	ok = r.st.status == TERN_STATUS_COMPLETED && !r.error[0] && r.progress_rising;
	tv_vm_fini(a->vm);
	print_result(cfg, &r);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct tv_cfg cfg = {
	    .vcpus = 1,
	    .fill = TV_FILL_RANDOM,
	    .dirty_ws = 64ull << 20,
	    .pattern = TV_PATTERN_SEQUENTIAL,
	    .channels = 2,
	    .downtime_limit = 300,
	    .clear_bitmap_shift = 18,
	    .watch_ms = 1000,
	    .timeout_s = 120,
	    .log_level = LOG_WARNING,
	};
	struct tern_error err = {0};
	static struct tv_vm vm; /* large: keep it off the stack */
	struct tv_app app = {0};
	int ret;

	t_start_ns = tv_now_ns();
	parse_args(argc, argv, &cfg);
	signal(SIGPIPE, SIG_IGN);
	app.cfg = &cfg;
	app.vm = &vm;
	if (tv_ctl_start(&cfg, &app.ctl, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	if (cfg.incoming)
		ret = run_destination(&app);
	else if (cfg.migrate_to)
		ret = run_source(&app);
	else if (cfg.mgmt)
		ret = run_managed(&app);
	else
		ret = run_standalone(&app);
	tv_ctl_stop(app.ctl);
	return ret;
}
