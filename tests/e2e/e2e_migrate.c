/* SPDX-License-Identifier: MIT */
/*
 * e2e_migrate: one live migration over loopback between two processes, with
 * a guest that keeps writing, checked byte for byte (the harness and its
 * picture: e2e_pair.c), and its stats checked against what the fill and the
 * writer did.
 *
 * The writer rewrites pseudo-random pages of the first --ws bytes, some with
 * random data and some with zeros (so pages go from data to zero), and calls
 * tern_ram_mark_dirty() after each write. The downtime limit is small so that
 * the migration needs several rounds; the test asserts --min-rounds.
 *
 * With --expect-dirty-rate the source's dirty_pages_rate must have been
 * measured (a window closed) and lie within 0.5x..2x of the writer's pace:
 * loose, as the writer lags on a loaded machine (the lower bound follows
 * the pace it achieved). Use it with --sequential and a working set the
 * writer takes longer to go round than any round lasts, so that every
 * write is a page newly dirtied.
 *
 * No other timing assertion: the wall-clock limit (--timeout) is a hang
 * guard.
 * Exit status: 0 pass, 1 fail (a setup error is a failure too), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <tern/tern.h>

#include "e2e.h"

/* The figure an operator reads against the pace the writer kept. */
static void check_dirty_rate(struct e2e_src *src, const struct tern_stats *st, uint64_t writes)
{
	const struct e2e_cfg *cfg = src->cfg;
	double got = (double)st->dirty_pages_rate * st->page_size;
	double kept = st->total_ms ? (double)writes * cfg->page_size * 1000 / st->total_ms : 0;
	double low = 0.5 * (kept < cfg->dirty_rate ? kept : (double)cfg->dirty_rate);
	double high = 2.0 * (double)cfg->dirty_rate;

	e2e_note("dirty rate %.0f B/s over %" PRIu64 " ms; writer set %" PRIu64
		 " B/s, kept %.0f B/s",
		 got, st->dirty_rate_window_ms, cfg->dirty_rate, kept);
	if (st->dirty_rate_window_ms < 1000)
		e2e_fail(&src->failures, "dirty rate window %" PRIu64 " ms: none of 1 s closed",
			 st->dirty_rate_window_ms);
	else if (got < low || got > high)
		e2e_fail(&src->failures, "dirty rate %.0f B/s outside %.0f..%.0f", got, low, high);
}

/*
 * rdma: how the pages travelled and what was pinned, from both sides'
 * figures. Raw pages (codec none) are written in place and nothing else is;
 * encoded payloads go through the staging ring; the destination holds no
 * registration once it completed; pin-all pins all RAM, and otherwise the
 * registration cache keeps within rdma-pin-limit (each channel at least
 * 4 MiB) and, when the limit is smaller than what was sent, re-registers.
 */
static void check_rdma(struct e2e_src *src, const struct tern_stats *st,
		       const struct tern_stats *dst)
{
	const struct e2e_cfg *cfg = src->cfg;
	uint64_t raw = st->codec[TERN_STATS_CODEC_NONE].bytes_in, staged = 0;
	uint64_t limit = cfg->rdma_pin_limit ? cfg->rdma_pin_limit : 1ull << 30;
	uint64_t floor = (uint64_t)cfg->channels * (4ull << 20);
	int c;

	for (c = TERN_STATS_CODEC_ZLIB; c < TERN_STATS_CODECS; c++)
		staged += st->codec[c].bytes_out;
	e2e_note("rdma: source placed %" PRIu64 " staged %" PRIu64 " pinned peak %" PRIu64
		 " in %" PRIu64 " registrations (%" PRIu64 " us); destination pinned peak %" PRIu64
		 " now %" PRIu64 " in %" PRIu64 " registrations",
		 st->rdma_placed_bytes, st->rdma_staged_bytes, st->rdma_pinned_peak,
		 st->rdma_chunks_registered, st->rdma_reg_us, dst->rdma_pinned_peak,
		 dst->rdma_pinned_bytes, dst->rdma_chunks_registered);
	if (st->rdma_placed_bytes != raw)
		e2e_fail(&src->failures,
			 "rdma: %" PRIu64 " bytes written in place, %" PRIu64
			 " bytes of raw pages sent",
			 st->rdma_placed_bytes, raw);
	if (st->rdma_staged_bytes < staged)
		e2e_fail(&src->failures,
			 "rdma: %" PRIu64 " bytes staged, %" PRIu64
			 " bytes of encoded payload sent",
			 st->rdma_staged_bytes, staged);
	if (dst->rdma_pinned_bytes)
		e2e_fail(&src->failures,
			 "rdma: the destination still has %" PRIu64
			 " bytes registered after completing",
			 dst->rdma_pinned_bytes);
	/* a staging ring is a registration; guest RAM is pinned for raw pages */
	if (!dst->rdma_chunks_registered || (raw && !dst->rdma_pinned_peak))
		e2e_fail(&src->failures,
			 "rdma: the destination registered %" PRIu64 " regions, peak %" PRIu64
			 " bytes of RAM, for %" PRIu64 " raw bytes",
			 dst->rdma_chunks_registered, dst->rdma_pinned_peak, raw);
	if (cfg->rdma_pin_all) {
		if (st->rdma_pinned_peak < cfg->ram || dst->rdma_pinned_peak < cfg->ram)
			e2e_fail(&src->failures,
				 "rdma-pin-all: peak pinned %" PRIu64 " / %" PRIu64
				 " bytes, less than the %" PRIu64 " of RAM",
				 st->rdma_pinned_peak, dst->rdma_pinned_peak, cfg->ram);
		return;
	}
	if (limit < floor)
		limit = floor;
	if (st->rdma_pinned_peak > limit || dst->rdma_pinned_peak > limit)
		e2e_fail(&src->failures,
			 "rdma-pin-limit %" PRIu64 ": peak pinned %" PRIu64 " / %" PRIu64 " bytes",
			 limit, st->rdma_pinned_peak, dst->rdma_pinned_peak);
	if (raw > 2 * limit && st->rdma_chunks_registered << 20 <= limit)
		e2e_fail(&src->failures,
			 "rdma-pin-limit %" PRIu64 ": %" PRIu64 " bytes sent raw, yet only %" PRIu64
			 " chunks registered (no eviction)",
			 limit, raw, st->rdma_chunks_registered);
}

/*
 * zero-copy-send: raw pages went zero-copy (every packet of codec none, but
 * those the kernel refused with ENOBUFS, which went by copy), nothing went
 * that was not a raw page, and the kernel's reports of copying are among
 * the sends. Whether it copied (it does on loopback) is reported, not
 * asserted.
 */
static void check_zero_copy(struct e2e_src *src, const struct tern_stats *st)
{
	uint64_t raw = st->codec[TERN_STATS_CODEC_NONE].bytes_in;

	e2e_note("zero-copy: %" PRIu64 " sends, %" PRIu64 " bytes (of %" PRIu64
		 " raw page bytes), %" PRIu64 " copied by the kernel, %" PRIu64
		 " packets by copy (ENOBUFS)",
		 st->zero_copy_sends, st->zero_copy_bytes, raw, st->zero_copy_copied,
		 st->zero_copy_fallbacks);
	if (raw && !st->zero_copy_sends && !st->zero_copy_fallbacks)
		e2e_fail(&src->failures, "zero-copy-send: %" PRIu64 " raw bytes, no zero-copy send",
			 raw);
	if (st->zero_copy_bytes > raw)
		e2e_fail(&src->failures,
			 "zero-copy-send: %" PRIu64 " bytes sent zero-copy, more than the %" PRIu64
			 " raw page bytes",
			 st->zero_copy_bytes, raw);
	if (st->zero_copy_copied > st->zero_copy_sends)
		e2e_fail(&src->failures, "zero-copy-send: %" PRIu64 " copied of %" PRIu64 " sends",
			 st->zero_copy_copied, st->zero_copy_sends);
}

static int run_source(const struct e2e_cfg *cfg, int fd, pid_t child, void *arg)
{
	struct e2e_src src = {.cfg = cfg};
	struct e2e_report rep = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct e2e_names names = {0};
	uint64_t writes = 0, cpu0;
	bool timed_out = false;
	int ret;

	if (e2e_src_setup(&src, cfg, fd) < 0) {
		e2e_src_free(&src);
		kill(child, SIGKILL);
		return 2;
	}
	if (e2e_names_start(&names) < 0)
		e2e_fail(&src.failures, "cannot start the thread-name watcher");
	cpu0 = e2e_process_cpu_us();
	ret = tern_migrate(src.s, src.uri, &err);
	if (ret < 0) {
		e2e_note("tern_migrate: %s (%s)", err.msg[0] ? err.msg : "-", strerror(-ret));
		e2e_names_stop(&names);
		e2e_src_free(&src);
		kill(child, SIGKILL);
		return 2;
	}
	e2e_note("migrating %" PRIu64 " MiB to %s, %u channel(s), %" PRIu64
		 " zero pages, writer %" PRIu64 " B/s over %" PRIu64 " MiB",
		 cfg->ram >> 20, src.uri, cfg->channels, src.fc.zero, cfg->dirty_rate,
		 cfg->ws >> 20);

	e2e_wait_final(src.s, cfg->timeout_s, &timed_out);
	cpu0 = e2e_process_cpu_us() - cpu0;
	e2e_names_stop(&names);
	tern_stats_get(src.s, &st);
	writes = e2e_writer_iter(&src.writer);
	if (timed_out) {
		e2e_fail(&src.failures, "no end after %u s: cancelled (status %s then)",
			 cfg->timeout_s, tern_status_name(st.status));
		kill(child, SIGKILL);
		goto out;
	}
	if (st.status != TERN_STATUS_COMPLETED)
		e2e_fail(&src.failures, "source ended %s: %s", tern_status_name(st.status),
			 st.error[0] ? st.error : "(no message)");
	if (src.writer.pauses != 1)
		e2e_fail(&src.failures, "pause called %u times, expected once", src.writer.pauses);
	if (st.status == TERN_STATUS_COMPLETED && src.writer.resumes)
		e2e_fail(&src.failures, "completed, yet the source guest was resumed %u time(s)",
			 src.writer.resumes);

	if (e2e_src_report(&src, fd, &rep, true) < 0)
		goto out;
	if (st.status == TERN_STATUS_COMPLETED) {
		e2e_check_stats(&src, &st, &src.fc, writes);
		e2e_check_breakdown(&src, &st, 0, false);
	}
	if (st.status == TERN_STATUS_COMPLETED && rep.stats.status == TERN_STATUS_COMPLETED) {
		e2e_check_codecs(&src, &st, &rep.stats);
		e2e_check_cpu(&src, &st, cpu0, &names, &rep);
	}
	if (cfg->expect_dirty_rate && st.status == TERN_STATUS_COMPLETED)
		check_dirty_rate(&src, &st, writes);
	if (cfg->zero_copy_send && st.status == TERN_STATUS_COMPLETED)
		check_zero_copy(&src, &st);
	if (!strcmp(cfg->transport, "rdma") && st.status == TERN_STATUS_COMPLETED &&
	    rep.stats.status == TERN_STATUS_COMPLETED)
		check_rdma(&src, &st, &rep.stats);

out:
	e2e_src_free(&src);
	printf("e2e %s codec=%s channels=%u ram=%" PRIu64 "MiB zero=%g%%: %s status=%s/%s "
	       "rounds=%" PRIu64 " normal=%" PRIu64 " zero=%" PRIu64 " ram_transferred=%" PRIu64
	       " wire=%" PRIu64 " downtime=%" PRIu64 "ms total=%" PRIu64 "ms writes=%" PRIu64
	       " zero_writes=%" PRIu64 " paused_at=%" PRIu64 " failures=%u\n",
	       cfg->transport, cfg->codec, cfg->channels, cfg->ram >> 20, cfg->zero_pct,
	       src.failures ? "FAIL" : "PASS", tern_status_name(st.status),
	       tern_status_name(rep.magic == E2E_REPORT_MAGIC ? rep.stats.status
							      : TERN_STATUS_INVALID),
	       st.rounds, st.normal_pages, st.zero_pages, st.ram_transferred, st.wire_bytes,
	       st.downtime_ms, st.total_ms, writes, src.writer.zero_writes, src.writer.paused_iter,
	       src.failures);
	fflush(stdout);
	return src.failures ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f, const char *prog)
{
	fprintf(
	    f,
	    "usage: %s [options]\n"
	    "  --transport tcp|unix|rdma  (default tcp; rdma: on $TERN_RDMA_ADDR, an\n"
	    "                          address on an RDMA device's netdev; exit 77\n"
	    "                          (skip) when it is not set)\n"
	    "  --rdma-ipv6             rdma on $TERN_RDMA_ADDR6 (an IPv6 address of the\n"
	    "                          same netdev) instead; exit 77 when it is not set\n"
	    "  --rdma-pin-all          rdma-pin-all capability\n"
	    "  --rdma-pin-limit SIZE   rdma-pin-limit parameter\n"
	    "  --zero-copy-send        the source's zero-copy-send capability (and its checks)\n"
	    "  --channels N            (default 2)\n"
	    "  --ram SIZE              (default 256M)\n"
	    "  --zero-pct P            pages left zero (default 30)\n"
	    "  --ws SIZE               writer working set (default 32M)\n"
	    "  --dirty-rate B/s        writer pace (default 64M; 0: idle guest)\n"
	    "  --downtime-limit MS     (default 5)\n"
	    "  --max-bandwidth B/s     (default unlimited)\n"
	    "  --avail-switchover-bandwidth B/s  (default not declared)\n"
	    "  --min-rounds N          assert at least N rounds (default 3)\n"
	    "  --timeout S             cancel and fail after S s (default 120)\n"
	    "  --verify                verify-ram capability as well\n"
	    "  --seed N                fill seed (default 1)\n"
	    "  --codec NAME            multifd-compression: none (default), zlib, zstd, xbzrle, "
	    "auto\n"
	    "  --xbzrle-cache SIZE     xbzrle-cache-size\n"
	    "  --dirty-bytes N         the writer rewrites N bytes of a page, not all of it\n"
	    "                          (the working set then holds no zero page)\n"
	    "  --max-writes N          the writer stops after N page writes\n"
	    "  --expect-xbzrle-hits    assert XBZRLE hit rate > 50%% and wire bytes < page bytes\n"
	    "  --sequential            the writer goes through the working set in order\n"
	    "  --expect-dirty-rate     assert the source's dirty rate within 0.5x..2x of the pace\n"
	    "  -v / -q                 library log at LOG_DEBUG / LOG_WARNING (default LOG_INFO)\n",
	    prog);
}

static uint64_t opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (e2e_parse_size(arg, &v)) {
		fprintf(stderr, "%s: bad size '%s'\n", opt, arg);
		exit(2);
	}
	return v;
}

static unsigned long opt_uint(const char *opt, const char *arg, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 0);
	if (errno || end == arg || *end || v > max) {
		fprintf(stderr, "%s: bad value '%s' (0..%lu)\n", opt, arg, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"transport", required_argument, NULL, 't'},
	    {"channels", required_argument, NULL, 'c'},
	    {"ram", required_argument, NULL, 'r'},
	    {"zero-pct", required_argument, NULL, 'z'},
	    {"ws", required_argument, NULL, 'w'},
	    {"dirty-rate", required_argument, NULL, 'd'},
	    {"downtime-limit", required_argument, NULL, 'D'},
	    {"max-bandwidth", required_argument, NULL, 'B'},
	    {"avail-switchover-bandwidth", required_argument, NULL, 'A'},
	    {"min-rounds", required_argument, NULL, 'R'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"verify", no_argument, NULL, 'V'},
	    {"seed", required_argument, NULL, 's'},
	    {"codec", required_argument, NULL, 'C'},
	    {"xbzrle-cache", required_argument, NULL, 'X'},
	    {"dirty-bytes", required_argument, NULL, 'b'},
	    {"max-writes", required_argument, NULL, 'W'},
	    {"expect-xbzrle-hits", no_argument, NULL, 'H'},
	    {"sequential", no_argument, NULL, 'S'},
	    {"expect-dirty-rate", no_argument, NULL, 'E'},
	    {"rdma-pin-all", no_argument, NULL, 'P'},
	    {"rdma-ipv6", no_argument, NULL, '6'},
	    {"rdma-pin-limit", required_argument, NULL, 'L'},
	    {"zero-copy-send", no_argument, NULL, 'Z'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct e2e_cfg cfg = {
	    .transport = "tcp",
	    .channels = 2,
	    .ram = 256ull << 20,
	    .zero_pct = 30,
	    .ws = 32ull << 20,
	    .dirty_rate = 64ull << 20,
	    .downtime_limit = 5,
	    .timeout_s = 120,
	    .min_rounds = 3,
	    .seed = 1,
	    .log_level = LOG_INFO,
	    .codec = "none",
	};
	const char *rdma_env = "TERN_RDMA_ADDR";
	int c;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "unix") &&
			    strcmp(optarg, "rdma")) {
				fprintf(stderr, "--transport: tcp, unix or rdma\n");
				return 2;
			}
			cfg.transport = optarg;
			break;
		case 'c':
			cfg.channels =
			    (unsigned int)opt_uint("--channels", optarg, TERN_MAX_CHANNELS);
			break;
		case 'r':
			cfg.ram = opt_size("--ram", optarg);
			break;
		case 'z': {
			char *end;

			cfg.zero_pct = strtod(optarg, &end);
			if (end == optarg || *end || cfg.zero_pct < 0 || cfg.zero_pct > 100) {
				fprintf(stderr, "--zero-pct: 0..100\n");
				return 2;
			}
			break;
		}
		case 'w':
			cfg.ws = opt_size("--ws", optarg);
			break;
		case 'd':
			cfg.dirty_rate = opt_size("--dirty-rate", optarg);
			break;
		case 'D':
			cfg.downtime_limit = opt_uint("--downtime-limit", optarg, 2000000);
			break;
		case 'B':
			cfg.max_bandwidth = opt_size("--max-bandwidth", optarg);
			break;
		case 'A':
			cfg.avail_switchover_bandwidth =
			    opt_size("--avail-switchover-bandwidth", optarg);
			break;
		case 'R':
			cfg.min_rounds = (unsigned int)opt_uint("--min-rounds", optarg, 1000000);
			break;
		case 'T':
			cfg.timeout_s = (unsigned int)opt_uint("--timeout", optarg, 86400);
			break;
		case 'V':
			cfg.verify = true;
			break;
		case 's':
			cfg.seed = opt_uint("--seed", optarg, ~0ul);
			break;
		case 'C':
			cfg.codec = optarg;
			break;
		case 'X':
			cfg.xbzrle_cache = opt_size("--xbzrle-cache", optarg);
			break;
		case 'b':
			cfg.dirty_bytes = opt_uint("--dirty-bytes", optarg, 65536);
			break;
		case 'W':
			cfg.max_writes = opt_uint("--max-writes", optarg, ~0ul);
			break;
		case 'H':
			cfg.expect_xbzrle_hits = true;
			break;
		case 'S':
			cfg.sequential = true;
			break;
		case 'E':
			cfg.expect_dirty_rate = true;
			break;
		case 'P':
			cfg.rdma_pin_all = true;
			break;
		case '6':
			rdma_env = "TERN_RDMA_ADDR6";
			break;
		case 'L':
			cfg.rdma_pin_limit = opt_size("--rdma-pin-limit", optarg);
			break;
		case 'Z':
			cfg.zero_copy_send = true;
			break;
		case 'v':
			cfg.log_level = LOG_DEBUG;
			break;
		case 'q':
			cfg.log_level = LOG_WARNING;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	cfg.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (!cfg.channels || !cfg.ram || cfg.ram % cfg.page_size) {
		fprintf(stderr, "--channels >= 1, --ram a non-zero multiple of %zu\n",
			cfg.page_size);
		return 2;
	}
	if (cfg.dirty_bytes >= cfg.page_size) {
		fprintf(stderr, "--dirty-bytes: less than a page (%zu)\n", cfg.page_size);
		return 2;
	}
	if (!strcmp(cfg.transport, "rdma")) {
		cfg.rdma_addr = getenv(rdma_env);
		if (!cfg.rdma_addr || !*cfg.rdma_addr) {
			printf(
			    "SKIP: --transport rdma needs %s (an address on an RDMA "
			    "device's netdev; scripts/rdma-in-qemu/ runs this with rxe and siw)\n",
			    rdma_env);
			return 77;
		}
	}
	if (cfg.ws > cfg.ram)
		cfg.ws = cfg.ram;
	cfg.ws -= cfg.ws % cfg.page_size;

	return e2e_run_pair(&cfg, run_source, NULL, true);
}
