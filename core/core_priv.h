/* SPDX-License-Identifier: MIT */
/*
 * core: the control plane. The session and its states, parameters, the RAM
 * block registry and dirty bitmaps, the control-channel stream, device
 * sections, the source's precopy loop and the destination's loader.
 *
 * This header serves core/ and its unit tests only; nothing outside core
 * includes it (the library's face is include/tern/tern.h).
 */
#ifndef TERN_CORE_PRIV_H
#define TERN_CORE_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "multifd/multifd.h"
#include "postcopy.h"
#include "util/transport.h"
#include "util/util.h"

/* ---- parameters (params.c) -------------------------------------------- */

enum param_id {
	PARAM_INVALID = 0,
	PARAM_MULTIFD_CHANNELS,
	PARAM_MAX_BANDWIDTH,
	PARAM_AVAIL_SWITCHOVER_BANDWIDTH,
	PARAM_DOWNTIME_LIMIT,
	PARAM_CLEAR_BITMAP_SHIFT,
	PARAM_MULTIFD_COMPRESSION, /* a name: mf_method_by_name() */
	PARAM_MULTIFD_ZLIB_LEVEL,
	PARAM_MULTIFD_ZSTD_LEVEL,
	PARAM_XBZRLE_CACHE_SIZE,
	PARAM_CPU_THROTTLE_INITIAL,
	PARAM_CPU_THROTTLE_INCREMENT,
	PARAM_MAX_CPU_THROTTLE,
	PARAM_MIGRATION_TIMEOUT,
	PARAM_MIGRATION_TIMEOUT_POLICY, /* a name: enum timeout_policy */
	PARAM_HANDSHAKE_TIMEOUT,
	PARAM_IO_TIMEOUT,
	PARAM_RDMA_PIN_LIMIT,
	PARAM_POSTCOPY_RECOVER_TIMEOUT,
	PARAM_MAX,
};

enum cap_id {
	CAP_INVALID = 0,
	CAP_VERIFY_RAM,
	CAP_AUTO_CONVERGE,
	CAP_PAUSE_BEFORE_SWITCHOVER,
	CAP_RDMA_PIN_ALL,
	CAP_ZERO_COPY_SEND,
	CAP_POSTCOPY_RAM,
	CAP_MAX,
};

enum timeout_policy {
	TIMEOUT_POLICY_CANCEL = 0,
	TIMEOUT_POLICY_FORCE,
	TIMEOUT_POLICY_POSTCOPY, /* switch to postcopy (postcopy-ram) */
};

/* Capability bits as they travel in HELLO: only those the destination acts
 * on; the others steer the source alone. */
#define CAP_BIT(c) ((uint64_t)1 << ((c)-1))
#define CAPS_KNOWN (CAP_BIT(CAP_VERIFY_RAM) | CAP_BIT(CAP_POSTCOPY_RAM))
#define CAPS_WIRE CAPS_KNOWN

struct params {
	/* every field is read and written with __atomic builtins: the
	 * management server sets them while the migration thread reads */
	uint64_t val[PARAM_MAX];
	bool cap[CAP_MAX];
};

void params_init(struct params *p);
int params_lookup(const char *name, enum param_id *ret_id);
const char *param_name(enum param_id id);
/* @running: a migration is under way, so start-only parameters are refused */
int params_set(struct params *p, enum param_id id, uint64_t v, bool running,
	       struct tern_error *err);
uint64_t params_get(const struct params *p, enum param_id id);
/* Whether @id takes a name (multifd-compression) rather than a number. */
bool param_is_enum(enum param_id id);
/* By name for enum parameters, a decimal number for the others. */
int params_set_str(struct params *p, enum param_id id, const char *value, bool running,
		   struct tern_error *err);
/* The value as params_set_str() takes it; -ENOSPC when @len is too small. */
int params_get_str(const struct params *p, enum param_id id, char *buf, size_t len);
int caps_lookup(const char *name, enum cap_id *ret_id);
const char *cap_name(enum cap_id id);
bool caps_get(const struct params *p, enum cap_id id);
uint64_t caps_bits(const struct params *p);
/*
 * caps_check_source() - what the source's capabilities ask of a migration
 * over @scheme ("tcp", "unix", "rdma") with @method: -EOPNOTSUPP with the
 * reason for a combination that cannot be (zero-copy-send over unix: or
 * rdma:, or with a codec that encodes every page).
 */
int caps_check_source(const struct params *p, const char *scheme, uint32_t method,
		      struct tern_error *err);

/* ---- transports (transport_uri.c) ------------------------------------- */

/*
 * transport_for_uri() - the transport for @uri (tcp:, unix:, rdma:) and, in
 * @ret_addr, the part after "scheme:". -EINVAL for a malformed address,
 * -EPROTONOSUPPORT for an unknown scheme, each with a message naming @uri.
 */
int transport_for_uri(const char *uri, const struct tern_transport_ops **ret_ops,
		      const char **ret_addr, struct tern_error *err);

/* ---- states (state.c) ------------------------------------------------- */

struct session_state {
	enum tern_status status; /* atomic */
};

bool status_is_final(enum tern_status st);

/* ---- RAM blocks (ram.c) ----------------------------------------------- */

struct tern_ram_block {
	/* immutable after registration */
	struct tern_session *session;
	uint32_t index;
	char name[256];
	uint8_t *host;
	uint64_t size;
	uint64_t npages;
	/* set by VMM threads (tern_ram_mark_dirty), drained by the migration
	 * thread: atomic words */
	uint64_t *dirty;
	/* migration thread only: pages to send this round; chunks whose
	 * provider log must be re-armed before their first page is read */
	uint64_t *send;
	uint64_t *clear_chunks;
	/* migration thread only: clear_chunks as the current sync began,
	 * chunks whose log was not re-armed since the sync before: a page
	 * such a chunk reports again, still in send, is that sync's report
	 * repeated, not a new write */
	uint64_t *stale_chunks;
	/* destination: pages that ever received data (multifd sets them) */
	uint64_t *touched;
};

struct dirty_source {
	const struct tern_dirty_source_ops *ops;
	void *opaque;
	bool started;
};

#define MAX_BLOCKS 256
#define MAX_DIRTY_SOURCES 8

int ram_prepare_source(struct tern_session *s, struct tern_error *err);
int ram_prepare_dest(struct tern_session *s, struct tern_error *err);
/* Sync every provider and the manual marks into ->send; returns the pages
 * newly added (the round's dirty count) through @ret_new. */
int ram_sync(struct tern_session *s, uint64_t *ret_new, struct tern_error *err);
uint64_t ram_pending_pages(struct tern_session *s);
void ram_sources_stop(struct tern_session *s);
void ram_release(struct tern_session *s);

/* ---- RAM digest (digest.c, digest_track.c) --------------------------- */

/* The digest, and a region's hash (the same two words). */
struct ram_digest {
	uint64_t h[2];
};

/* Regions of 1 << DIGEST_REGION_SHIFT bytes (at least a page): part of the
 * digest's definition, so the same on both sides (docs/PROTOCOL.md). */
#define DIGEST_REGION_SHIFT 16
/* A region as an item to hash: block index (< MAX_BLOCKS) and region. */
#define DIGEST_ITEM(block, r) ((uint64_t)(block) << 56 | (r))
#define DIGEST_ITEM_BLOCK(it) ((uint32_t)((it) >> 56))
#define DIGEST_ITEM_REGION(it) ((it) & ((1ull << 56) - 1))

/* The region hash (digest_hash.c): @len bytes at @p, seeded. _with(false)
 * is the scalar code, for tests: the same function. */
void digest_hash_bytes(const uint8_t *p, uint64_t len, uint64_t seed, uint64_t out[2]);
void digest_hash_bytes_with(bool simd, const uint8_t *p, uint64_t len, uint64_t seed,
			    uint64_t out[2]);
bool digest_hash_has_simd(void);
unsigned int digest_region_shift(uint32_t page_size);
uint64_t digest_regions(const struct tern_ram_block *b, unsigned int shift);
void digest_region_hash(const struct tern_ram_block *b, unsigned int shift, uint64_t r,
			struct ram_digest *out);
/* The fold: init, every region of every block in order (each block closed
 * by its end), and the result is the digest. */
void digest_fold_init(struct ram_digest *f);
void digest_fold_region(struct ram_digest *f, uint32_t block, uint64_t r,
			const struct ram_digest *h);
void digest_fold_block_end(struct ram_digest *f, const struct tern_ram_block *b);
/*
 * digest_hash_items() - hash @n regions (DIGEST_ITEM()s, each at most once)
 * into @out[block][region], on up to 8 threads (the caller's among them).
 * @tick: NULL, or called on the calling thread every 64 of its regions.
 */
void digest_hash_items(struct tern_session *s, unsigned int shift, const uint64_t *items,
		       uint64_t n, struct ram_digest *const *out,
		       void (*tick)(struct tern_session *s));

/* Digest every block from scratch, in parallel. @tick: NULL, or called on
 * the calling thread between its regions (the source's keepalive: a large
 * RAM's digest must not be silence to the destination). */
int ram_digest_compute(struct tern_session *s, struct ram_digest *ret_digest,
		       void (*tick)(struct tern_session *s), struct tern_error *err);

/*
 * The digest kept up to date during a migration (digest_track.c): each side
 * hashes regions once it may (source: the dirty log re-armed for them;
 * destination: pages landed there) and again when they change -- the
 * workers the regions their packets carried whole, a thread of its own the
 * rest; the final digest hashes only what changed since. Every call but new
 * and free is NULL-safe (verify-ram off: no tracker).
 */
struct digest_track;

struct digest_track_stats {
	uint64_t background_bytes; /* hashed by the background thread */
	uint64_t worker_bytes;	   /* hashed by the workers (digest_track_packet()) */
	uint64_t final_bytes;	   /* hashed by digest_track_final() */
	uint64_t final_ns;	   /* what digest_track_final() took */
};

/* Start tracking (and the background thread). Destination: call before the
 * workers start; it hands them the counters to bump (s->mf_blocks[].gen). */
int digest_track_new(struct tern_session *s, bool source, struct digest_track **ret_track,
		     struct tern_error *err);
/* Stop the thread, free. Destination: after the workers were joined. */
void digest_track_free(struct digest_track *d);
/* Source, migration thread: after every dirty-log sync (ram_sync()). */
void digest_track_synced(struct digest_track *d);
/* Source, migration thread: the send loop took @page's 64-page word (and
 * every word before it) of block @block off the send map and re-armed its
 * chunk (src_send_round()). */
void digest_track_passed(struct digest_track *d, uint32_t block, uint64_t page);
/*
 * digest_track_wait() - wait until the background has caught up: a pass
 * begun after the call found nothing it may hash. 0 then (and at once
 * without a tracker), -EAGAIN after @timeout_ms. The source calls it before
 * it pauses the guest, so that the pause pays only for the last round.
 */
int digest_track_wait(struct digest_track *d, int timeout_ms);
/* Source, migration thread: the guest is paused and the final sync done. */
void digest_track_paused(struct digest_track *d);
/*
 * digest_track_packet() - a worker, right after its packet of pages @pages
 * (@n page numbers of block @block) went out (source) or landed and was
 * noted (destination, after mf_block_note_written()): hash the regions
 * the packet carried whole, while their bytes are in the cache. Any input
 * is safe: what decides whether a hash stands is the region's counter.
 */
void digest_track_packet(struct digest_track *d, uint32_t block, const uint64_t *pages, uint32_t n);
/* Source, migration thread: the batch @pages goes to a worker, which will
 * hash the regions it carries whole (digest_track_packet()). */
void digest_track_queued(struct digest_track *d, uint32_t block, const uint64_t *pages, uint32_t n);
/* Destination, load thread, at POSTCOPY_RUN: no more background hashing.
 * From then on guest RAM has missing pages, and reading one waits for the
 * source (forever, if it is lost); the final digest hashes what is left,
 * once every page is in. */
void digest_track_stop_background(struct digest_track *d);
/* Destination, load thread: every page of round @round has landed. */
void digest_track_round(struct digest_track *d, uint64_t round);
/*
 * digest_track_final() - the digest of RAM as it is now: stop the
 * background, hash every region written since its hash (in parallel), fold.
 * The caller guarantees that nothing writes RAM any more (source: guest
 * paused; destination: every worker ended). @tick as for ram_digest_compute().
 */
int digest_track_final(struct digest_track *d, struct ram_digest *ret_digest,
		       void (*tick)(struct tern_session *s), struct tern_error *err);
void digest_track_get_stats(const struct digest_track *d, struct digest_track_stats *ret_stats);

/* ---- control channel framing (control.c) ------------------------------ */

#define CTL_MAGIC 0x54524e43u	 /* "TRNC": source -> destination */
#define CTL_RP_MAGIC 0x54524e52u /* "TRNR": the return path */
#define CTL_VERSION 1
#define CTL_HDR_SIZE 8
#define CTL_STREAM_HDR_SIZE 8

enum ctl_type {
	CTL_INVALID = 0,
	CTL_HELLO,	      /* src -> dst: session, page size, channels, caps, RAM layout */
	CTL_HELLO_ACK,	      /* dst -> src */
	CTL_ERROR,	      /* either way: code, message */
	CTL_SECTION_FULL,     /* src -> dst: one device section */
	CTL_RAM_SYNC,	      /* src -> dst: round n ended on every channel */
	CTL_EOS,	      /* src -> dst: end of stream */
	CTL_LOADED,	      /* dst -> src: everything loaded */
	CTL_COMPLETE,	      /* dst -> src: final report (+ digest) */
	CTL_COMMIT,	      /* src -> dst: the source let go; start the guest */
	CTL_RAM_SYNC_ACK,     /* dst -> src: every page of round n has landed */
	CTL_RAM_HINT,	      /* src -> dst: the 2 MiB regions of a block that hold data */
	CTL_RESUMED,	      /* dst -> src, after COMMIT: the guest runs; resume's cost */
	CTL_KEEPALIVE,	      /* src -> dst: nothing else to say for io-timeout / 3 */
	CTL_POSTCOPY_DISCARD, /* src -> dst: pages of a block the destination lacks */
	CTL_POSTCOPY_RUN,     /* src -> dst: start the guest; the rest comes in postcopy */
	CTL_POSTCOPY_RUNNING, /* dst -> src: the guest runs; resume's cost */
	CTL_PAGE_REQ,	      /* dst -> src: a faulted page, send it now */
	/* postcopy recovery (src_pc_recover.c, dest_pc_recover.c) */
	CTL_POSTCOPY_RESUME,	 /* src -> dst: this migration, reconnected */
	CTL_POSTCOPY_MISSING,	 /* dst -> src: pages of a block it still lacks */
	CTL_POSTCOPY_RESUME_ACK, /* dst -> src: that was all; go on after round n */
	CTL_TYPE_MAX,
};

const char *ctl_type_name(uint16_t type);

/* A growable byte buffer for building frames and section payloads. */
struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	bool oom;
};

void buf_init(struct buf *b);
void buf_fini(struct buf *b);
void buf_reset(struct buf *b);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_u16(struct buf *b, uint16_t v);
void buf_put_u32(struct buf *b, uint32_t v);
void buf_put_u64(struct buf *b, uint64_t v);
void buf_put_str(struct buf *b, const char *s); /* u16 length + bytes */

/* A bounds-checked reader over a received payload. */
struct rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool bad; /* a read ran past the end */
};

void rd_init(struct rd *r, const void *p, size_t len);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
const uint8_t *rd_bytes(struct rd *r, size_t n);
/* u16 length + bytes into @out (NUL-terminated); bad if >= @outlen or empty */
void rd_str(struct rd *r, char *out, size_t outlen);
size_t rd_left(const struct rd *r);

/* Frame: type u16 | flags u16 (0) | payload length u32 | payload. */
int ctl_send_stream_hdr(struct tern_conn *c, uint32_t magic);
int ctl_recv_stream_hdr(struct tern_conn *c, uint32_t magic, const char *what,
			struct tern_error *err);
int ctl_send(struct tern_conn *c, enum ctl_type type, const void *payload, size_t len);
/*
 * ctl_recv() - read one frame; *ret_payload is malloc'ed (free it), length
 * checked against the most that type may carry before anything is allocated.
 */
int ctl_recv(struct tern_conn *c, const char *what, uint16_t *ret_type, uint8_t **ret_payload,
	     uint32_t *ret_len, struct tern_error *err);
/*
 * ctl_recv_bounded() - as ctl_recv(), but the wait for the frame's first byte
 * is bounded by the connection's read deadline too: -ETIMEDOUT when @who sent
 * nothing at all (not even a KEEPALIVE) for that long.
 */
int ctl_recv_bounded(struct tern_conn *c, const char *what, const char *who, uint16_t *ret_type,
		     uint8_t **ret_payload, uint32_t *ret_len, struct tern_error *err);
int ctl_send_error(struct tern_conn *c, int code, const char *msg);
/* Decode an ERROR payload into @err as "@who: <message>". */
int ctl_decode_error(const uint8_t *p, uint32_t len, const char *who, struct tern_error *err);

/* ---- handshake (hello.c) --------------------------------------------- */

int hello_encode(struct tern_session *s, struct buf *b);
/* Destination: check HELLO against our own configuration; fills s->uuid,
 * s->nchannels, s->peer_caps. */
int hello_check(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err);

/* ---- page runs (pc_runs.c): POSTCOPY_DISCARD, POSTCOPY_MISSING ---------- */

/* Send @maps (a bitmap per block; NULL: none) as @type frames on @c; the
 * pages named in *@ret_pages, the bytes written added to *@ret_bytes. */
int pc_runs_send(struct tern_session *s, struct tern_conn *c, enum ctl_type type,
		 uint64_t *const *maps, uint64_t *ret_pages, uint64_t *ret_bytes,
		 struct tern_error *err);
/* Check one @type frame and set its runs in @maps[block] (allocated when
 * NULL). */
int pc_runs_take(struct tern_session *s, const uint8_t *p, uint32_t len, enum ctl_type type,
		 uint64_t **maps, struct tern_error *err);

/* ---- region hints (hint.c) --------------------------------------------- */

#define CTL_HINT_MAX (1u << 20)
/* POSTCOPY_DISCARD: block u32 | ranges u32 | (first page u64, pages u64) x ranges */
#define CTL_DISCARD_MAX (1u << 20)
#define CTL_DISCARD_RANGES ((CTL_DISCARD_MAX - 8) / 16)

struct prefault;

/* Source: one RAM_HINT per block, before round 1; @ret_regions: with data. */
int hint_send(struct tern_session *s, uint64_t *ret_regions, struct tern_error *err);
/* Destination: validate and keep one RAM_HINT. */
int hint_receive(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err);
/* Destination: populate the hinted regions on a thread of their own. */
void hint_prefault_start(struct tern_session *s);
/* Stop (flag, join) and free; safe when never started. */
void hint_prefault_stop(struct tern_session *s);

/* ---- device sections (section.c) -------------------------------------- */

struct section {
	char name[256];
	uint32_t instance;
	uint32_t version;
	uint32_t min_version;
	struct tern_section_ops ops;
	void *opaque;
};

#define MAX_SECTIONS 1024
#define SECTION_MAX_PAYLOAD (64u << 20)

struct tern_section_writer {
	struct buf buf;
};

struct tern_section_reader {
	struct rd rd;
};

/* Source: about the bytes the sections will take on the control channel
 * (their size hooks, frames included); the guest runs meanwhile. */
uint64_t sections_size_estimate(struct tern_session *s);
/* Source: save every section and send one SECTION_FULL frame each. */
int sections_save_all(struct tern_session *s, struct tern_conn *ctl, uint64_t *ret_bytes,
		      struct tern_error *err);
/* Destination: decode one SECTION_FULL payload and call its loader. */
int section_load(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err);

/* ---- rate windows (ratelimit.c) -------------------------------------- */

#define RATE_WINDOW_NS 100000000ull /* 100 ms */

struct ratelimit {
	uint64_t win_start_ns;
	uint64_t win_start_bytes;
	uint64_t win_start_ram;
	uint64_t busy_start_ns; /* 0 while the sender is idle */
	uint64_t bw_bps;	/* last measured wire bandwidth */
	uint64_t ram_bps;	/* last measured RAM bytes per second */
	/* the max-bandwidth token bucket */
	uint64_t bucket_ns;
	uint64_t bucket_bytes;
	double credit; /* bytes; negative = debt */
};

void ratelimit_init(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram);
/*
 * ratelimit_account() - called after each batch with the totals so far
 * (@wire_bytes: written by the workers; @ram: bytes of pages queued).
 * Closes the window when it is due (updating the rates) and returns how
 * many ns to sleep to stay under @max_bps (0 = unlimited); at most one
 * window, so that a limit lowered live takes effect within a window.
 */
uint64_t ratelimit_account(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram,
			   uint64_t max_bps);
/* The sender stops (sync point): close the window early if it saw enough. */
void ratelimit_idle(struct ratelimit *rl, uint64_t now_ns, uint64_t wire_bytes, uint64_t ram,
		    uint64_t max_bps);

/* ---- the guest's dirty rate (dirty_rate.c) ----------------------------- */

#define DIRTY_RATE_WINDOW_NS 1000000000ull /* at least 1 s of guest run time */

struct dirty_rate {
	bool bulk_sent, clock;	    /* the bulk round was sent; the clock runs */
	uint64_t last_ns;	    /* the last sync */
	uint64_t win_pages, win_ns; /* the open window: pages, guest run time */
	uint64_t rate, rate_win_ns; /* the last closed window (0, 0: none yet) */
};

void dirty_rate_init(struct dirty_rate *dr);
/* The round that sends all RAM is done: the next sync starts the clock. */
void dirty_rate_bulk_sent(struct dirty_rate *dr);
/*
 * dirty_rate_sync() - a dirty-log sync at @now_ns found @newly pages newly
 * dirtied; the guest was paused for @paused_ns of the time since the last
 * one. Returns true when a window closed: ->rate and ->rate_win_ns are new.
 */
bool dirty_rate_sync(struct dirty_rate *dr, uint64_t now_ns, uint64_t newly, uint64_t paused_ns);

/* ---- the session (session.c, source.c, dest.c) ------------------------ */

/* The downtime's parts, as struct tern_stats shows them (downtime_*_us). */
enum dt_part {
	DT_PAUSE = 0,
	DT_WAIT,
	DT_SYNC,
	DT_RAM,
	DT_DEVICE,
	DT_VERIFY,
	DT_RESUME,
	DT_PARTS,
};

/* The estimate's parts (expected_*_us). */
enum dt_est_part {
	EST_SYNC = 0,
	EST_RAM,
	EST_DEVICE,
	EST_RESUME,
	DT_EST_PARTS,
};

/* One subscription to the session's events (observe.c). */
struct session_observer {
	const struct tern_observer_ops *ops;
	void *opaque;
};

struct tern_session {
	/* immutable after creation */
	struct tern_vmm_ops vmm;
	void *vmm_opaque;
	struct tern_log log;
	uint32_t page_size;

	/* owner thread before start, then the migration / load thread */
	struct tern_ram_block *blocks[MAX_BLOCKS];
	uint32_t nblocks;
	struct section *sections[MAX_SECTIONS];
	uint32_t nsections;
	struct dirty_source sources[MAX_DIRTY_SOURCES];
	uint32_t nsources;
	bool is_source;
	bool started;
	uint8_t uuid[16];
	uint32_t nchannels;
	/* worker connections: nchannels, and one more for urgent pages with
	 * postcopy-ram (the last one) */
	uint32_t nworkers;
	uint64_t peer_caps;
	/* page encoding, fixed at start (source) or by HELLO (destination) */
	uint32_t method;
	int zlib_level, zstd_level;
	/* source: the XBZRLE page cache when the method may use it; resized by
	 * the migration thread between rounds, its size published in
	 * ->xbzrle_size (atomic) */
	struct xbzrle_cache *xbzrle;
	uint64_t xbzrle_param; /* the xbzrle-cache-size it was made with */
	struct mf_block mf_blocks[MAX_BLOCKS];
	const struct tern_transport_ops *tp;
	char uri[300];
	/* verify-ram: the digest kept up to date (digest_track.c); set up and
	 * freed by the migration / load thread, NULL without verify-ram */
	struct digest_track *digest;

	struct params params;

	/* status: atomic; transitions by compare-and-swap (state.c) */
	enum tern_status status;

	/* destination: serialises writes on the return path (the load thread
	 * and a failing worker's ERROR) */
	pthread_mutex_t ctl_wlock;

	/* protected by ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* From ->err up to ->obs_lock: one attempt's state, zero in a new
	 * session and zeroed when a failed or cancelled source migrates again
	 * (session.c): what must outlive an attempt goes elsewhere. */
	struct tern_error err;	    /* first local error */
	struct tern_error peer_err; /* the peer's ERROR, which explains ours */
	bool cancel;
	bool ended; /* the migration / load thread finished its exit path */
	bool got_ack, got_loaded, got_complete, got_resumed;
	bool rp_ended;	   /* source: the return-path thread is on its way out */
	bool error_sent;   /* destination: ERROR went out on the return path */
	bool got_commit;   /* destination */
	bool committing;   /* source: COMMIT is going out; cancel is too late */
	bool continue_req; /* source: tern_continue() in pre-switchover */
	/* postcopy (src_postcopy.c, dest_postcopy.c) */
	bool postcopy_req;     /* source: tern_postcopy_start() asked for it */
	bool postcopy_run;     /* RUN sent (source) or acted on (destination): no way back */
	bool got_pc_running;   /* source: the destination's guest runs */
	uint64_t **pc_missing; /* destination: DISCARD's pages per block, until RUN */
	struct pc_dest *pc;    /* destination: from RUN until the end, or the free */
	struct pc_dest_stats pc_final; /* destination: its figures once it is gone */
	/* source: requests being served by the return path, and the urgent
	 * channel about to close (atomics, src_postcopy.c); when the
	 * destination's POSTCOPY_RUNNING came */
	uint32_t pc_serving;
	bool pc_closing;
	uint64_t pc_running_ns;
	/* postcopy recovery (src_pc_recover.c, dest_pc_recover.c) */
	bool pc_fatal;		   /* destination: postcopy lost for good (its engine failed, or
				    * it gave up): nothing to recover, the source is told */
	bool pc_abandon;	   /* the session is being freed: a pause gives up */
	char pc_resume_uri[300];   /* source: tern_postcopy_resume()'s, until tried */
	bool rp_hdr_read;	   /* source: the resume read the return path's header */
	bool pc_recover_listening; /* destination: tern_postcopy_recover() listens */
	uint64_t pc_pause_ns;	   /* the pause under way began (0: none) */
	uint64_t pc_paused_ns;	   /* the pauses before it, together */
	uint64_t pc_pauses, pc_recoveries;
	/* the worker channels' figures of the data planes a pause ended
	 * (stats.c adds them to the current one's) */
	struct mf_chan_stats prior_total, prior_chan[TERN_MAX_CHANNELS];
	struct mf_codec_stats prior_codec;
	/* the round the next data plane starts with (0: 1) */
	uint64_t mf_first_round;
	uint64_t acked_round;	   /* source: last RAM_SYNC_ACK */
	struct prefault *prefault; /* destination: load thread only */
	uint8_t complete_payload[64];
	uint32_t complete_len;
	struct tern_conn *ctl;	   /* control channel */
	struct tern_conn *pending; /* a connection being handshaken (dest) */
	struct tern_listener *listener;
	struct mf_send *mf_send;
	struct mf_recv *mf_recv;

	pthread_t thread; /* migration or load thread */
	bool thread_started;
	/* that thread's own CPU (that thread only; stats_capture_final() adds
	 * it before the figures are final) */
	struct cpu_thread cpu_main;
	pthread_t rp_thread; /* source: return path */
	bool rp_started;
	/* source, migration thread only: ctl_bytes at the last look, and when
	 * it last changed (ctl_keepalive_maybe()) */
	uint64_t ka_bytes, ka_ns;

	/* figures: written by the migration / load thread, read by anyone
	 * through __atomic loads */
	uint64_t start_ns, setup_end_ns, end_ns, loaded_ns;
	uint64_t downtime_ms, verify_ms, expected_downtime_ms;
	uint64_t rounds, dirty_pages_rate, dirty_rate_win_ns, dirty_sync_ns, dirty_clear_ns;
	uint64_t remaining_pages;
	uint64_t sync_reported; /* migration thread: pages the current sync reported */
	uint64_t ctl_bytes;
	uint64_t bw_bps, ram_bps;
	uint64_t queued_pages;
	uint64_t xbzrle_size;
	bool verified;
	/* source: queued_pages when the round being sent began (its size is
	 * remaining_pages), auto-converge's throttle, the estimate's parts */
	uint64_t round_queued0;
	uint32_t throttle_pct;
	uint64_t exp_us[DT_EST_PARTS];
	uint64_t dt_us[DT_PARTS]; /* the measured downtime's parts */
	uint64_t rtt_ns;	  /* source, atomic: the quickest control round trip */
	/* source, under ->lock: per round (slot round % 4), the wire bytes
	 * written when its RAM_SYNC went out and when its first page was
	 * queued; the return path turns two acknowledged rounds back to back
	 * into the rate the destination received at (delivered_bps); a single
	 * round, from its first page to its acknowledgement, gives a lower
	 * bound for when no rate window ever closed (acked_round_bps) */
	struct {
		uint64_t round, wire0, wire, first_ns, sent_ns, ack_ns;
		/* the round's unthrottled tail (src_round.c): when it began,
		 * and the wire bytes then; 0: none */
		uint64_t tail_ns, tail_wire0;
	} sync_marks[4];
	uint64_t delivered_bps, acked_round_bps;
	/* under ->lock: what the unthrottled tails of rounds delivered, end to
	 * end (0: none measured) */
	uint64_t tail_bps;
	/* atomic: the rate the last estimate priced the switchover at, and
	 * why that one (enum sw_rate) */
	uint64_t sw_rate_bps;
	uint32_t sw_rate_src;
	/* postcopy figures, atomic: when it began (RUN) and ended, the pages
	 * the destination lacked then, the worker channels' bytes at RUN;
	 * source: pages sent urgently, page requests refused as malformed */
	uint64_t pc_start_ns, pc_end_ns, pc_missing_pages, pc_wire0;
	uint64_t pc_urgent_pages, pc_bad_reqs;
	/* under ->lock: what the destination reported of its own time */
	uint64_t peer_sections_ns, peer_resume_ns;
	/* destination, load thread: time spent loading sections */
	uint64_t sections_load_ns;
	/* final data-plane figures, kept after the data plane is freed */
	struct mf_chan_stats final_total;
	struct mf_chan_stats final_chan[TERN_MAX_CHANNELS];
	struct mf_codec_stats final_codec;
	struct tern_xport_stats final_xport;
	char final_reason[128];
	bool final_stats;

	/* who subscribed to the session's events (observe.c): written under
	 * ->obs_lock, ->nobs also read with atomic loads; a notifier holds
	 * ->obs_lock while it calls the hooks. Lock order: ->lock, then
	 * ->obs_lock, then the hooks' own locks. */
	pthread_mutex_t obs_lock;
	/* readable once cancelled: ends a transport connect (tern_cancel()
	 * writes it, each migration drains it); -1 when it could not be made.
	 * After ->obs_lock: a rearm keeps it. */
	int cancel_fd;
	struct session_observer obs[TERN_MAX_OBSERVERS];
	uint32_t nobs;

	/* the attempt's CPU per thread class: opened by tern_migrate() and
	 * tern_incoming(), closed by stats_capture_final() (its own lock) */
	struct cpu_acct cpu;
};

/* observe.c: tell the subscribers (a no-op, one atomic load, without any) */
void observers_state(struct tern_session *s, enum tern_status from, enum tern_status to);
void observers_round(struct tern_session *s, uint64_t round, uint64_t dirty_pages);
/* tern_session_free(): empty the list, then run each closing hook */
void observers_closing(struct tern_session *s);

/* state.c */
/* One compare-and-swap; false when the status was not @from. */
bool session_transition(struct tern_session *s, enum tern_status from, enum tern_status to);
enum tern_status session_status(const struct tern_session *s);
/* Record the first error (under ->lock) and wake everything that waits. */
void session_fail(struct tern_session *s, const struct tern_error *err);
/* Whether the session was cancelled or has failed: long waits stop early. */
bool session_stopping(struct tern_session *s);
bool session_cancelled(struct tern_session *s);
/* Publish the control channel (now the session's, closed by its exit path)
 * where cancel and failure can shut it down; -ECANCELED if a cancel came. */
int session_set_ctl(struct tern_session *s, struct tern_conn *ctl);
/* A postcopy pause begins (once however many recoveries fail in it) and
 * ends with a recovery: the figures; under ->lock. */
void session_pc_pause_begin_locked(struct tern_session *s);
void session_pc_pause_end_locked(struct tern_session *s);
/* What the handshake fixed, as the data plane's configuration. */
struct mf_config session_mf_config(struct tern_session *s, void (*on_error)(void *opaque));

/* source.c / dest.c */
void *source_thread(void *arg);
void *dest_thread(void *arg);

/* dest_postcopy.c: the destination's side of postcopy (load thread) */
struct round_ctx;
int dest_pc_discard(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err);
int dest_pc_run(struct tern_session *s, const uint8_t *p, uint32_t len, uint64_t last_round,
		struct tern_error *err);
/* after the last page: nothing may be missing; unregister */
int dest_pc_finish(struct tern_session *s, struct tern_error *err);
/* dest_pc_recover.c: postcopy-paused and recovery on the load thread */
/* Whether the load's failure may pause rather than fail (postcopy). */
bool dest_pc_pausable(struct tern_session *s);
/* Postcopy is lost for good: @err says what that costs the guest. */
void dest_pc_given_up(struct tern_session *s, struct tern_error *err);
/* dest_postcopy.c: a new set of receive channels places through the engine */
void dest_pc_attach(struct tern_session *s, struct mf_recv *r);
/*
 * dest_pc_recover() - the load failed in postcopy with @err: pause, wait
 * for tern_postcopy_recover() and the source, reconnect, and go on after
 * round *@last_round (which it may move on). 0: postcopy-active again, the
 * caller reads the control stream on; otherwise gave up (@err says why).
 */
int dest_pc_recover(struct tern_session *s, uint64_t *last_round, struct tern_error *err);
/* dest.c, for the recovery: the worker channels' join, and the load */
struct lobby;
int dest_join_channels(struct tern_session *s, struct lobby *lb, struct tern_error *err);
int dest_load(struct tern_session *s, uint64_t *last_round, struct tern_error *err);
/* stats.c: keep a data plane's figures before it is freed (a pause) */
void stats_keep_send(struct tern_session *s, struct mf_send *mf);
void stats_keep_recv(struct tern_session *s, struct mf_recv *mf);
/* the session's end: the pages DISCARD named, and the engine */
void dest_pc_free(struct tern_session *s);
void dest_pc_stats(struct tern_session *s, struct tern_stats *st);

/* lobby.c: the destination's admission of incoming connections */
enum lobby_kind {
	LOBBY_INVALID = 0,
	LOBBY_CONTROL, /* "TRNC" v1 and a complete HELLO (or POSTCOPY_RESUME) frame */
	LOBBY_WORKER,  /* a worker hello, not yet checked */
	LOBBY_KIND_MAX,
};

struct lobby_entry {
	enum lobby_kind kind;
	struct tern_conn *conn;
	uint8_t hello[MF_HELLO_SIZE]; /* LOBBY_WORKER */
	uint16_t type;		      /* LOBBY_CONTROL: HELLO or POSTCOPY_RESUME */
	uint8_t *payload;	      /* LOBBY_CONTROL: that frame's payload (malloc'd) */
	uint32_t len;
};

struct lobby;
int lobby_new(struct tern_session *s, int handshake_ms, struct lobby **ret_lobby,
	      struct tern_error *err);
/*
 * lobby_next() - accept connections until one presents a control HELLO or a
 * worker hello within handshake-timeout; the others are closed and logged.
 * @deadline_ms: tern_now_ms() by which to give up (-ETIMEDOUT, @err left
 * alone), 0: none. -ECANCELED on cancel or failure; an accept error with
 * @err set. The entry is the caller's: lobby_refuse() it, or take its
 * connection and free its payload.
 */
int lobby_next(struct lobby *lb, uint64_t deadline_ms, struct lobby_entry *ret_entry,
	       struct tern_error *err);
/* Log @why, remember it for lobby_last_refused(), close the entry's connection. */
void lobby_refuse(struct lobby *lb, struct lobby_entry *e, const char *why);
/* lobby_refuse(), telling a control channel why first (an ERROR frame). */
void lobby_refuse_told(struct lobby *lb, struct lobby_entry *e, int code, const char *why);
/* The same for a connection already closed (consumed by a callee). */
void lobby_note_refused(struct lobby *lb, const char *peer, const char *why);
/* "PEER: why" of the last connection turned away, or NULL. */
const char *lobby_last_refused(struct lobby *lb);
/* Shut down and close every connection still in handshake. NULL: no-op. */
void lobby_free(struct lobby *lb);

/* stats.c */
void stats_fill(struct tern_session *s, struct tern_stats *st);
/* On the migration / load thread, as the migration ends (its threads
 * joined): keep the data plane's figures and close the CPU accounting,
 * this thread's own share added. */
void stats_capture_final(struct tern_session *s);

#endif /* TERN_CORE_PRIV_H */
