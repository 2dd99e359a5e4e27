/* SPDX-License-Identifier: MIT */
/*
 * What tern-loopback writes out: the library log and fatal errors on stderr,
 * and each side's figures as one JSON line on stdout. tern-bench parses those
 * lines, so their field names and formats are an interface; they live here,
 * away from the migration logic, so that a change to either is seen as such.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lb.h"
#include "common/json_out.h"
#include "common/stats_json.h"

const char *const lb_prog = "tern-loopback";

void lb_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", lb_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static uint64_t t_start_ns; /* set once in main(), before fork */

void lb_log_start(void)
{
	t_start_ns = lb_now_ns();
}

void lb_log_to_stderr(void *opaque, int level, const char *msg)
{
	uint64_t t = lb_now_ns() - t_start_ns;

	fprintf(stderr, "%4" PRIu64 ".%03" PRIu64 " [%s] %s\n", t / UINT64_C(1000000000),
		t / UINT64_C(1000000) % 1000, (const char *)opaque, msg);
}

/* One write per line, so that the two processes' lines never interleave. */
void lb_emit_line(const char *line)
{
	if (write(STDOUT_FILENO, line, strlen(line)) < 0)
		perror("write");
}

/*
 * When both sides run here, the source keeps its line until the destination
 * has printed and exited, so that the destination's line always comes first.
 */
static char *deferred_line;

void lb_defer_line(char *buf)
{
	deferred_line = buf;
}

static struct rusage cpu_mark;

void lb_cpu_mark(void)
{
	getrusage(RUSAGE_SELF, &cpu_mark);
}

static uint64_t tv_us(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000 + (uint64_t)tv->tv_usec;
}

bool lb_side_ok(const struct tern_stats *st, const struct lb_cfg *cfg)
{
	/* in postcopy only the source learns whether the digests matched */
	return st->status == TERN_STATUS_COMPLETED &&
	       (!cfg->verify || st->verified || (st->postcopy && !st->is_source));
}

/*
 * @w: the side's guest writer (the source's throttle figures; the
 * destination has one in postcopy), or NULL.
 * The library's figures are common/stats_json.c's, as tern-vm prints them;
 * ram_transferred_bytes, xbzrle_hits, xbzrle_misses, xbzrle_delta_bytes and
 * xbzrle_hit_rate are this program's older names for some of them, kept
 * for the scripts that read them (bench/link.py, tests/e2e/stopped-dest.sh).
 */
void lb_print_json(const char *side, const char *transport, const struct lb_cfg *cfg,
		   const struct tern_stats *st, const struct lb_writer *w, const char *extra_err)
{
	char line[LB_LINE_MAX], esc[600];
	const char *err = extra_err && *extra_err ? extra_err : st->error;
	struct rusage ru;
	size_t n = 0;

	json_append(line, sizeof(line), &n,
		    "{\"side\":\"%s\",\"status\":\"%s\",\"verified\":%s,\"ram_bytes\":%" PRIu64
		    ",\"channels\":%u,\"transport\":\"%s\",\"codec\":\"%s\",\"zero_pct\":%g"
		    ",\"zero_run\":%" PRIu64 ",\"fill\":\"%s\",\"dirty_rate_set_bps\":%" PRIu64
		    ",\"dirty_bytes\":%zu",
		    side, tern_status_name(st->status), st->verified ? "true" : "false", cfg->ram,
		    cfg->channels, transport,
		    st->multifd_compression[0] ? st->multifd_compression : cfg->codec,
		    cfg->zero_pct, cfg->zero_run ? cfg->zero_run : 1,
		    cfg->fill == LB_FILL_TEXT ? "text" : "random", cfg->dirty_rate,
		    cfg->dirty_bytes);
	stats_json_lib(line, sizeof(line), &n, st);
	json_append(line, sizeof(line), &n,
		    ",\"ram_transferred_bytes\":%" PRIu64 ",\"xbzrle_hits\":%" PRIu64
		    ",\"xbzrle_misses\":%" PRIu64 ",\"xbzrle_delta_bytes\":%" PRIu64
		    ",\"xbzrle_hit_rate\":%.4f,\"throttle_max_percent\":%u"
		    ",\"throttle_held_ms\":%" PRIu64,
		    st->ram_transferred, st->xbzrle_cache_hits, st->xbzrle_cache_misses,
		    st->xbzrle_bytes, st->xbzrle_cache_hit_rate, w ? w->throttle_max : 0,
		    w ? w->held_ns / 1000000 : 0);
	/* the guest's pages written (read, with --dest-guest read) per
	 * second: the source's while it ran, the destination's in postcopy */
	json_append(line, sizeof(line), &n, ",\"guest_pages\":%" PRIu64, w ? w->pages_written : 0);
	/* the whole process (the writer included), from just before
	 * tern_incoming() / tern_migrate() to now */
	getrusage(RUSAGE_SELF, &ru);
	json_append(line, sizeof(line), &n, ",\"cpu_user_us\":%" PRIu64 ",\"cpu_sys_us\":%" PRIu64,
		    tv_us(&ru.ru_utime) - tv_us(&cpu_mark.ru_utime),
		    tv_us(&ru.ru_stime) - tv_us(&cpu_mark.ru_stime));
	if (!lb_side_ok(st, cfg)) {
		if (!*err && st->status == TERN_STATUS_COMPLETED)
			err = "verify-ram was requested but the RAM was not verified";
		json_escape(esc, sizeof(esc), *err ? err : "unknown error");
		json_append(line, sizeof(line), &n, ",\"error\":\"%s\"", esc);
	}
	json_append(line, sizeof(line), &n, "}\n");
	if (deferred_line) {
		snprintf(deferred_line, LB_LINE_MAX, "%s", line);
		return;
	}
	lb_emit_line(line);
}
