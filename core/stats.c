/* SPDX-License-Identifier: MIT */
/*
 * Stats: a snapshot any thread may take at any time. Counters are read with
 * relaxed atomic loads (each is exact; together they are a near-instant
 * picture, which is what an operator's `query` wants). While the data plane
 * runs, its per-channel figures come from it; once it is freed, from the
 * copy kept at the end.
 */
#include <stdio.h>

#include "core_priv.h"
#include "source_priv.h"

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

_Static_assert((int)TERN_STATS_CODECS == (int)TERN_CODEC_MAX &&
		   (int)TERN_STATS_CODEC_NONE == (int)TERN_CODEC_NONE &&
		   (int)TERN_STATS_CODEC_ZLIB == (int)TERN_CODEC_ZLIB &&
		   (int)TERN_STATS_CODEC_ZSTD == (int)TERN_CODEC_ZSTD &&
		   (int)TERN_STATS_CODEC_XBZRLE == (int)TERN_CODEC_XBZRLE,
	       "struct tern_stats codec slots follow the wire ids");

static double rate(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : 0;
}

static void stats_fill_codecs(struct tern_stats *st, const struct mf_codec_stats *cs)
{
	const struct codec_stats *x = &cs->codec[TERN_CODEC_XBZRLE];
	uint32_t i;

	for (i = TERN_CODEC_NONE; i < TERN_CODEC_MAX; i++) {
		const struct codec_stats *c = &cs->codec[i];
		struct tern_codec_stats *o = &st->codec[i];

		o->pages = c->pages;
		o->bytes_in = c->bytes_in;
		o->bytes_out = c->bytes_out;
		o->compression_rate = rate(c->bytes_in, c->bytes_out);
		o->time_ms = c->ns / 1000000;
		o->auto_packets = cs->auto_packets[i];
	}
	st->xbzrle_cache_hits = x->cache_hits;
	st->xbzrle_cache_misses = x->cache_misses;
	st->xbzrle_overflows = x->overflows;
	st->xbzrle_bytes = x->delta_bytes;
	st->xbzrle_cache_hit_rate = rate(x->cache_hits, x->cache_hits + x->cache_misses);
	st->xbzrle_encoding_rate = rate(x->bytes_in, x->bytes_out);
}

void stats_capture_final(struct tern_session *s)
{
	cpu_thread_end(&s->cpu_main);
	cpu_acct_close(&s->cpu);
	pthread_mutex_lock(&s->lock);
	s->final_stats = true;
	pthread_mutex_unlock(&s->lock);
}

void stats_keep_send(struct tern_session *s, struct mf_send *mf)
{
	struct mf_chan_stats chan[TERN_MAX_CHANNELS] = {{0}}, t = {0};
	struct mf_codec_stats cs = {0};
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	mf_send_stats(mf, &t, chan);
	mf_chan_stats_add(&s->prior_total, &t, NULL);
	for (i = 0; i < TERN_MAX_CHANNELS; i++)
		mf_chan_stats_add(&s->prior_chan[i], &chan[i], NULL);
	mf_send_codec_stats(mf, &cs, NULL, 0);
	mf_codec_stats_add(&s->prior_codec, &cs);
	pthread_mutex_unlock(&s->lock);
}

void stats_keep_recv(struct tern_session *s, struct mf_recv *mf)
{
	struct mf_chan_stats chan[TERN_MAX_CHANNELS] = {{0}}, t = {0};
	struct mf_codec_stats cs = {0};
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	mf_recv_stats(mf, &t, chan);
	mf_chan_stats_add(&s->prior_total, &t, NULL);
	for (i = 0; i < TERN_MAX_CHANNELS; i++)
		mf_chan_stats_add(&s->prior_chan[i], &chan[i], NULL);
	mf_recv_codec_stats(mf, &cs);
	mf_codec_stats_add(&s->prior_codec, &cs);
	pthread_mutex_unlock(&s->lock);
}

void stats_fill(struct tern_session *s, struct tern_stats *st)
{
	struct mf_chan_stats total = {0}, chan[TERN_MAX_CHANNELS];
	struct mf_codec_stats cs = {0};
	struct tern_xport_stats xs = {0};
	uint64_t start, end, setup_end, now = tern_now_ns(), pages, elapsed;
	uint32_t i;

	memset(st, 0, sizeof(*st));
	memset(chan, 0, sizeof(chan));
	st->status = session_status(s);
	st->is_source = s->is_source;
	st->page_size = s->page_size;
	for (i = 0; i < s->nblocks; i++)
		st->ram_total += s->blocks[i]->size;

	pthread_mutex_lock(&s->lock);
	st->channels = s->nchannels;
	snprintf(st->multifd_compression, sizeof(st->multifd_compression), "%s",
		 mf_method_name(s->method));
	if (s->mf_send) {
		mf_send_stats(s->mf_send, &total, chan);
		mf_send_codec_stats(s->mf_send, &cs, st->auto_reason, sizeof(st->auto_reason));
		mf_send_xport_stats(s->mf_send, &xs);
	} else if (s->mf_recv) {
		mf_recv_stats(s->mf_recv, &total, chan);
		mf_recv_codec_stats(s->mf_recv, &cs);
		mf_recv_xport_stats(s->mf_recv, &xs);
	} else if (s->final_stats) {
		total = s->final_total;
		memcpy(chan, s->final_chan, sizeof(chan));
		cs = s->final_codec;
		xs = s->final_xport;
		snprintf(st->auto_reason, sizeof(st->auto_reason), "%s", s->final_reason);
	}
	/* the data planes a postcopy pause ended */
	mf_chan_stats_add(&total, &s->prior_total, NULL);
	for (i = 0; i < TERN_MAX_CHANNELS; i++)
		mf_chan_stats_add(&chan[i], &s->prior_chan[i], NULL);
	mf_codec_stats_add(&cs, &s->prior_codec);
	if (s->err.code && status_is_final(st->status))
		snprintf(st->error, sizeof(st->error), "%s", s->err.msg);
	st->verified = s->verified && st->status == TERN_STATUS_COMPLETED;
	pthread_mutex_unlock(&s->lock);

	start = LD(s->start_ns);
	end = LD(s->end_ns);
	setup_end = LD(s->setup_end_ns);
	if (start) {
		st->total_ms = ((end ? end : now) - start) / 1000000;
		st->setup_ms = ((setup_end ? setup_end : (end ? end : now)) - start) / 1000000;
	}
	st->downtime_ms = LD(s->downtime_ms);
	st->verify_ms = LD(s->verify_ms);
	st->expected_downtime_ms = LD(s->expected_downtime_ms);
	st->normal_pages = total.normal_pages;
	st->zero_pages = total.zero_pages;
	st->ram_transferred = total.normal_pages * s->page_size;
	st->wire_bytes = total.wire_bytes + LD(s->ctl_bytes);
	for (i = 0; i < st->channels && i < TERN_MAX_CHANNELS; i++)
		st->channel_wire_bytes[i] = chan[i].wire_bytes;
	st->rounds = LD(s->rounds);
	st->dirty_pages_rate = LD(s->dirty_pages_rate);
	st->dirty_rate_window_ms = LD(s->dirty_rate_win_ns) / 1000000;
	st->dirty_sync_us = LD(s->dirty_sync_ns) / 1000;
	st->dirty_clear_us = LD(s->dirty_clear_ns) / 1000;
	st->bandwidth_bps = LD(s->bw_bps);
	stats_fill_codecs(st, &cs);
	st->rdma_pinned_bytes = xs.pinned_bytes;
	st->rdma_pinned_peak = xs.pinned_peak;
	st->rdma_reg_us = xs.reg_ns / 1000;
	st->rdma_chunks_registered = xs.chunks_registered;
	st->rdma_placed_bytes = xs.placed_bytes;
	st->rdma_staged_bytes = xs.staged_bytes;
	cpu_acct_get(&s->cpu, st->cpu_user_us, st->cpu_sys_us);
	for (i = TERN_CPU_INVALID + 1; i < TERN_CPU_CLASSES; i++) {
		st->cpu_total_user_us += st->cpu_user_us[i];
		st->cpu_total_sys_us += st->cpu_sys_us[i];
	}
	st->zero_copy_sends = xs.zc_sends;
	st->zero_copy_bytes = xs.zc_bytes;
	st->zero_copy_copied = xs.zc_copied;
	st->zero_copy_fallbacks = xs.zc_fallbacks;
	if (s->is_source)
		st->xbzrle_cache_size = LD(s->xbzrle_size);
	if (s->is_source && st->status != TERN_STATUS_COMPLETED)
		st->ram_remaining = LD(s->remaining_pages) * s->page_size;
	if (s->is_source) {
		/* every round begins right after a sync: what it left is the round */
		uint64_t rp = LD(s->remaining_pages);
		uint64_t sent = LD(s->queued_pages) - LD(s->round_queued0);

		st->round_bytes = rp * s->page_size;
		st->round_sent_bytes = MIN(sent, rp) * s->page_size;
		st->cpu_throttle_percent = LD(s->throttle_pct);
		st->expected_sync_us = LD(s->exp_us[EST_SYNC]);
		st->expected_ram_us = LD(s->exp_us[EST_RAM]);
		st->expected_device_us = LD(s->exp_us[EST_DEVICE]);
		st->expected_resume_us = LD(s->exp_us[EST_RESUME]);
		st->downtime_pause_us = LD(s->dt_us[DT_PAUSE]);
		st->downtime_wait_us = LD(s->dt_us[DT_WAIT]);
		st->downtime_sync_us = LD(s->dt_us[DT_SYNC]);
		st->downtime_ram_us = LD(s->dt_us[DT_RAM]);
		st->downtime_device_us = LD(s->dt_us[DT_DEVICE]);
		st->downtime_resume_us = LD(s->dt_us[DT_RESUME]);
		st->downtime_verify_us = LD(s->dt_us[DT_VERIFY]);
		st->switchover_bandwidth_bps = LD(s->sw_rate_bps);
		snprintf(st->switchover_rate, sizeof(st->switchover_rate), "%s",
			 sw_rate_name((enum sw_rate)LD(s->sw_rate_src)));
	}
	if (LD(s->pc_start_ns)) {
		uint64_t pc_end = LD(s->pc_end_ns);

		st->postcopy = true;
		st->postcopy_missing_pages = LD(s->pc_missing_pages);
		st->postcopy_ms =
		    ((pc_end ? pc_end : (end ? end : now)) - LD(s->pc_start_ns)) / 1000000;
		st->postcopy_bytes = total.wire_bytes - MIN(LD(s->pc_wire0), total.wire_bytes);
		st->postcopy_urgent_pages = LD(s->pc_urgent_pages);
		st->postcopy_bad_requests = LD(s->pc_bad_reqs);
		pthread_mutex_lock(&s->lock);
		st->postcopy_pauses = s->pc_pauses;
		st->postcopy_recoveries = s->pc_recoveries;
		st->postcopy_paused_ms =
		    (s->pc_paused_ns + (s->pc_pause_ns ? (end ? end : now) - s->pc_pause_ns : 0)) /
		    1000000;
		pthread_mutex_unlock(&s->lock);
		if (!s->is_source)
			dest_pc_stats(s, st);
	}
	pages = total.normal_pages + total.zero_pages;
	elapsed = start ? (end ? end : now) - start : 0;
	if (status_is_final(st->status) || !s->is_source)
		st->throughput_bps =
		    elapsed ? (uint64_t)((double)pages * s->page_size * 1e9 / elapsed) : 0;
	else
		st->throughput_bps = LD(s->ram_bps);
}
