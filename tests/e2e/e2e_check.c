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
	if (st->wire_bytes < st->ram_transferred)
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
	if (sum < st->ram_transferred)
		e2e_fail(&src->failures,
			 "channel_wire_bytes add up to %" PRIu64 " < ram_transferred %" PRIu64
			 ": pages on the control channel?",
			 sum, st->ram_transferred);
	if (cfg->verify && !st->verified)
		e2e_fail(&src->failures, "verify-ram on but the source did not report verified");
}
