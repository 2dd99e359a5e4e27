/* SPDX-License-Identifier: MIT */
/*
 * e2e checks, run by the source once both sides ended: destination RAM byte
 * for byte, device sections, and the stats bounded by what the fill and the
 * writer did. Each failure is reported with e2e_fail() and counted; the
 * checks go on so that one run shows every symptom.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

static const char *page_kind(const uint8_t *p, size_t len)
{
	return e2e_is_zero(p, len) ? "zero" : "data";
}

/* Read the destination's RAM and compare it with ours, frozen at switchover. */
void e2e_compare_ram(struct e2e_src *src, int fd, const uint8_t *ram)
{
	const struct e2e_cfg *cfg = src->cfg;
	uint64_t off, diff_pages = 0, first = UINT64_MAX;
	uint8_t *buf = malloc(E2E_CHUNK);
	int ret;

	if (!buf) {
		e2e_fail(&src->failures, "out of memory");
		return;
	}
	for (off = 0; off < cfg->ram; off += E2E_CHUNK) {
		uint64_t n = cfg->ram - off < E2E_CHUNK ? cfg->ram - off : E2E_CHUNK;
		uint64_t p;

		ret = e2e_read_full(fd, buf, n);
		if (ret < 0) {
			e2e_fail(&src->failures, "reading destination RAM at %#" PRIx64 ": %s", off,
				 strerror(-ret));
			break;
		}
		if (!memcmp(buf, ram + off, n))
			continue;
		for (p = 0; p < n; p += cfg->page_size) {
			if (!memcmp(buf + p, ram + off + p, cfg->page_size))
				continue;
			if (first == UINT64_MAX)
				first = off + p;
			if (diff_pages < E2E_MAX_REPORTED_DIFFS)
				e2e_note("page %#" PRIx64 " (index %" PRIu64
					 ", %s working set) differs: "
					 "source %s, destination %s",
					 off + p, (off + p) / cfg->page_size,
					 off + p < cfg->ws ? "in" : "outside",
					 page_kind(ram + off + p, cfg->page_size),
					 page_kind(buf + p, cfg->page_size));
			diff_pages++;
		}
	}
	if (diff_pages)
		e2e_fail(&src->failures,
			 "destination RAM differs from source RAM at switchover: first differing "
			 "page at offset %#" PRIx64 ", %" PRIu64 " page(s) differ",
			 first, diff_pages);
	free(buf);
}

void e2e_compare_sections(struct e2e_src *src, int fd, const struct e2e_report *rep)
{
	int i;

	for (i = 0; i < E2E_NSECTIONS; i++) {
		const struct e2e_section *s = &src->sec[i];
		uint8_t *data = NULL;
		int ret;

		if (rep->sec[i].len) {
			data = malloc(rep->sec[i].len);
			if (!data) {
				e2e_fail(&src->failures, "out of memory");
				return;
			}
			ret = e2e_read_full(fd, data, rep->sec[i].len);
			if (ret < 0) {
				e2e_fail(&src->failures, "reading section %s: %s", s->name,
					 strerror(-ret));
				free(data);
				return;
			}
		}
		if (s->calls != 1)
			e2e_fail(&src->failures, "section %s: save called %u times, expected once",
				 s->name, s->calls);
		if (s->err[0])
			e2e_fail(&src->failures, "section %s: %s", s->name, s->err);
		if (rep->sec[i].calls != 1)
			e2e_fail(&src->failures, "section %s: load called %u times, expected once",
				 s->name, rep->sec[i].calls);
		else if (rep->sec[i].version != s->version)
			e2e_fail(&src->failures, "section %s: loaded version %u, saved %u", s->name,
				 rep->sec[i].version, s->version);
		if (rep->sec[i].counter != s->counter || rep->sec[i].len != s->len ||
		    (s->len && (!data || !s->data || memcmp(data, s->data, s->len))))
			e2e_fail(&src->failures,
				 "section %s: destination loaded counter %" PRIu64 ", %" PRIu64
				 " bytes; source saved counter %" PRIu64 ", %u bytes%s",
				 s->name, rep->sec[i].counter, rep->sec[i].len, s->counter, s->len,
				 rep->sec[i].len == s->len ? " (contents differ)" : "");
		free(data);
	}
}

void e2e_check_stats(struct e2e_src *src, const struct tern_stats *st,
		     const struct e2e_fill_counts *fc, uint64_t writes)
{
	const struct e2e_cfg *cfg = src->cfg;
	uint64_t page = st->page_size ? st->page_size : cfg->page_size;
	uint64_t sum = 0;
	unsigned int i;

	if (st->rounds < cfg->min_rounds)
		e2e_fail(&src->failures,
			 "rounds %" PRIu64 " < %u: the migration converged too fast "
			 "for this test to exercise re-sent pages (lower --downtime-limit?)",
			 st->rounds, cfg->min_rounds);
	if (st->page_size != cfg->page_size)
		e2e_fail(&src->failures, "stats page_size %u, expected %zu", st->page_size,
			 cfg->page_size);
	if (st->channels != cfg->channels)
		e2e_fail(&src->failures, "stats channels %u, expected %u", st->channels,
			 cfg->channels);
	if (st->ram_total != cfg->ram)
		e2e_fail(&src->failures, "stats ram_total %" PRIu64 ", expected %" PRIu64,
			 st->ram_total, cfg->ram);
	if (st->normal_pages + st->zero_pages < fc->pages)
		e2e_fail(&src->failures,
			 "normal_pages %" PRIu64 " + zero_pages %" PRIu64 " < %" PRIu64
			 " pages of RAM",
			 st->normal_pages, st->zero_pages, fc->pages);
	/* a page is sent once per round it was dirty: once, plus once per write */
	if (st->normal_pages + st->zero_pages > fc->pages + writes)
		e2e_fail(&src->failures,
			 "normal_pages %" PRIu64 " + zero_pages %" PRIu64 " > %" PRIu64
			 " pages + %" PRIu64 " writes",
			 st->normal_pages, st->zero_pages, fc->pages, writes);
	if (fc->zero && !st->zero_pages)
		e2e_fail(&src->failures, "zero_pages is 0 with %" PRIu64 " zero pages in RAM",
			 fc->zero);
	/* outside the working set nothing changes: those pages are exact bounds */
	if (st->zero_pages < fc->zero_outside_ws)
		e2e_fail(&src->failures,
			 "zero_pages %" PRIu64 " < %" PRIu64
			 " zero pages that the writer never touches",
			 st->zero_pages, fc->zero_outside_ws);
	if (st->normal_pages < fc->data_outside_ws)
		e2e_fail(&src->failures,
			 "normal_pages %" PRIu64 " < %" PRIu64
			 " data pages that the writer never touches",
			 st->normal_pages, fc->data_outside_ws);
	/* zero pages are not page data: they must not count as transferred bytes */
	if (st->ram_transferred > (fc->pages - fc->zero + writes) * page)
		e2e_fail(&src->failures,
			 "ram_transferred %" PRIu64 " > %" PRIu64
			 " (data pages + writes): zero pages counted as transferred?",
			 st->ram_transferred, (fc->pages - fc->zero + writes) * page);
	if (st->ram_transferred < fc->data_outside_ws * page)
		e2e_fail(&src->failures,
			 "ram_transferred %" PRIu64 " < %" PRIu64
			 " bytes of data pages the writer never touches",
			 st->ram_transferred, fc->data_outside_ws * page);
	if (st->ram_transferred != st->normal_pages * page)
		e2e_note("warning: ram_transferred %" PRIu64
			 " != normal_pages x page size %" PRIu64,
			 st->ram_transferred, st->normal_pages * page);
	/* a codec may well put fewer bytes on the wire than the pages hold */
	if (!strcmp(cfg->codec, "none") && st->wire_bytes < st->ram_transferred)
		e2e_fail(&src->failures, "wire_bytes %" PRIu64 " < ram_transferred %" PRIu64,
			 st->wire_bytes, st->ram_transferred);
	for (i = 0; i < cfg->channels && i < TERN_MAX_CHANNELS; i++) {
		if (!st->channel_wire_bytes[i])
			e2e_fail(&src->failures, "channel %u: channel_wire_bytes is 0", i);
		sum += st->channel_wire_bytes[i];
	}
	for (; i < TERN_MAX_CHANNELS; i++)
		if (st->channel_wire_bytes[i])
			e2e_fail(&src->failures,
				 "channel %u is not in use but carried %" PRIu64 " bytes", i,
				 st->channel_wire_bytes[i]);
	if (sum > st->wire_bytes)
		e2e_fail(&src->failures,
			 "channel_wire_bytes add up to %" PRIu64 " > wire_bytes %" PRIu64, sum,
			 st->wire_bytes);
	if (!strcmp(cfg->codec, "none") && sum < st->ram_transferred)
		e2e_fail(&src->failures,
			 "channel_wire_bytes add up to %" PRIu64 " < ram_transferred %" PRIu64
			 ": pages on the control channel?",
			 sum, st->ram_transferred);
	if (cfg->verify && !st->verified)
		e2e_fail(&src->failures, "verify-ram on but the source did not report verified");
	/* max-bandwidth holds over the run: what the link carried fits the
	 * limit times the time taken, plus the burst the design allows before
	 * the limiter sees bytes (queued batches and socket buffers), plus the
	 * last round, which is never throttled: when the estimate priced it
	 * above the limit (learned or declared), it may be as large as that
	 * rate allowed within the limit (expected_ram_us at the rate), and what
	 * the guest wrote while the source waited for the last acknowledgement,
	 * and the last unthrottled tail (4 MiB) not yet paid back. */
	if (cfg->max_bandwidth && st->total_ms) {
		uint64_t burst = (2ull * cfg->channels + 1) * (2ull << 20) + (8ull << 20);
		uint64_t allowed = cfg->max_bandwidth * st->total_ms / 1000 + burst;

		if (st->switchover_bandwidth_bps > cfg->max_bandwidth)
			allowed += 2 * (st->switchover_bandwidth_bps / 1000 *
					(cfg->downtime_limit ? cfg->downtime_limit : 300)) +
				   (4ull << 20);

		if (st->wire_bytes > allowed)
			e2e_fail(&src->failures,
				 "wire_bytes %" PRIu64 " in %" PRIu64
				 " ms exceeds max-bandwidth %" PRIu64 " B/s (allowed %" PRIu64
				 " including the burst)",
				 st->wire_bytes, st->total_ms, cfg->max_bandwidth, allowed);
	}
}

static const char *const codec_names[TERN_STATS_CODECS] = {"", "none", "zlib", "zstd", "xbzrle"};

/* Whether the method @m may carry pages with codec slot @c. */
static bool codec_allowed(const char *m, int c)
{
	if (c == TERN_STATS_CODEC_NONE)
		return true;
	if (!strcmp(m, "auto"))
		return c == TERN_STATS_CODEC_ZSTD || c == TERN_STATS_CODEC_XBZRLE;
	return !strcmp(m, codec_names[c]);
}

void e2e_check_codecs(struct e2e_src *src, const struct tern_stats *st,
		      const struct tern_stats *dst)
{
	const struct e2e_cfg *cfg = src->cfg;
	uint64_t pages = 0, bytes_in = 0, auto_packets = 0;
	int c;

	if (strcmp(st->multifd_compression, cfg->codec))
		e2e_fail(&src->failures, "source multifd_compression '%s', expected '%s'",
			 st->multifd_compression, cfg->codec);
	if (strcmp(dst->multifd_compression, cfg->codec))
		e2e_fail(&src->failures, "destination multifd_compression '%s', expected '%s'",
			 dst->multifd_compression, cfg->codec);
	for (c = TERN_STATS_CODEC_NONE; c < TERN_STATS_CODECS; c++) {
		const struct tern_codec_stats *s = &st->codec[c], *d = &dst->codec[c];

		e2e_note("codec %s: %" PRIu64 " pages, %" PRIu64 " -> %" PRIu64
			 " bytes (rate %.2f), %" PRIu64 " ms; destination %" PRIu64 " ms; auto "
			 "packets %" PRIu64,
			 codec_names[c], s->pages, s->bytes_in, s->bytes_out, s->compression_rate,
			 s->time_ms, d->time_ms, s->auto_packets);
		if (s->pages && !codec_allowed(cfg->codec, c))
			e2e_fail(&src->failures, "codec %s carried %" PRIu64 " pages under %s",
				 codec_names[c], s->pages, cfg->codec);
		if (s->pages != d->pages || s->bytes_in != d->bytes_in ||
		    s->bytes_out != d->bytes_out)
			e2e_fail(&src->failures,
				 "codec %s: source %" PRIu64 " pages %" PRIu64 " -> %" PRIu64
				 " bytes, destination %" PRIu64 " pages %" PRIu64 " -> %" PRIu64,
				 codec_names[c], s->pages, s->bytes_in, s->bytes_out, d->pages,
				 d->bytes_in, d->bytes_out);
		if (s->bytes_out && s->compression_rate <= 0)
			e2e_fail(&src->failures, "codec %s: compression rate %g", codec_names[c],
				 s->compression_rate);
		pages += s->pages;
		bytes_in += s->bytes_in;
		auto_packets += s->auto_packets;
	}
	if (pages != st->normal_pages || bytes_in != st->ram_transferred)
		e2e_fail(&src->failures,
			 "the codecs carried %" PRIu64 " pages (%" PRIu64
			 " bytes), normal_pages %" PRIu64 " (%" PRIu64 " bytes)",
			 pages, bytes_in, st->normal_pages, st->ram_transferred);
	for (c = TERN_STATS_CODEC_NONE; c < TERN_STATS_CODECS; c++)
		if (!strcmp(cfg->codec, codec_names[c]) && !st->codec[c].pages)
			e2e_fail(&src->failures, "codec %s carried no page", codec_names[c]);
	if (!strcmp(cfg->codec, "auto")) {
		e2e_note("auto: last choice: %s", st->auto_reason);
		if (!auto_packets || !st->auto_reason[0])
			e2e_fail(&src->failures, "auto: %" PRIu64 " packets chosen, reason '%s'",
				 auto_packets, st->auto_reason);
	} else if (auto_packets) {
		e2e_fail(&src->failures, "auto_packets %" PRIu64 " under %s", auto_packets,
			 cfg->codec);
	}
	if (strcmp(cfg->codec, "none") && strcmp(cfg->codec, "zlib") &&
	    strcmp(cfg->codec, "zstd")) {
		e2e_note("xbzrle: cache %" PRIu64 " bytes, %" PRIu64 " hits, %" PRIu64
			 " misses, %" PRIu64 " overflows, %" PRIu64
			 " delta bytes, hit rate %.3f, encoding rate %.2f",
			 st->xbzrle_cache_size, st->xbzrle_cache_hits, st->xbzrle_cache_misses,
			 st->xbzrle_overflows, st->xbzrle_bytes, st->xbzrle_cache_hit_rate,
			 st->xbzrle_encoding_rate);
		if (!st->xbzrle_cache_size)
			e2e_fail(&src->failures, "xbzrle_cache_size is 0 under %s", cfg->codec);
	}
	if (cfg->expect_xbzrle_hits) {
		if (!(st->xbzrle_cache_hit_rate > 0.5))
			e2e_fail(&src->failures,
				 "XBZRLE cache hit rate %.3f (%" PRIu64 " hits, %" PRIu64
				 " misses), expected more than 0.5",
				 st->xbzrle_cache_hit_rate, st->xbzrle_cache_hits,
				 st->xbzrle_cache_misses);
		/* codec none would have put every page's bytes on the wire */
		if (st->wire_bytes >= st->ram_transferred)
			e2e_fail(&src->failures,
				 "wire_bytes %" PRIu64 " not below the %" PRIu64
				 " page bytes codec none would send",
				 st->wire_bytes, st->ram_transferred);
	}
}

void e2e_check_breakdown(struct e2e_src *src, const struct tern_stats *st, uint64_t waited_us,
			 bool pending)
{
	/* each part and the total are truncated on their own: a ms each */
	const uint64_t parts = 7, slack_us = parts * 1000;
	uint64_t sum = st->downtime_pause_us + st->downtime_wait_us + st->downtime_sync_us +
		       st->downtime_ram_us + st->downtime_device_us + st->downtime_verify_us +
		       st->downtime_resume_us;
	uint64_t exp = st->expected_sync_us + st->expected_ram_us + st->expected_device_us +
		       st->expected_resume_us;
	uint64_t total_us = st->downtime_ms * 1000;

	e2e_note("downtime %" PRIu64 " ms = pause %" PRIu64 " + wait %" PRIu64 " + sync %" PRIu64
		 " + ram %" PRIu64 " + device %" PRIu64 " + verify %" PRIu64 " + resume %" PRIu64
		 " us (sum %" PRIu64 " us)",
		 st->downtime_ms, st->downtime_pause_us, st->downtime_wait_us, st->downtime_sync_us,
		 st->downtime_ram_us, st->downtime_device_us, st->downtime_verify_us,
		 st->downtime_resume_us, sum);
	e2e_note("expected %" PRIu64 " ms = sync %" PRIu64 " + ram %" PRIu64 " + device %" PRIu64
		 " + resume %" PRIu64 " us (sum %" PRIu64 " us)",
		 st->expected_downtime_ms, st->expected_sync_us, st->expected_ram_us,
		 st->expected_device_us, st->expected_resume_us, exp);
	if (st->status != TERN_STATUS_COMPLETED)
		return;
	if (sum + slack_us < total_us || sum > total_us + slack_us)
		e2e_fail(&src->failures,
			 "the downtime parts add up to %" PRIu64 " us, downtime_ms is %" PRIu64
			 " (allowed: %" PRIu64 " us either way)",
			 sum, st->downtime_ms, slack_us);
	/* the round trip for COMPLETE is in verify with verify-ram, in resume
	 * without it */
	if (!st->downtime_ram_us || !st->downtime_device_us ||
	    !(src->cfg->verify ? st->downtime_verify_us : st->downtime_resume_us))
		e2e_fail(&src->failures,
			 "downtime parts missing: ram %" PRIu64 ", device %" PRIu64
			 ", verify %" PRIu64 ", resume %" PRIu64
			 " us (each of ram, device and %s includes at least a round trip to the "
			 "destination)",
			 st->downtime_ram_us, st->downtime_device_us, st->downtime_verify_us,
			 st->downtime_resume_us, src->cfg->verify ? "verify" : "resume");
	/* verify-ram: the digests are part of the pause (LOADED -> COMPLETE
	 * takes at least the destination's last digest and a round trip) */
	if (!src->cfg->verify && st->downtime_verify_us)
		e2e_fail(&src->failures, "verify-ram off, yet downtime_verify_us is %" PRIu64,
			 st->downtime_verify_us);
	if (src->cfg->verify && st->verify_ms * 1000 > st->downtime_verify_us)
		e2e_fail(&src->failures,
			 "verify_ms %" PRIu64 " is more than the downtime's verify part, %" PRIu64
			 " us",
			 st->verify_ms, st->downtime_verify_us);
	if (st->downtime_wait_us < waited_us)
		e2e_fail(&src->failures,
			 "downtime_wait_us %" PRIu64 " < the %" PRIu64
			 " us the test kept it in pre-switchover",
			 st->downtime_wait_us, waited_us);
	if (!waited_us && st->downtime_wait_us > 1000)
		e2e_fail(&src->failures,
			 "downtime_wait_us %" PRIu64 " without pause-before-switchover",
			 st->downtime_wait_us);
	if (pending && !st->expected_ram_us)
		e2e_fail(&src->failures,
			 "expected_ram_us is 0, yet the last round had RAM pending");
	if (!st->expected_device_us || !st->expected_resume_us)
		e2e_fail(&src->failures,
			 "expected_device_us %" PRIu64 ", expected_resume_us %" PRIu64
			 ": each includes a round trip",
			 st->expected_device_us, st->expected_resume_us);
	if (exp + 4000 < st->expected_downtime_ms * 1000 ||
	    exp > st->expected_downtime_ms * 1000 + 4000)
		e2e_fail(&src->failures,
			 "the expected parts add up to %" PRIu64
			 " us, expected_downtime_ms is %" PRIu64,
			 exp, st->expected_downtime_ms);
	if (st->cpu_throttle_percent)
		e2e_fail(&src->failures, "cpu_throttle_percent %u after the end",
			 st->cpu_throttle_percent);
}

/* One side's CPU per class: @busy must have cost something, @idle nothing,
 * and all of them no more than the process over the same time. */
static void check_cpu_side(struct e2e_src *src, const char *side, const struct tern_stats *st,
			   uint64_t proc_us, const enum tern_cpu_class *busy, unsigned int nbusy,
			   const enum tern_cpu_class *idle, unsigned int nidle)
{
	uint64_t sum = 0, total = st->cpu_total_user_us + st->cpu_total_sys_us;
	char line[512];
	size_t used = 0;
	unsigned int i;
	int c;

	for (c = TERN_CPU_INVALID + 1; c < TERN_CPU_CLASSES; c++) {
		sum += st->cpu_user_us[c] + st->cpu_sys_us[c];
		used +=
		    (size_t)snprintf(line + used, sizeof(line) - used, " %s %" PRIu64 "+%" PRIu64,
				     tern_cpu_class_name(c), st->cpu_user_us[c], st->cpu_sys_us[c]);
	}
	e2e_note("%s cpu (user+sys us):%s; process %" PRIu64, side, line, proc_us);
	if (sum != total)
		e2e_fail(&src->failures,
			 "%s: the classes add up to %" PRIu64 " us, the total is %" PRIu64, side,
			 sum, total);
	/* each figure is rounded down to the microsecond: 1 us a thread */
	if (sum > proc_us + 1000)
		e2e_fail(&src->failures,
			 "%s: the classes add up to %" PRIu64
			 " us, more than the process's %" PRIu64 " us over the migration",
			 side, sum, proc_us);
	for (i = 0; i < nbusy; i++)
		if (!st->cpu_user_us[busy[i]] && !st->cpu_sys_us[busy[i]])
			e2e_fail(&src->failures, "%s: no CPU in class %s", side,
				 tern_cpu_class_name(busy[i]));
	for (i = 0; i < nidle; i++)
		if (st->cpu_user_us[idle[i]] || st->cpu_sys_us[idle[i]])
			e2e_fail(&src->failures, "%s: %" PRIu64 "+%" PRIu64 " us in class %s", side,
				 st->cpu_user_us[idle[i]], st->cpu_sys_us[idle[i]],
				 tern_cpu_class_name(idle[i]));
}

/* @list: "name name ...", as e2e_names_list() made it. */
static bool name_in(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	while ((p = strstr(p, name))) {
		if ((p == list || p[-1] == ' ') && (p[len] == ' ' || !p[len]))
			return true;
		p += len;
	}
	return false;
}

void e2e_check_cpu(struct e2e_src *src, const struct tern_stats *st, uint64_t proc_us,
		   const struct e2e_names *names, const struct e2e_report *rep)
{
	static const enum tern_cpu_class src_busy[] = {TERN_CPU_MIGRATION, TERN_CPU_SEND};
	static const enum tern_cpu_class src_idle[] = {TERN_CPU_RECV, TERN_CPU_PREFAULT,
						       TERN_CPU_MGMT, TERN_CPU_OTHER};
	static const enum tern_cpu_class dst_busy[] = {TERN_CPU_MIGRATION, TERN_CPU_RECV};
	static const enum tern_cpu_class dst_idle[] = {TERN_CPU_SEND, TERN_CPU_MGMT};
	char list[E2E_NAMES_MAX * 16], name[24];
	unsigned int i;

	check_cpu_side(src, "source", st, proc_us, src_busy, 2, src_idle, 4);
	check_cpu_side(src, "destination", &rep->stats, rep->proc_cpu_us, dst_busy, 2, dst_idle, 2);
	/* user and system time together: tick-based accounting (a TCG VM)
	 * may put a short hashing pass all in one of them */
	if (src->cfg->verify &&
	    (!(st->cpu_user_us[TERN_CPU_DIGEST] + st->cpu_sys_us[TERN_CPU_DIGEST]) ||
	     !(rep->stats.cpu_user_us[TERN_CPU_DIGEST] + rep->stats.cpu_sys_us[TERN_CPU_DIGEST])))
		e2e_fail(&src->failures,
			 "verify-ram, yet no digest CPU (source %" PRIu64 "+%" PRIu64
			 " us, destination %" PRIu64 "+%" PRIu64 " us)",
			 st->cpu_user_us[TERN_CPU_DIGEST], st->cpu_sys_us[TERN_CPU_DIGEST],
			 rep->stats.cpu_user_us[TERN_CPU_DIGEST],
			 rep->stats.cpu_sys_us[TERN_CPU_DIGEST]);

	/* the threads that live through the whole migration were seen by name */
	e2e_names_list(names, list, sizeof(list));
	e2e_note("source threads: %s", list);
	e2e_note("destination threads: %s", rep->names);
	if (!e2e_names_seen(names, "tern-mig") || !e2e_names_seen(names, "tern-rp"))
		e2e_fail(&src->failures, "source: no thread named tern-mig or tern-rp");
	if (!name_in(rep->names, "tern-load"))
		e2e_fail(&src->failures, "destination: no thread named tern-load");
	for (i = 0; i < src->cfg->channels; i++) {
		snprintf(name, sizeof(name), "tern-send/%u", i);
		if (!e2e_names_seen(names, name))
			e2e_fail(&src->failures, "source: no thread named %s", name);
		snprintf(name, sizeof(name), "tern-recv/%u", i);
		if (!name_in(rep->names, name))
			e2e_fail(&src->failures, "destination: no thread named %s", name);
	}
}
