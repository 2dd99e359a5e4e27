/* SPDX-License-Identifier: MIT */
/*
 * The library's figures as the programs print them: one flat JSON object
 * per side, the names those of struct tern_stats where they fit (a codec's
 * figures become <codec>_<field>, the CPU arrays cpu_<class>_<field>).
 * tern-vm and tern-loopback print what they add of their own around these.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "json_out.h"
#include "stats_json.h"

#define GIB (1024.0 * 1024.0 * 1024.0)

void json_append(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (!len || *n >= len - 1)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + *n, len - *n, fmt, ap);
	va_end(ap);
	if (w < 0)
		buf[*n] = '\0';
	else if ((size_t)w >= len - *n)
		*n = len - 1;
	else
		*n += (size_t)w;
}

/* ,"@key":@num/@den as a number, or null without a denominator. */
static void append_ratio(char *buf, size_t len, size_t *n, const char *key, double num, double den)
{
	if (den > 0)
		json_append(buf, len, n, ",\"%s\":%.6g", key, num / den);
	else
		json_append(buf, len, n, ",\"%s\":null", key);
}

void stats_json_cpu(char *buf, size_t len, size_t *n, const struct tern_stats *st)
{
	double gib = (double)st->ram_transferred / GIB;
	char key[64];
	int c;

	for (c = TERN_CPU_INVALID + 1; c < TERN_CPU_CLASSES; c++) {
		const char *name = tern_cpu_class_name(c);
		double s = (double)(st->cpu_user_us[c] + st->cpu_sys_us[c]) / 1e6;

		json_append(buf, len, n,
			    ",\"cpu_%s_user_us\":%" PRIu64 ",\"cpu_%s_sys_us\":%" PRIu64, name,
			    st->cpu_user_us[c], name, st->cpu_sys_us[c]);
		snprintf(key, sizeof(key), "cpu_%s_s_per_gib", name);
		append_ratio(buf, len, n, key, s, gib);
		snprintf(key, sizeof(key), "ceiling_%s_gib_s", name);
		append_ratio(buf, len, n, key, gib, s);
	}
	json_append(buf, len, n,
		    ",\"cpu_lib_user_us\":%" PRIu64 ",\"cpu_lib_sys_us\":%" PRIu64
		    ",\"cpu_gib_moved\":%.6g",
		    st->cpu_total_user_us, st->cpu_total_sys_us, gib);
	append_ratio(buf, len, n, "cpu_s_per_gib",
		     (double)(st->cpu_total_user_us + st->cpu_total_sys_us) / 1e6, gib);
}

void stats_json_lib(char *buf, size_t len, size_t *n, const struct tern_stats *st)
{
	static const char *const cn[TERN_STATS_CODECS] = {"", "none", "zlib", "zstd", "xbzrle"};
	char reason[300];
	int c;

	json_append(buf, len, n,
		    ",\"total_ms\":%" PRIu64 ",\"setup_ms\":%" PRIu64 ",\"downtime_ms\":%" PRIu64
		    ",\"expected_downtime_ms\":%" PRIu64 ",\"verify_ms\":%" PRIu64
		    ",\"ram_transferred\":%" PRIu64 ",\"transferred_bytes\":%" PRIu64
		    ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64 ",\"rounds\":%" PRIu64
		    ",\"dirty_rate_bps\":%" PRIu64 ",\"dirty_rate_window_ms\":%" PRIu64
		    ",\"dirty_sync_us\":%" PRIu64 ",\"dirty_clear_us\":%" PRIu64
		    ",\"throughput_bps\":%" PRIu64 ",\"bandwidth_bps\":%" PRIu64,
		    st->total_ms, st->setup_ms, st->downtime_ms, st->expected_downtime_ms,
		    st->verify_ms, st->ram_transferred, st->wire_bytes, st->normal_pages,
		    st->zero_pages, st->rounds, st->dirty_pages_rate * (uint64_t)st->page_size,
		    st->dirty_rate_window_ms, st->dirty_sync_us, st->dirty_clear_us,
		    st->throughput_bps, st->bandwidth_bps);
	for (c = TERN_STATS_CODEC_NONE; c < TERN_STATS_CODECS; c++)
		json_append(buf, len, n,
			    ",\"%s_pages\":%" PRIu64 ",\"%s_bytes_in\":%" PRIu64
			    ",\"%s_bytes_out\":%" PRIu64 ",\"%s_rate\":%.3f,\"%s_ms\":%" PRIu64
			    ",\"auto_%s_packets\":%" PRIu64,
			    cn[c], st->codec[c].pages, cn[c], st->codec[c].bytes_in, cn[c],
			    st->codec[c].bytes_out, cn[c], st->codec[c].compression_rate, cn[c],
			    st->codec[c].time_ms, cn[c], st->codec[c].auto_packets);
	json_escape(reason, sizeof(reason), st->auto_reason);
	json_append(buf, len, n,
		    ",\"xbzrle_cache_size\":%" PRIu64 ",\"xbzrle_cache_hits\":%" PRIu64
		    ",\"xbzrle_cache_misses\":%" PRIu64 ",\"xbzrle_overflows\":%" PRIu64
		    ",\"xbzrle_bytes\":%" PRIu64 ",\"xbzrle_cache_hit_rate\":%.4f"
		    ",\"xbzrle_encoding_rate\":%.3f,\"auto_reason\":\"%s\"",
		    st->xbzrle_cache_size, st->xbzrle_cache_hits, st->xbzrle_cache_misses,
		    st->xbzrle_overflows, st->xbzrle_bytes, st->xbzrle_cache_hit_rate,
		    st->xbzrle_encoding_rate, reason);
	json_append(buf, len, n,
		    ",\"round_bytes\":%" PRIu64 ",\"round_sent_bytes\":%" PRIu64
		    ",\"cpu_throttle_percent\":%u,\"expected_sync_us\":%" PRIu64
		    ",\"expected_ram_us\":%" PRIu64 ",\"expected_device_us\":%" PRIu64
		    ",\"expected_resume_us\":%" PRIu64 ",\"downtime_pause_us\":%" PRIu64
		    ",\"downtime_wait_us\":%" PRIu64 ",\"downtime_sync_us\":%" PRIu64
		    ",\"downtime_ram_us\":%" PRIu64 ",\"downtime_device_us\":%" PRIu64
		    ",\"downtime_verify_us\":%" PRIu64 ",\"downtime_resume_us\":%" PRIu64
		    ",\"rdma_pinned_peak\":%" PRIu64 ",\"rdma_reg_us\":%" PRIu64
		    ",\"rdma_chunks_registered\":%" PRIu64 ",\"rdma_placed_bytes\":%" PRIu64
		    ",\"rdma_staged_bytes\":%" PRIu64,
		    st->round_bytes, st->round_sent_bytes, st->cpu_throttle_percent,
		    st->expected_sync_us, st->expected_ram_us, st->expected_device_us,
		    st->expected_resume_us, st->downtime_pause_us, st->downtime_wait_us,
		    st->downtime_sync_us, st->downtime_ram_us, st->downtime_device_us,
		    st->downtime_verify_us, st->downtime_resume_us, st->rdma_pinned_peak,
		    st->rdma_reg_us, st->rdma_chunks_registered, st->rdma_placed_bytes,
		    st->rdma_staged_bytes);
	json_append(buf, len, n,
		    ",\"zero_copy_sends\":%" PRIu64 ",\"zero_copy_bytes\":%" PRIu64
		    ",\"zero_copy_copied\":%" PRIu64 ",\"zero_copy_fallbacks\":%" PRIu64,
		    st->zero_copy_sends, st->zero_copy_bytes, st->zero_copy_copied,
		    st->zero_copy_fallbacks);
	json_append(buf, len, n,
		    ",\"switchover_bandwidth_bps\":%" PRIu64 ",\"switchover_rate\":\"%s\"",
		    st->switchover_bandwidth_bps, st->switchover_rate);
	json_append(buf, len, n,
		    ",\"postcopy\":%s,\"postcopy_missing_pages\":%" PRIu64
		    ",\"postcopy_remaining_pages\":%" PRIu64 ",\"postcopy_faults\":%" PRIu64
		    ",\"postcopy_requests\":%" PRIu64 ",\"postcopy_latency_p50_us\":%" PRIu64
		    ",\"postcopy_latency_p99_us\":%" PRIu64 ",\"postcopy_latency_max_us\":%" PRIu64
		    ",\"postcopy_urgent_pages\":%" PRIu64 ",\"postcopy_bad_requests\":%" PRIu64
		    ",\"postcopy_bytes\":%" PRIu64 ",\"postcopy_ms\":%" PRIu64,
		    st->postcopy ? "true" : "false", st->postcopy_missing_pages,
		    st->postcopy_remaining_pages, st->postcopy_faults, st->postcopy_requests,
		    st->postcopy_latency_p50_us, st->postcopy_latency_p99_us,
		    st->postcopy_latency_max_us, st->postcopy_urgent_pages,
		    st->postcopy_bad_requests, st->postcopy_bytes, st->postcopy_ms);
	json_append(buf, len, n,
		    ",\"postcopy_paused_ms\":%" PRIu64 ",\"postcopy_pauses\":%" PRIu64
		    ",\"postcopy_recoveries\":%" PRIu64,
		    st->postcopy_paused_ms, st->postcopy_pauses, st->postcopy_recoveries);
	stats_json_cpu(buf, len, n, st);
}
