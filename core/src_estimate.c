/* SPDX-License-Identifier: MIT */
/*
 * The switchover estimate: what the path delivers (learned from the
 * acknowledged rounds) and what the downtime would cost now, part by part,
 * against downtime-limit.
 */
#include <stdio.h>

#include "core_priv.h"
#include "source_priv.h"

/* Rounds this small say little about the rate (latency dominates). */
#define DELIVERED_MIN_BYTES (4ull << 20)
/* An unthrottled tail shorter than this is not learned from: its time is
 * mostly the round trip, and it would say the path is slow. */
#define TAIL_MIN_BYTES (1ull << 20)
/* A learned rate is priced at 3/4 of itself: the tails are a few MiB, the
 * last round may be larger and meet a busier path. */
#define LEARNED_NUM 3
#define LEARNED_DEN 4

/*
 * A round's bytes over the time from its first page to its acknowledgement:
 * the path delivers at least this much. Every byte the channels wrote from
 * the round's first page (->wire0) to their SYNC of the round was written
 * after that moment and had landed by the acknowledgement (each channel's
 * SYNC follows all it wrote before); the round trip and the sync are in the
 * time, so the bound is a safe one, and its best over the rounds is kept. It
 * stands in for the rate windows when none ever closed: a guest whose bulk
 * round ends within a window (32 MiB on loopback: 17 ms) and that then
 * dirties a little between syncs would otherwise never get an estimate, and
 * so never a switchover.
 *
 * The bytes are counted when each channel wrote its SYNC, not when the
 * producer queued it: the queues may still hold most of a bulk round then
 * (a loaded host), and the round would look a few KiB long -- the bound
 * was then too small to matter, no rate window closed either, and a guest
 * dirtying 10 MB/s never switched over.
 */
static void acked_round_learn(struct tern_session *s, const typeof(s->sync_marks[0]) *cur,
			      uint64_t round, uint64_t now)
{
	uint64_t end, ns = now - cur->first_ns, bps;

	if (!s->mf_send || !mf_send_sync_wire(s->mf_send, round, &end))
		end = cur->wire;
	if (end <= cur->wire0 || !ns)
		return;
	bps = (uint64_t)((double)(end - cur->wire0) * 1e9 / (double)ns);
	if (bps > s->acked_round_bps)
		s->acked_round_bps = bps;
}

/*
 * The round's unthrottled tail (src_round.c: under max-bandwidth, a round's
 * last few MiB go at full speed, and are paid back out of the next round's
 * allowance): what it wrote from its start to the round's SYNC over the time
 * to the acknowledgement is what the path delivers end to end when nothing
 * holds the sender back -- the rate the paused guest's last round will get.
 * A lower bound, as acked_round_learn()'s; the figures are averaged.
 */
static void tail_learn(struct tern_session *s, const typeof(s->sync_marks[0]) *cur, uint64_t round,
		       uint64_t now)
{
	uint64_t end, bps;

	if (!cur->tail_ns || now <= cur->tail_ns)
		return;
	if (!s->mf_send || !mf_send_sync_wire(s->mf_send, round, &end))
		end = cur->wire;
	if (end < cur->tail_wire0 + TAIL_MIN_BYTES)
		return;
	bps = (uint64_t)((double)(end - cur->tail_wire0) * 1e9 / (double)(now - cur->tail_ns));
	s->tail_bps = s->tail_bps ? (s->tail_bps + bps) / 2 : bps;
}

/*
 * Round @round was acknowledged at @now (under ->lock): every byte written
 * up to its RAM_SYNC has landed. If the round before was acknowledged only
 * after this round's first page was queued, the channels were never idle in
 * between, so the bytes between the two RAM_SYNCs over the time between the
 * two acknowledgements is what the path delivers end to end -- headers,
 * queues and the destination included. That is the rate the paused guest's
 * last pages will see.
 */
void src_delivered_learn(struct tern_session *s, uint64_t round, uint64_t now)
{
	typeof(s->sync_marks[0]) *cur = &s->sync_marks[round % 4], *prev;
	uint64_t bytes, ns, bps;

	if (cur->round != round)
		return;
	cur->ack_ns = now;
	/* RAM_SYNC -> RAM_SYNC_ACK is a round trip plus the landing of what was
	 * still in flight: the quickest one is the best round trip we see */
	if (now - cur->sent_ns < __atomic_load_n(&s->rtt_ns, __ATOMIC_RELAXED))
		__atomic_store_n(&s->rtt_ns, now - cur->sent_ns, __ATOMIC_RELAXED);
	acked_round_learn(s, cur, round, now);
	tail_learn(s, cur, round, now);
	prev = &s->sync_marks[(round - 1) % 4];
	if (round < 2 || prev->round != round - 1 || !prev->ack_ns || cur->first_ns > prev->ack_ns)
		return;
	bytes = cur->wire - prev->wire;
	ns = now - prev->ack_ns;
	if (bytes < DELIVERED_MIN_BYTES || !ns)
		return;
	bps = (uint64_t)((double)bytes * 1e9 / ns);
	s->delivered_bps = s->delivered_bps ? (s->delivered_bps + bps) / 2 : bps;
}

static const char *const sw_rate_names[] = {
    [SW_RATE_NONE] = "none",
    [SW_RATE_MEASURED] = "measured",
    [SW_RATE_THROTTLED] = "max-bandwidth",
    [SW_RATE_LEARNED] = "learned",
    [SW_RATE_LINK] = "link",
    [SW_RATE_DECLARED] = "declared",
};

const char *sw_rate_name(enum sw_rate r)
{
	return (unsigned int)r < ARRAY_SIZE(sw_rate_names) ? sw_rate_names[r] : "invalid";
}

/*
 * The last round goes unthrottled (the guest is paused: every millisecond
 * is downtime), so pricing it at max-bandwidth's rate waits for a round
 * small enough to cross at that rate, and each round waited for re-sends
 * the hot set. What the last round will really get:
 *   - what the operator declared (avail-switchover-bandwidth), as is;
 *   - else, where max-bandwidth holds the rounds back, what their
 *     unthrottled tails delivered, with a margin -- unless that is no more
 *     than the limit itself: then the path is the limit (a shaped link), and
 *     the rounds' rate stands;
 *   - else the rounds' rate.
 * A declared or learned rate that proves wrong shows as the downtime's ram
 * part over its estimate (the breakdown), and src_switchover.c says so.
 */
uint64_t src_switchover_rate(uint64_t bw, bool held, uint64_t avail_bps, uint64_t tail_bps,
			     enum sw_rate *ret_why)
{
	uint64_t learned;

	if (avail_bps) {
		*ret_why = SW_RATE_DECLARED;
		return avail_bps;
	}
	if (!bw) {
		*ret_why = SW_RATE_NONE;
		return 0;
	}
	if (!held) {
		*ret_why = SW_RATE_MEASURED;
		return bw;
	}
	if (!tail_bps) {
		*ret_why = SW_RATE_THROTTLED;
		return bw;
	}
	learned = tail_bps / LEARNED_DEN * LEARNED_NUM;
	if (learned <= bw) {
		*ret_why = SW_RATE_LINK;
		return bw;
	}
	*ret_why = SW_RATE_LEARNED;
	return learned;
}

/*
 * The downtime the switchover would cost now, in parts (enum dt_est_part):
 *   sync    the final dirty-log sync: as long as the last one took;
 *   ram     @pending bytes of RAM at the rate the last round will get
 *           (src_switchover_rate());
 *   device  the sections' bytes (their size hooks) at the link's rate, plus
 *           one control round trip (EOS -> LOADED);
 *   resume  one more round trip (COMPLETE -> COMMIT) and one for the
 *           destination's RESUMED. The pause and resume callbacks cannot be
 *           measured before they run without stopping the guest; they are
 *           measured at switchover (downtime_pause_us, downtime_resume_us).
 * The round trip is the HELLO handshake's, measured at setup.
 */
uint64_t src_estimate_downtime_us(struct tern_session *s, struct round_ctx *rc, uint64_t pending)
{
	uint64_t bw = rc->rl.bw_bps, ram_bw = rc->rl.ram_bps, link = mf_send_link_rate(s->mf_send);
	uint64_t rtt_us = __atomic_load_n(&s->rtt_ns, __ATOMIC_RELAXED) / 1000;
	uint64_t avail_bps = params_get(&s->params, PARAM_AVAIL_SWITCHOVER_BANDWIDTH);
	uint64_t part[DT_EST_PARTS], sum = 0, delivered, acked_round, tail, last;
	enum sw_rate why;
	uint32_t i;

	/* The rate windows count bytes as they enter the sockets, which runs
	 * ahead of the link while socket buffers fill (10% and more on a
	 * 1 Gbit/s link): where the transport measured what its paths deliver,
	 * no more than that. The last such figure is kept for the moments the
	 * sender idles (after waiting for an acknowledgement). */
	if (link)
		rc->link_bps = link;
	pthread_mutex_lock(&s->lock);
	delivered = s->delivered_bps;
	acked_round = s->acked_round_bps;
	tail = s->tail_bps;
	pthread_mutex_unlock(&s->lock);
	if (delivered && (!rc->link_bps || delivered < rc->link_bps))
		rc->link_bps = delivered;
	if (rc->link_bps && bw > rc->link_bps) {
		ram_bw = (uint64_t)((double)ram_bw * rc->link_bps / bw);
		bw = rc->link_bps;
	}
	/* no rate window closed yet: the best a whole round delivered */
	if (!bw && !ram_bw)
		bw = ram_bw = acked_round;
	/* the last round's own wire rate; RAM per wire byte as the rounds had
	 * it */
	last = src_switchover_rate(bw, rc->held && params_get(&s->params, PARAM_MAX_BANDWIDTH),
				   avail_bps, tail, &why);
	if (last != bw) {
		ram_bw = bw ? (uint64_t)((double)ram_bw * last / bw) : last;
		bw = last;
	}
	/* @pending is RAM bytes; with a codec the link moves more RAM than wire
	 * bytes, and RAM bytes per second is the rate that empties it. */
	if (s->method != TERN_CODEC_NONE)
		bw = MAX(bw, ram_bw);
	__atomic_store_n(&s->sw_rate_bps, bw, __ATOMIC_RELAXED);
	__atomic_store_n(&s->sw_rate_src, (uint32_t)why, __ATOMIC_RELAXED);
	if (!bw && pending)
		return UINT64_MAX; /* no rate measured yet: no estimate either */
	part[EST_SYNC] = __atomic_load_n(&s->dirty_sync_ns, __ATOMIC_RELAXED) / 1000;
	part[EST_RAM] = bw ? (uint64_t)((double)pending * 1e6 / bw) : 0;
	part[EST_DEVICE] =
	    (bw ? (uint64_t)((double)sections_size_estimate(s) * 1e6 / bw) : 0) + rtt_us;
	part[EST_RESUME] = 2 * rtt_us;
	for (i = 0; i < DT_EST_PARTS; i++) {
		__atomic_store_n(&s->exp_us[i], part[i], __ATOMIC_RELAXED);
		sum += part[i];
	}
	__atomic_store_n(&s->expected_downtime_ms, sum / 1000, __ATOMIC_RELAXED);
	return sum;
}

/*
 * Whether the switchover fits downtime-limit now. Nothing pending always
 * fits: waiting cannot make the fixed costs smaller. Nor can it when the
 * fixed costs (sync, devices, handshake) alone exceed the limit: then no
 * round can ever fit, and the best that can be kept of the promise is that
 * the RAM part fits the limit on its own (said once in the log).
 */
bool src_fits_downtime(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		       uint64_t pending)
{
	uint64_t limit_us = params_get(&s->params, PARAM_DOWNTIME_LIMIT) * 1000;
	uint64_t est_us = src_estimate_downtime_us(s, rc, pending), ram_us, fixed_us;

	tern_log_msg(&s->log, 7,
		     "round %" PRIu64 ": %" PRIu64 " bytes pending, %" PRIu64
		     " B/s, expected downtime %" PRIu64 " us, limit %" PRIu64 " us",
		     round, pending, rc->rl.bw_bps, est_us, limit_us);
	if (round < 2)
		return false;
	if (!pending)
		return true;
	if (est_us == UINT64_MAX)
		return false;
	ram_us = __atomic_load_n(&s->exp_us[EST_RAM], __ATOMIC_RELAXED);
	fixed_us = est_us - MIN(ram_us, est_us);
	if (fixed_us >= limit_us) {
		if (!rc->fixed_warned)
			tern_log_msg(&s->log, 4,
				     "downtime-limit %" PRIu64 " ms is below what any switchover "
				     "costs here (%" PRIu64 " us without RAM): switching over once "
				     "the RAM part alone fits",
				     limit_us / 1000, fixed_us);
		rc->fixed_warned = true;
		return ram_us <= limit_us;
	}
	return est_us <= limit_us;
}
