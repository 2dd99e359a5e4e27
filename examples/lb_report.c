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
	return st->status == TERN_STATUS_COMPLETED && (!cfg->verify || st->verified);
}

/* @w: the source's writer (its throttle figures), NULL on the destination. */
void lb_print_json(const char *side, const char *transport, const struct lb_cfg *cfg,
		   const struct tern_stats *st, const struct lb_writer *w, const char *extra_err)
{
	char line[LB_LINE_MAX], esc[600], reason[300];
	static const char *const cn[TERN_STATS_CODECS] = {"", "none", "zlib", "zstd", "xbzrle"};
	int c;
	const char *err = extra_err && *extra_err ? extra_err : st->error;
	struct rusage ru;
	int n;

	n = snprintf(line, sizeof(line),
		     "{\"side\":\"%s\",\"status\":\"%s\",\"verified\":%s,\"ram_bytes\":%" PRIu64
		     ",\"total_ms\":%" PRIu64 ",\"setup_ms\":%" PRIu64 ",\"downtime_ms\":%" PRIu64
		     ",\"expected_downtime_ms\":%" PRIu64 ",\"verify_ms\":%" PRIu64
		     ",\"transferred_bytes\":%" PRIu64 ",\"ram_transferred_bytes\":%" PRIu64
		     ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64 ",\"rounds\":%" PRIu64
		     ",\"dirty_rate_bps\":%" PRIu64 ",\"dirty_rate_window_ms\":%" PRIu64
		     ",\"throughput_bps\":%" PRIu64 ",\"bandwidth_bps\":%" PRIu64
		     ",\"channels\":%u,\"transport\":\"%s\","
		     "\"codec\":\"%s\",\"zero_pct\":%g,\"zero_run\":%" PRIu64
		     ",\"fill\":\"%s\",\"dirty_rate_set_bps\":%" PRIu64,
		     side, tern_status_name(st->status), st->verified ? "true" : "false", cfg->ram,
		     st->total_ms, st->setup_ms, st->downtime_ms, st->expected_downtime_ms,
		     st->verify_ms, st->wire_bytes, st->ram_transferred, st->normal_pages,
		     st->zero_pages, st->rounds, st->dirty_pages_rate * (uint64_t)st->page_size,
		     st->dirty_rate_window_ms, st->throughput_bps, st->bandwidth_bps, cfg->channels,
		     transport, st->multifd_compression[0] ? st->multifd_compression : cfg->codec,
		     cfg->zero_pct, cfg->zero_run ? cfg->zero_run : 1,
		     cfg->fill == LB_FILL_TEXT ? "text" : "random", cfg->dirty_rate);
	for (c = TERN_STATS_CODEC_NONE; c < TERN_STATS_CODECS; c++)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      ",\"%s_pages\":%" PRIu64 ",\"%s_bytes_in\":%" PRIu64
			      ",\"%s_bytes_out\":%" PRIu64 ",\"%s_rate\":%.3f,\"%s_ms\":%" PRIu64
			      ",\"auto_%s_packets\":%" PRIu64,
			      cn[c], st->codec[c].pages, cn[c], st->codec[c].bytes_in, cn[c],
			      st->codec[c].bytes_out, cn[c], st->codec[c].compression_rate, cn[c],
			      st->codec[c].time_ms, cn[c], st->codec[c].auto_packets);
	json_escape(reason, sizeof(reason), st->auto_reason);
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      ",\"xbzrle_cache_size\":%" PRIu64 ",\"xbzrle_hits\":%" PRIu64
		      ",\"xbzrle_misses\":%" PRIu64 ",\"xbzrle_overflows\":%" PRIu64
		      ",\"xbzrle_delta_bytes\":%" PRIu64 ",\"xbzrle_hit_rate\":%.4f"
		      ",\"xbzrle_encoding_rate\":%.3f,\"auto_reason\":\"%s\",\"dirty_bytes\":%zu",
		      st->xbzrle_cache_size, st->xbzrle_cache_hits, st->xbzrle_cache_misses,
		      st->xbzrle_overflows, st->xbzrle_bytes, st->xbzrle_cache_hit_rate,
		      st->xbzrle_encoding_rate, reason, cfg->dirty_bytes);
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      ",\"round_bytes\":%" PRIu64 ",\"round_sent_bytes\":%" PRIu64
		      ",\"cpu_throttle_percent\":%u,\"expected_sync_us\":%" PRIu64
		      ",\"expected_ram_us\":%" PRIu64 ",\"expected_device_us\":%" PRIu64
		      ",\"expected_resume_us\":%" PRIu64 ",\"downtime_pause_us\":%" PRIu64
		      ",\"downtime_wait_us\":%" PRIu64 ",\"downtime_sync_us\":%" PRIu64
		      ",\"downtime_ram_us\":%" PRIu64 ",\"downtime_device_us\":%" PRIu64
		      ",\"downtime_resume_us\":%" PRIu64
		      ",\"throttle_max_percent\":%u,\"throttle_held_ms\":%" PRIu64
		      ",\"rdma_pinned_peak\":%" PRIu64 ",\"rdma_reg_us\":%" PRIu64
		      ",\"rdma_chunks_registered\":%" PRIu64 ",\"rdma_placed_bytes\":%" PRIu64
		      ",\"rdma_staged_bytes\":%" PRIu64 ",\"zero_copy_sends\":%" PRIu64
		      ",\"zero_copy_bytes\":%" PRIu64 ",\"zero_copy_copied\":%" PRIu64
		      ",\"zero_copy_fallbacks\":%" PRIu64,
		      st->round_bytes, st->round_sent_bytes, st->cpu_throttle_percent,
		      st->expected_sync_us, st->expected_ram_us, st->expected_device_us,
		      st->expected_resume_us, st->downtime_pause_us, st->downtime_wait_us,
		      st->downtime_sync_us, st->downtime_ram_us, st->downtime_device_us,
		      st->downtime_resume_us, w ? w->throttle_max : 0, w ? w->held_ns / 1000000 : 0,
		      st->rdma_pinned_peak, st->rdma_reg_us, st->rdma_chunks_registered,
		      st->rdma_placed_bytes, st->rdma_staged_bytes, st->zero_copy_sends,
		      st->zero_copy_bytes, st->zero_copy_copied, st->zero_copy_fallbacks);
	getrusage(RUSAGE_SELF, &ru);
	n += snprintf(line + n, sizeof(line) - (size_t)n,
		      ",\"cpu_user_us\":%" PRIu64 ",\"cpu_sys_us\":%" PRIu64,
		      tv_us(&ru.ru_utime) - tv_us(&cpu_mark.ru_utime),
		      tv_us(&ru.ru_stime) - tv_us(&cpu_mark.ru_stime));
	if (!lb_side_ok(st, cfg)) {
		if (!*err && st->status == TERN_STATUS_COMPLETED)
			err = "verify-ram was requested but the RAM was not verified";
		json_escape(esc, sizeof(esc), *err ? err : "unknown error");
		n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"error\":\"%s\"", esc);
	}
	snprintf(line + n, sizeof(line) - (size_t)n, "}\n");
	if (deferred_line) {
		snprintf(deferred_line, LB_LINE_MAX, "%s", line);
		return;
	}
	lb_emit_line(line);
}
