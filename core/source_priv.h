/* SPDX-License-Identifier: MIT */
/*
 * The source side's parts, one file each (the migration thread is in
 * source.c; the picture of the protocol and the bounds on every wait are in
 * its header comment):
 *   src_round.c       the rounds of precopy: dirty-log sync, the send maps
 *                     into batches onto the workers, max-bandwidth, SYNC and
 *                     RAM_SYNC; auto-converge, migration-timeout
 *   src_estimate.c    what the switchover would cost now, against
 *                     downtime-limit; the delivery rate learned from the
 *                     acknowledged rounds
 *   src_switchover.c  pause, the last round, sections, LOADED, the digest,
 *                     COMPLETE, COMMIT; the measured downtime
 *   src_return.c      the return-path thread, the waits for its answers,
 *                     KEEPALIVE
 *   src_postcopy.c    postcopy: the switch (pause, the pages the destination
 *                     lacks, sections, RUN), the rest of RAM in one last
 *                     round, and the destination's page requests served on
 *                     the urgent channel (from the return-path thread)
 * Only the migration thread calls these, except src_rp_thread() (its own
 * thread) and src_delivered_learn() (from it, under ->lock).
 */
#ifndef TERN_CORE_SOURCE_PRIV_H
#define TERN_CORE_SOURCE_PRIV_H

#include "core_priv.h"

/* how often the migration thread's waits look at migration-timeout */
#define SRC_WAIT_TICK_MS 100

/* The migration thread's state across rounds. */
struct round_ctx {
	struct ratelimit rl;
	uint64_t sent_pages; /* queued to the workers, normal or zero */
	/* why the round being sent may end early (ROUND_CUT) */
	uint64_t limit_ms;    /* downtime-limit when the round began */
	uint64_t deadline_ns; /* migration-timeout, 0: none */
	bool cut;	      /* the last round ended early */
	bool final;	      /* switchover: the guest is paused */
	bool postcopy;	      /* tern_postcopy_start(): switch at the next round */
	uint64_t link_bps;    /* the paths' last delivery rate (0: unknown) */
	/* the round being sent: pages the sync left, ->sent_pages at its
	 * start, and its unthrottled tail (when it began, wire bytes then) */
	uint64_t round_pages, round_sent0, tail_ns, tail_wire0;
	/* max-bandwidth held the round back (the sender slept): the last
	 * round's until the next one starts */
	bool held;
	bool fixed_warned;    /* said that the fixed costs exceed the limit */
	struct dirty_rate dr; /* the guest's dirty rate, window by window */
};

/*
 * Which rate the switchover estimate prices the last round at (src_estimate.c):
 *   MEASURED  max-bandwidth did not hold the last round back (none set, or
 *             a path slower than it): the rate the rounds move at;
 *   THROTTLED max-bandwidth holds the rounds back and nothing better is
 *             known yet: its rate (the last round, unthrottled, is faster);
 *   LEARNED   max-bandwidth holds the rounds back; the rounds' unthrottled
 *             tails showed the path faster: 3/4 of what they delivered;
 *   LINK      the same tails showed the path itself no faster than the
 *             limit (a shaped link): the rounds' rate, as THROTTLED;
 *   DECLARED  avail-switchover-bandwidth.
 */
enum sw_rate {
	SW_RATE_NONE = 0, /* no estimate yet */
	SW_RATE_MEASURED,
	SW_RATE_THROTTLED,
	SW_RATE_LEARNED,
	SW_RATE_LINK,
	SW_RATE_DECLARED,
};

const char *sw_rate_name(enum sw_rate r);
/*
 * src_switchover_rate() - the rate for the last round, from the rounds'
 * measured rate @bw, whether max-bandwidth @held the last round back,
 * avail-switchover-bandwidth @avail_bps and the tails' delivery @tail_bps
 * (0: unknown); why, in *@ret_why. Pure: unit-tested.
 */
uint64_t src_switchover_rate(uint64_t bw, bool held, uint64_t avail_bps, uint64_t tail_bps,
			     enum sw_rate *ret_why);

/* From pace() and queue_batch(): stop queueing this round's pages. */
#define ROUND_CUT 1

static inline int src_io_timeout_ms(struct tern_session *s)
{
	return (int)params_get(&s->params, PARAM_IO_TIMEOUT);
}

/* source.c */
int src_start_workers(struct tern_session *s, const struct tern_transport_ops *tp, const char *addr,
		      struct tern_error *err);
/* Stop the return-path thread (@failed: give the destination's ERROR a
 * moment first), shutting the control channel. */
void src_rp_stop(struct tern_session *s, bool failed);

/* src_pc_recover.c */
/* Whether a failure after POSTCOPY_RUN may pause rather than fail. */
bool src_pc_pausable(struct tern_session *s);
/*
 * src_pc_recover() - postcopy failed with @err after RUN: pause (the guest
 * stays paused here, all of RAM kept), wait for tern_postcopy_resume(),
 * reconnect, take the pages the destination lacks into the send maps, and
 * set *@round to the round to send them in. 0: postcopy-active again.
 */
int src_pc_recover(struct tern_session *s, uint64_t *round, struct tern_error *err);

/* src_return.c */
int src_ctl_write_error(struct tern_session *s, int code, const char *what, struct tern_error *err);
int src_ctl_keepalive_maybe(struct tern_session *s, struct tern_error *err);
void src_digest_keepalive(struct tern_session *s);
void *src_rp_thread(void *arg);
int src_wait_reply(struct tern_session *s, bool *flag, const char *what, int timeout_ms,
		   struct tern_error *err);
void src_wait_resumed(struct tern_session *s);
int src_wait_peer(struct tern_session *s, struct round_ctx *rc, bool *flag, uint64_t round,
		  const char *what, struct tern_error *err);
int src_wait_acked(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		   struct tern_error *err);
int src_wait_tick(struct tern_session *s, struct round_ctx *rc, struct tern_error *err);

/* src_round.c */
uint64_t src_timeout_deadline(struct tern_session *s);
uint64_t src_wire_total(struct tern_session *s);
int src_workers_ready(struct tern_session *s, struct tern_error *err);
int src_send_round(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool last,
		   struct tern_error *err);
uint64_t src_synced_bytes(struct tern_session *s);
int src_sync_dirty(struct tern_session *s, struct round_ctx *rc, uint64_t paused_ns,
		   struct tern_error *err);
void src_throttle_set(struct tern_session *s, uint32_t pct);
int src_timeout_reached(struct tern_session *s, uint64_t pending, struct tern_error *err);
int src_precopy(struct tern_session *s, struct round_ctx *rc, uint64_t *ret_round,
		struct tern_error *err);

/* src_estimate.c */
void src_delivered_learn(struct tern_session *s, uint64_t round, uint64_t now);
uint64_t src_estimate_downtime_us(struct tern_session *s, struct round_ctx *rc, uint64_t pending);
bool src_fits_downtime(struct tern_session *s, struct round_ctx *rc, uint64_t round,
		       uint64_t pending);

/* src_switchover.c */
int src_switchover(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool *paused,
		   struct tern_error *err);

/* src_postcopy.c */
bool src_postcopy_wanted(struct tern_session *s);
int src_postcopy(struct tern_session *s, struct round_ctx *rc, uint64_t round, bool *paused,
		 struct tern_error *err);
/* return-path thread: a PAGE_REQ frame's payload; never fails the migration */
void src_pc_serve(struct tern_session *s, const uint8_t *p, uint32_t len);
/* src_send_round(), the postcopy round's pages all queued: close the urgent
 * channel's intake before its last SYNC */
void src_pc_round_done(struct tern_session *s);

#endif
