/* SPDX-License-Identifier: MIT */
/*
 * tern-loopback: migrate a block of anonymous memory between two processes
 * over loopback and print each side's figures as one JSON line.
 *
 * By default the program forks before it starts any thread. The child is the
 * destination: it listens on tcp:127.0.0.1:0 (or unix:/tmp/tern-loopback-<pid>.sock),
 * sends the bound URI to the parent through a pipe and waits for the
 * migration. The parent is the source: it fills its RAM (not timed), starts
 * an optional writer thread that keeps dirtying pages, migrates, and waits.
 * The destination line is printed first, then the source line; the exit
 * status is 0 only when both sides completed (and verified, with --verify).
 *
 * --incoming URI and --migrate-to URI run one side only, for two hosts or
 * two terminals.
 *
 * Management sockets (docs/MGMT.md): --mgmt PATH serves the side this
 * process runs itself: the source in the two-process mode and with
 * --migrate-to, the destination with --incoming. --mgmt-dest PATH serves the
 * forked destination of the two-process mode. Each server starts once its
 * side's tern_migrate() / tern_incoming() returned (a destination's before
 * it hands its URI over), so no client's migrate or incoming races ours.
 *
 * This file holds the options, main() and the two-process orchestration.
 * One migration side is in lb_side.c, the guest memory and the writer thread
 * (with its auto-converge throttle) in lb_writer.c, stderr and the JSON lines
 * in lb_report.c; lb.h is what they share.
 *
 * This program uses the public API only, as a third-party VMM would.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "lb.h"

/* 4096, 64K, 256M, 1G, 1GiB, 1GB: binary multiples, as QEMU reads them. */
static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	case 'b':
	case 'B':
		break;
	default:
		return -EINVAL;
	}
	if (shift) {
		end++;
		if (*end == 'i')
			end++;
	}
	if (*end == 'b' || *end == 'B')
		end++;
	if (!strcmp(end, "/s"))
		end += 2;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

static uint64_t opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v))
		lb_die("%s: bad size '%s' (e.g. 4096, 64K, 256M, 1G, 1GiB)", opt, arg);
	return v;
}

static unsigned long opt_uint(const char *opt, const char *arg, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v > max)
		lb_die("%s: bad value '%s' (0..%lu)", opt, arg, max);
	return v;
}

/* ---- two processes ---------------------------------------------------- */

/* Wait up to @grace_ms for the child, then kill it. Returns its exit status (or 1). */
static int reap_child(pid_t pid, unsigned int grace_ms)
{
	int status = 0;
	unsigned int waited = 0;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return 1;
		if (waited >= grace_ms) {
			fprintf(stderr,
				"%s: destination still running %u ms after the source ended, "
				"killing it\n",
				lb_prog, grace_ms);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 1;
		}
		usleep(10000);
		waited += 10;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "%s: destination killed by signal %d\n", lb_prog,
		WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return 1;
}

static int run_both(const struct lb_cfg *cfg)
{
	char uri[LB_URI_MAX], src_line[LB_LINE_MAX] = "";
	size_t got = 0;
	int fds[2], src_ret, dst_ret;
	pid_t pid;

	if (pipe(fds))
		lb_die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		lb_die("fork: %s", strerror(errno));
	if (pid == 0) {
		char listen_uri[LB_URI_MAX];

		close(fds[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (!strcmp(cfg->transport, "unix")) {
			snprintf(listen_uri, sizeof(listen_uri), "unix:/tmp/tern-loopback-%d.sock",
				 (int)getpid());
			unlink(listen_uri + 5);
		} else if (!strcmp(cfg->transport, "rdma")) {
			/* rdma_cm needs an address on the RDMA device's netdev */
			snprintf(listen_uri, sizeof(listen_uri),
				 strchr(cfg->rdma_addr, ':') ? "rdma:[%s]:0" : "rdma:%s:0",
				 cfg->rdma_addr);
		} else {
			snprintf(listen_uri, sizeof(listen_uri), "tcp:127.0.0.1:0");
		}
		_exit(lb_run_destination(cfg, listen_uri, fds[1], cfg->mgmt_dest));
	}
	close(fds[1]);
	while (got < sizeof(uri)) {
		ssize_t n = read(fds[0], uri + got, sizeof(uri) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(uri, '\0', got))
			break;
	}
	close(fds[0]);
	if (!got || !memchr(uri, '\0', got)) {
		fprintf(stderr, "%s: the destination did not start\n", lb_prog);
		reap_child(pid, 10000);
		return 1;
	}
	lb_defer_line(src_line);
	src_ret = lb_run_source(cfg, uri);
	lb_defer_line(NULL);
	/* the destination ends with the source; give it time on failure */
	dst_ret = reap_child(pid, src_ret ? 30000 : 60000);
	if (src_line[0])
		lb_emit_line(src_line);
	return src_ret || dst_ret ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options]\n"
		"  --ram SIZE             memory to migrate (default 256M; 1G, 1GiB, ...)\n"
		"  --channels N           worker channels, 1..%d (default 2)\n"
		"  --transport tcp|unix|rdma  loopback transport (default tcp)\n"
		"  --rdma-addr ADDR       --transport rdma: an address on the RDMA device's\n"
		"                         netdev (default: $TERN_RDMA_ADDR)\n"
		"  --rdma-pin-all         rdma-pin-all capability (register all RAM at setup)\n"
		"  --zero-copy-send       source: zero-copy-send capability (tcp: MSG_ZEROCOPY)\n"
		"  --rdma-pin-limit SIZE  rdma-pin-limit parameter (default 1G)\n"
		"  --zero-pct P           percentage of pages left zero (default 0)\n"
		"  --zero-run N           zero or not is decided for runs of N pages\n"
		"                         (default 1: scattered; 512: 2 MiB runs)\n"
		"  --fill random|text     page contents (default random)\n"
		"  --dirty-rate B/s       source writer dirties this much per second (default 0)\n"
		"  --dirty-ws SIZE        ... within the first SIZE bytes (default: all RAM)\n"
		"  --downtime-limit MS    downtime-limit parameter\n"
		"  --max-bandwidth B/s    max-bandwidth parameter (default unlimited)\n"
		"  --avail-switchover-bandwidth B/s  what the switchover may use (default:\n"
		"                         not declared; learned under max-bandwidth)\n"
		"  --dirty-bytes N        ... rewriting N bytes of a page per write, not the\n"
		"                         whole page (default: whole pages)\n"
		"  --verify               verify-ram capability on both sides\n"
		"  --codec NAME           multifd-compression: none (default), zlib, zstd,\n"
		"                         xbzrle, auto\n"
		"  --zlib-level N         multifd-zlib-level, 1..9\n"
		"  --zstd-level N         multifd-zstd-level, 1..20\n"
		"  --xbzrle-cache SIZE    xbzrle-cache-size (default 64M)\n"
		"  --incoming URI         run the destination only, listening on URI\n"
		"  --migrate-to URI       run the source only, migrating to URI\n"
		"  --timeout S            cancel after S seconds (default 600, 0 = never)\n"
		"  --seed N               fill seed\n"
		"  --mgmt PATH            management socket of this process's side (the\n"
		"                         source, or the destination with --incoming)\n"
		"  --mgmt-dest PATH       management socket of the forked destination\n"
		"  --auto-converge        source: auto-converge (throttles the writer)\n"
		"  --cpu-throttle-initial P    source: cpu-throttle-initial, 1..99\n"
		"  --cpu-throttle-increment P  source: cpu-throttle-increment, 1..99\n"
		"  --max-cpu-throttle P   source: max-cpu-throttle, 1..99\n"
		"  --migration-timeout S  source: migration-timeout, 0..31536000 s\n"
		"  --timeout-policy P     source: migration-timeout-policy, cancel |\n"
		"                         force | postcopy\n"
		"  --pause-before-switchover  source: wait in pre-switchover until\n"
		"                         `continue` on the source's --mgmt socket\n"
		"  --postcopy             postcopy-ram capability on both sides; the\n"
		"                         destination's guest (--dirty-rate, --dirty-ws)\n"
		"                         runs from the switch to postcopy on\n"
		"  --postcopy-after MS    source: switch to postcopy MS ms after the start\n"
		"                         (implies --postcopy; otherwise `postcopy` on\n"
		"                         the source's --mgmt socket)\n"
		"  --dest-guest write|read  postcopy: the destination's guest writes its\n"
		"                         working set (default) or only reads it\n"
		"  --postcopy-recover-timeout MS  both sides: postcopy-recover-timeout\n"
		"                         (paused in postcopy: give up after MS ms;\n"
		"                         recover / resume on the --mgmt sockets)\n"
		"  --io-timeout MS        io-timeout, both sides\n"
		"  -v, --verbose          library log at LOG_INFO (twice: LOG_DEBUG)\n"
		"  -q, --quiet            no library log at all\n",
		lb_prog, TERN_MAX_CHANNELS);
}

int main(int argc, char **argv)
{
	enum {
		OPT_RAM = 256,
		OPT_CHANNELS,
		OPT_TRANSPORT,
		OPT_RDMA_ADDR,
		OPT_RDMA_PIN_ALL,
		OPT_ZERO_COPY_SEND,
		OPT_RDMA_PIN_LIMIT,
		OPT_ZERO_PCT,
		OPT_ZERO_RUN,
		OPT_FILL,
		OPT_DIRTY_RATE,
		OPT_DIRTY_WS,
		OPT_DOWNTIME,
		OPT_MAX_BW,
		OPT_AVAIL_SW_BW,
		OPT_VERIFY,
		OPT_INCOMING,
		OPT_MIGRATE_TO,
		OPT_TIMEOUT,
		OPT_SEED,
		OPT_CODEC,
		OPT_ZLIB_LEVEL,
		OPT_ZSTD_LEVEL,
		OPT_XBZRLE_CACHE,
		OPT_DIRTY_BYTES,
		OPT_MGMT,
		OPT_MGMT_DEST,
		OPT_AUTO_CONVERGE,
		OPT_THROTTLE_INITIAL,
		OPT_THROTTLE_INCREMENT,
		OPT_MAX_THROTTLE,
		OPT_MIGRATION_TIMEOUT,
		OPT_TIMEOUT_POLICY,
		OPT_PAUSE_BEFORE_SWITCHOVER,
		OPT_POSTCOPY,
		OPT_POSTCOPY_AFTER,
		OPT_DEST_GUEST,
		OPT_PC_RECOVER_TIMEOUT,
		OPT_IO_TIMEOUT,
	};
	static const struct option longopts[] = {
	    {"ram", required_argument, NULL, OPT_RAM},
	    {"channels", required_argument, NULL, OPT_CHANNELS},
	    {"transport", required_argument, NULL, OPT_TRANSPORT},
	    {"rdma-addr", required_argument, NULL, OPT_RDMA_ADDR},
	    {"rdma-pin-all", no_argument, NULL, OPT_RDMA_PIN_ALL},
	    {"zero-copy-send", no_argument, NULL, OPT_ZERO_COPY_SEND},
	    {"rdma-pin-limit", required_argument, NULL, OPT_RDMA_PIN_LIMIT},
	    {"zero-pct", required_argument, NULL, OPT_ZERO_PCT},
	    {"zero-run", required_argument, NULL, OPT_ZERO_RUN},
	    {"fill", required_argument, NULL, OPT_FILL},
	    {"dirty-rate", required_argument, NULL, OPT_DIRTY_RATE},
	    {"dirty-ws", required_argument, NULL, OPT_DIRTY_WS},
	    {"downtime-limit", required_argument, NULL, OPT_DOWNTIME},
	    {"max-bandwidth", required_argument, NULL, OPT_MAX_BW},
	    {"avail-switchover-bandwidth", required_argument, NULL, OPT_AVAIL_SW_BW},
	    {"postcopy", no_argument, NULL, OPT_POSTCOPY},
	    {"postcopy-after", required_argument, NULL, OPT_POSTCOPY_AFTER},
	    {"dest-guest", required_argument, NULL, OPT_DEST_GUEST},
	    {"postcopy-recover-timeout", required_argument, NULL, OPT_PC_RECOVER_TIMEOUT},
	    {"io-timeout", required_argument, NULL, OPT_IO_TIMEOUT},
	    {"verify", no_argument, NULL, OPT_VERIFY},
	    {"incoming", required_argument, NULL, OPT_INCOMING},
	    {"migrate-to", required_argument, NULL, OPT_MIGRATE_TO},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"codec", required_argument, NULL, OPT_CODEC},
	    {"zlib-level", required_argument, NULL, OPT_ZLIB_LEVEL},
	    {"zstd-level", required_argument, NULL, OPT_ZSTD_LEVEL},
	    {"xbzrle-cache", required_argument, NULL, OPT_XBZRLE_CACHE},
	    {"dirty-bytes", required_argument, NULL, OPT_DIRTY_BYTES},
	    {"mgmt", required_argument, NULL, OPT_MGMT},
	    {"mgmt-dest", required_argument, NULL, OPT_MGMT_DEST},
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
	struct lb_cfg cfg = {
	    .ram = 256ull << 20,
	    .channels = 2,
	    .transport = "tcp",
	    .fill = LB_FILL_RANDOM,
	    .timeout_s = 600,
	    .log_level = LOG_WARNING,
	    .codec = "none",
	};
	bool source_only = false;
	int c;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_RAM:
			cfg.ram = opt_size("--ram", optarg);
			break;
		case OPT_CHANNELS:
			cfg.channels =
			    (unsigned int)opt_uint("--channels", optarg, TERN_MAX_CHANNELS);
			break;
		case OPT_RDMA_ADDR:
			cfg.rdma_addr = optarg;
			break;
		case OPT_RDMA_PIN_ALL:
			cfg.rdma_pin_all = true;
			break;
		case OPT_ZERO_COPY_SEND:
			cfg.zero_copy_send = true;
			break;
		case OPT_POSTCOPY:
			cfg.postcopy = true;
			break;
		case OPT_POSTCOPY_AFTER:
			cfg.postcopy = true;
			cfg.postcopy_after_ms = opt_uint("--postcopy-after", optarg, 86400000);
			break;
		case OPT_PC_RECOVER_TIMEOUT:
			cfg.pc_recover_timeout_ms =
			    opt_uint("--postcopy-recover-timeout", optarg, 31536000000ull);
			break;
		case OPT_IO_TIMEOUT:
			cfg.io_timeout_ms = opt_uint("--io-timeout", optarg, 3600000);
			break;
		case OPT_DEST_GUEST:
			if (strcmp(optarg, "write") && strcmp(optarg, "read"))
				lb_die("--dest-guest: write or read, not '%s'", optarg);
			cfg.dest_read = !strcmp(optarg, "read");
			break;
		case OPT_RDMA_PIN_LIMIT:
			cfg.rdma_pin_limit = opt_size("--rdma-pin-limit", optarg);
			break;
		case OPT_TRANSPORT:
			if (strcmp(optarg, "tcp") && strcmp(optarg, "unix") &&
			    strcmp(optarg, "rdma"))
				lb_die("--transport: tcp, unix or rdma, not '%s'", optarg);
			cfg.transport = optarg;
			break;
		case OPT_ZERO_PCT: {
			char *end;

			cfg.zero_pct = strtod(optarg, &end);
			if (end == optarg || *end || cfg.zero_pct < 0 || cfg.zero_pct > 100)
				lb_die("--zero-pct: 0..100, not '%s'", optarg);
			break;
		}
		case OPT_ZERO_RUN: {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (end == optarg || *end || !v || v > (1ull << 30))
				lb_die("--zero-run: a page count 1..2^30, not '%s'", optarg);
			cfg.zero_run = v;
			break;
		}
		case OPT_FILL:
			if (!strcmp(optarg, "random"))
				cfg.fill = LB_FILL_RANDOM;
			else if (!strcmp(optarg, "text"))
				cfg.fill = LB_FILL_TEXT;
			else
				lb_die("--fill: random or text, not '%s'", optarg);
			break;
		case OPT_DIRTY_RATE:
			cfg.dirty_rate = opt_size("--dirty-rate", optarg);
			break;
		case OPT_DIRTY_WS:
			cfg.dirty_ws = opt_size("--dirty-ws", optarg);
			break;
		case OPT_DOWNTIME:
			cfg.downtime_limit = opt_uint("--downtime-limit", optarg, 2000000);
			break;
		case OPT_MAX_BW:
			cfg.max_bandwidth = opt_size("--max-bandwidth", optarg);
			break;
		case OPT_AVAIL_SW_BW:
			cfg.avail_switchover_bandwidth =
			    opt_size("--avail-switchover-bandwidth", optarg);
			break;
		case OPT_VERIFY:
			cfg.verify = true;
			break;
		case OPT_INCOMING:
			cfg.incoming = optarg;
			break;
		case OPT_MIGRATE_TO:
			cfg.migrate_to = optarg;
			break;
		case OPT_TIMEOUT:
			cfg.timeout_s = (unsigned int)opt_uint("--timeout", optarg, 86400);
			break;
		case OPT_SEED:
			cfg.seed = strtoull(optarg, NULL, 0);
			break;
		case OPT_CODEC:
			if (strcmp(optarg, "none") && strcmp(optarg, "zlib") &&
			    strcmp(optarg, "zstd") && strcmp(optarg, "xbzrle") &&
			    strcmp(optarg, "auto"))
				lb_die("--codec: none, zlib, zstd, xbzrle or auto, not '%s'",
				       optarg);
			cfg.codec = optarg;
			break;
		case OPT_ZLIB_LEVEL:
			cfg.zlib_level = opt_uint("--zlib-level", optarg, 9);
			if (!cfg.zlib_level)
				lb_die("--zlib-level: 1..9");
			break;
		case OPT_ZSTD_LEVEL:
			cfg.zstd_level = opt_uint("--zstd-level", optarg, 20);
			if (!cfg.zstd_level)
				lb_die("--zstd-level: 1..20");
			break;
		case OPT_XBZRLE_CACHE:
			cfg.xbzrle_cache = opt_size("--xbzrle-cache", optarg);
			break;
		case OPT_DIRTY_BYTES:
			cfg.dirty_bytes = opt_uint("--dirty-bytes", optarg, 1u << 20);
			break;
		case OPT_MGMT:
			if (!optarg[0])
				lb_die("--mgmt: a socket path");
			cfg.mgmt = optarg;
			break;
		case OPT_MGMT_DEST:
			if (!optarg[0])
				lb_die("--mgmt-dest: a socket path");
			cfg.mgmt_dest = optarg;
			break;
		case OPT_AUTO_CONVERGE:
			cfg.conv.auto_converge = true;
			source_only = true;
			break;
		case OPT_THROTTLE_INITIAL:
			cfg.conv.throttle_initial = opt_uint("--cpu-throttle-initial", optarg, 99);
			if (!cfg.conv.throttle_initial)
				lb_die("--cpu-throttle-initial: 1..99");
			source_only = true;
			break;
		case OPT_THROTTLE_INCREMENT:
			cfg.conv.throttle_increment =
			    opt_uint("--cpu-throttle-increment", optarg, 99);
			if (!cfg.conv.throttle_increment)
				lb_die("--cpu-throttle-increment: 1..99");
			source_only = true;
			break;
		case OPT_MAX_THROTTLE:
			cfg.conv.max_throttle = opt_uint("--max-cpu-throttle", optarg, 99);
			if (!cfg.conv.max_throttle)
				lb_die("--max-cpu-throttle: 1..99");
			source_only = true;
			break;
		case OPT_MIGRATION_TIMEOUT:
			cfg.conv.migration_timeout =
			    opt_uint("--migration-timeout", optarg, 31536000);
			source_only = true;
			break;
		case OPT_TIMEOUT_POLICY:
			if (strcmp(optarg, "cancel") && strcmp(optarg, "force") &&
			    strcmp(optarg, "postcopy"))
				lb_die("--timeout-policy: cancel, force or postcopy, not '%s'",
				       optarg);
			cfg.conv.timeout_policy = optarg;
			source_only = true;
			break;
		case OPT_PAUSE_BEFORE_SWITCHOVER:
			cfg.conv.pause_before_switchover = true;
			source_only = true;
			break;
		case 'v':
			cfg.log_level = cfg.log_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
			break;
		case 'q':
			cfg.log_level = -1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}

	lb_log_start();
	cfg.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (!cfg.ram || cfg.ram % cfg.page_size)
		lb_die("--ram: a non-zero multiple of the page size (%zu)", cfg.page_size);
	if (!cfg.channels)
		lb_die("--channels: 1..%d", TERN_MAX_CHANNELS);
	if (cfg.incoming && cfg.migrate_to)
		lb_die("--incoming and --migrate-to are exclusive");
	if (!cfg.dirty_ws)
		cfg.dirty_ws = cfg.ram;
	if (cfg.dirty_ws < cfg.page_size && cfg.dirty_rate)
		lb_die("--dirty-ws: at least one page");
	if (cfg.dirty_bytes >= cfg.page_size)
		lb_die("--dirty-bytes: less than a page (%zu)", cfg.page_size);
	if (source_only && cfg.incoming)
		lb_die(
		    "--auto-converge, --cpu-throttle-*, --max-cpu-throttle, --migration-timeout, "
		    "--timeout-policy and --pause-before-switchover are source options");
	if (cfg.mgmt_dest && (cfg.incoming || cfg.migrate_to))
		lb_die("--mgmt-dest: only when both sides run here (with --incoming, use --mgmt)");
	if (cfg.mgmt && cfg.mgmt_dest && !strcmp(cfg.mgmt, cfg.mgmt_dest))
		lb_die("--mgmt and --mgmt-dest: two different paths");
	/* nothing but a `continue` on the source's socket would end the wait */
	if (cfg.conv.pause_before_switchover && !cfg.mgmt)
		lb_die("--pause-before-switchover needs --mgmt (continue comes through it)");
	if (!cfg.incoming && !cfg.migrate_to && !strcmp(cfg.transport, "rdma")) {
		if (!cfg.rdma_addr)
			cfg.rdma_addr = getenv("TERN_RDMA_ADDR");
		if (!cfg.rdma_addr || !*cfg.rdma_addr)
			lb_die("--transport rdma: give --rdma-addr ADDR (or TERN_RDMA_ADDR), an "
			       "address on the RDMA device's netdev: rdma_cm cannot use loopback");
	}
	signal(SIGPIPE, SIG_IGN);

	if (cfg.incoming) {
		cfg.transport = lb_uri_transport(cfg.incoming);
		return lb_run_destination(&cfg, cfg.incoming, -1, cfg.mgmt);
	}
	if (cfg.migrate_to) {
		cfg.transport = lb_uri_transport(cfg.migrate_to);
		return lb_run_source(&cfg, cfg.migrate_to);
	}
	return run_both(&cfg);
}
