/* SPDX-License-Identifier: MIT */
/*
 * multifd: the data plane. N worker channels carry RAM pages, each in its own
 * thread with its own connection; the control plane (core/) hands batches of
 * page numbers to the send side and waits on per-round sync points on the
 * receive side. Nothing here parses the control stream.
 *
 * Wire format of a worker channel (all integers big-endian):
 *
 *   channel hello, once:  magic "TRNW" | version u32 | session uuid[16] |
 *                         channel index u32 | channel count u32      (32 B)
 *   then packets:         header (48 B) | offsets u64 x (normal + zero) |
 *                         payload (normal pages, encoded by the packet's codec)
 *
 *   header: magic "TRNP" u32 | version u16 | flags u16 | seq u64 |
 *           round u64 | block u32 | normal u32 | zero u32 | codec u32 |
 *           payload_len u32 | reserved u32 (0)
 *
 * seq counts packets on the channel from 0. round is the dirty-bitmap round
 * the pages belong to; a SYNC packet (no pages) closes round @round on its
 * channel, and SYNC|LAST closes the channel. Offsets are byte offsets in the
 * block, page-aligned, normal pages first; zero pages carry no payload.
 *
 * codec: how the payload encodes the normal pages (enum tern_codec_id). NONE
 * is the pages themselves, normal x page_size bytes; the others are what
 * compress/ makes of them, at most codec_payload_max() bytes. Which codecs a
 * channel accepts follows from the method fixed in HELLO (mf_codec_allowed()):
 * the method's own codec, and NONE always (a packet of zero pages only, or a
 * batch the sender chose not to encode). SYNC packets carry NONE.
 *
 * Ordering: a receiving channel that reads SYNC n waits until every channel
 * has read SYNC n (mf_recv_wait_sync(), driven by RAM_SYNC n on the control
 * channel) before it reads on, so a page from round n can never land after
 * its newer copy from round n+1 that travelled on another channel.
 *
 * Postcopy: a page packet sent after the switch to postcopy carries
 * MF_FLAG_POSTCOPY. The destination guest runs by then, so such pages never
 * go into guest RAM by a plain write (a vCPU may fault on them meanwhile):
 * the receiver reads or decodes them into a buffer of its own and hands them
 * to the placer (mf_recv_set_placer(), userfaultfd) -- zero pages too. A
 * postcopy packet never carries XBZRLE (its delta would apply to a page the
 * destination dropped); a SYNC packet never carries the flag.
 *
 * The urgent channel (postcopy-ram, mf_config.urgent): the last of the
 * channels carries only the pages the destination faulted on, so that none
 * waits behind bulk pages; bulk batches never use it. It is an ordinary
 * channel otherwise: it writes SYNC n after its round-n pages like the others
 * and SYNC|LAST closes it.
 */
#ifndef TERN_MULTIFD_H
#define TERN_MULTIFD_H

#include <stdbool.h>
#include <stdint.h>

#include "compress/compress.h"
#include "util/transport.h"
#include "util/util.h"

/* Slots of per-codec arrays: indexed by codec id, 0 unused. */
#define MF_NCODECS TERN_CODEC_MAX

#define MF_HELLO_MAGIC 0x54524e57u  /* "TRNW" */
#define MF_PACKET_MAGIC 0x54524e50u /* "TRNP" */
#define MF_VERSION 1
#define MF_HELLO_SIZE 32
#define MF_HDR_SIZE 48

#define MF_FLAG_SYNC 0x1
#define MF_FLAG_LAST 0x2
#define MF_FLAG_POSTCOPY 0x4 /* page packets only: place, never write (above) */
#define MF_FLAGS_KNOWN (MF_FLAG_SYNC | MF_FLAG_LAST | MF_FLAG_POSTCOPY)

/*
 * The page-encoding method both sides agree on in HELLO: one codec for every
 * packet (the codec ids of compress.h), or AUTO, where the sender picks none,
 * zstd or XBZRLE per packet.
 */
#define MF_METHOD_AUTO 0x10u

/* Pages per packet: the default batch and the most a receiver accepts. */
#define MF_BATCH_PAGES 512
#define MF_MAX_PAGES 512
/* rounds whose SYNC marks a sending channel keeps (mf_send_sync_wire()) */
#define MF_SYNC_MARKS 4

struct mf_packet_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint64_t seq;
	uint64_t round;
	uint32_t block;
	uint32_t normal;
	uint32_t zero;
	uint32_t codec;
	uint32_t payload_len;
	uint32_t reserved;
};

/* A RAM block as the data plane sees it. */
struct mf_block {
	uint8_t *host;
	uint64_t size;
	/* destination: pages that ever received data (atomic bits) */
	uint64_t *touched;
	/* destination, verify-ram: a counter per 1 << gen_shift bytes, bumped
	 * after pages landed there (mf_block_note_written()); NULL: none */
	uint32_t *gen;
	unsigned int gen_shift;
};

/* What both sides agree on in the handshake. */
struct mf_config {
	uint8_t uuid[16];
	uint32_t page_size;
	uint32_t nchannels;
	/* postcopy-ram: the last of the @nchannels (>= 2) is the urgent
	 * channel (mf_send_urgent_get()); bulk batches use the others */
	bool urgent;
	uint32_t method; /* a codec id (enum tern_codec_id) or MF_METHOD_AUTO */
	int zlib_level;	 /* 1..9 */
	int zstd_level;	 /* 1..20 */
	/* source, methods that may use XBZRLE: the session's page cache, shared
	 * by every channel's encoder; the caller resizes it only while the
	 * workers are drained (mf_send_flush()) */
	struct xbzrle_cache *xbzrle;
	const struct mf_block *blocks;
	uint32_t nblocks;
	/* the first round the channels carry (0 means 1): a postcopy recovery
	 * reconnects in the middle of a migration and goes on with its round */
	uint64_t first_round;
	/* source: io-timeout, ms (0: none): the longest a worker's write may
	 * make no progress (the caller also set it on each connection), and
	 * the longest the producer waits for a worker to take anything */
	int io_timeout_ms;
	/* source: how the channels register guest RAM on a placement
	 * transport (the session's pin-all capability and pin limit);
	 * ignored by streams */
	struct tern_bind_opts bind;
	const struct tern_log *log;
	/* where the workers add their CPU when they end (NULL: nowhere) */
	struct cpu_acct *cpu;
	/* Called once, from the worker that failed first, after its error is
	 * recorded: core uses it to wake its own threads. May be NULL. */
	void (*on_error)(void *opaque);
	/* verify-ram (NULL: off): called by a worker right after a packet's
	 * normal pages went out (source) or landed (destination, after
	 * mf_block_note_written()), with their page numbers in the block --
	 * validated, in the packet's order -- while their bytes are in the
	 * cache. Its CPU is the digest's (the worker switches class). */
	void (*digest)(void *opaque, uint32_t block, const uint64_t *pages, uint32_t n);
	void *opaque;
};

/* Whether channel @index is the urgent one (postcopy-ram: the last). */
/* The round a new set of channels starts with. */
static inline uint64_t mf_first_round(const struct mf_config *cfg)
{
	return cfg->first_round ? cfg->first_round : 1;
}

static inline bool mf_chan_is_urgent(const struct mf_config *cfg, uint32_t index)
{
	return cfg->urgent && index == cfg->nchannels - 1;
}

/*
 * A bulk worker's first postcopy packet: from now on it yields the CPU to
 * the urgent path. In postcopy the guest waits on a fault, a request and
 * one page, while bulk pages only have to arrive some time; on a host whose
 * cores the bulk workers fill, a woken urgent thread (the fault thread,
 * the return path, the urgent channel's worker on either side) and the
 * guest's own vCPUs would otherwise wait for a time slice behind them.
 * Nice MF_BULK_NICE for the rest of the worker's life (it ends with the
 * migration); raising one's own nice needs no privilege.
 */
#define MF_BULK_NICE 10
static inline void mf_postcopy_background(void)
{
	thread_set_background(MF_BULK_NICE);
}

/* ---- packet.c: encoding and validation ---------------------------------- */

/* "none", "zlib", "zstd", "xbzrle", "auto"; "invalid" otherwise. */
const char *mf_method_name(uint32_t method);
/* The method named @name, or 0. */
uint32_t mf_method_by_name(const char *name);
/* Bit (1 << codec id) for every codec a packet may carry under @method; 0 for
 * an unknown method. */
uint32_t mf_method_codecs(uint32_t method);
/* Whether a data packet of codec @codec is acceptable under @method. */
bool mf_codec_allowed(uint32_t method, uint32_t codec);
/*
 * mf_method_check() - whether this build can encode and decode every codec
 * @method may use; -EPROTONOSUPPORT naming the first it lacks, prefixed by
 * @who ("multifd-compression", "HELLO" ...).
 */
int mf_method_check(uint32_t method, const char *who, struct tern_error *err);
/* The most payload bytes a packet of @n pages may carry under @method. */
uint64_t mf_method_payload_max(uint32_t method, uint32_t page_size, uint32_t n);

void mf_hello_encode(uint8_t buf[MF_HELLO_SIZE], const uint8_t uuid[16], uint32_t index,
		     uint32_t nchannels);
/* Check a received hello against @cfg; on success *ret_index is the channel. */
int mf_hello_check(const uint8_t buf[MF_HELLO_SIZE], const struct mf_config *cfg,
		   uint32_t *ret_index, struct tern_error *err);

void mf_hdr_encode(uint8_t buf[MF_HDR_SIZE], const struct mf_packet_hdr *h);
void mf_hdr_decode(const uint8_t buf[MF_HDR_SIZE], struct mf_packet_hdr *h);

/*
 * mf_hdr_check() - validate every header field before anything is read into
 * memory: magic, version, flags (POSTCOPY on page packets only), reserved,
 * codec (known, allowed by the method, not XBZRLE with POSTCOPY), sequence
 * number, round, block index, page counts against
 * MF_MAX_PAGES, payload length (exact for NONE, bounded by
 * codec_payload_max() for the others).
 * @expect_seq: the next packet number on this channel.
 * @round: the round in progress on this channel (last SYNC + 1).
 */
int mf_hdr_check(const struct mf_packet_hdr *h, const struct mf_config *cfg, uint32_t chan,
		 uint64_t expect_seq, uint64_t round, struct tern_error *err);

/* Validate @n big-endian offsets of block @blk; -EPROTO naming the first bad one. */
int mf_offsets_check(const uint8_t *offsets, uint32_t n, const struct mf_block *blk,
		     uint32_t page_size, uint32_t chan, uint64_t seq, struct tern_error *err);

/*
 * mf_block_note_written() - after a packet's @n pages (validated offsets)
 * landed in @blk -- written, decoded or cleared -- bump the counter of each
 * region they touched, once per run of offsets in one region, with release
 * order: whoever reads a counter (acquire) and then the region sees those
 * pages. Nothing without ->gen.
 */
void mf_block_note_written(const struct mf_block *blk, const uint8_t *offsets, uint32_t n);

/* The settings of codec @id's encoder or decoder on a channel of @cfg. */
struct codec_config mf_codec_config(const struct mf_config *cfg, uint32_t id);

/* ---- per-channel figures ----------------------------------------------- */

struct mf_chan_stats {
	uint64_t wire_bytes;
	uint64_t normal_pages;
	uint64_t zero_pages;
	uint64_t packets;
};

/*
 * mf_chan_stats_add() - add a snapshot of @live (updated by its worker with
 * relaxed atomics) to @total, and store the snapshot in @ret_one if not NULL.
 */
void mf_chan_stats_add(struct mf_chan_stats *total, const struct mf_chan_stats *live,
		       struct mf_chan_stats *ret_one);

/*
 * Per-channel codec figures, indexed by codec id: what went through each
 * codec (compress/'s struct codec_stats, copied by the worker after each
 * packet with relaxed atomic stores), and on the source the packets each
 * codec carried under AUTO.
 */
struct mf_codec_stats {
	struct codec_stats codec[MF_NCODECS];
	uint64_t auto_packets[MF_NCODECS];
};

/* Add a snapshot of @live (relaxed atomic loads) to @total. */
void mf_codec_stats_add(struct mf_codec_stats *total, const struct mf_codec_stats *live);

/* ---- send.c ------------------------------------------------------------ */

struct mf_send;

/* A batch of pages of one block, filled by the producer (migration thread). */
struct mf_batch {
	uint32_t block;
	uint32_t npages;
	uint64_t round;
	/* the guest is paused (switchover): AUTO must not try a codec it has
	 * no figures for, nor probe -- a first zstd context or XBZRLE cache
	 * touched now costs downtime */
	bool paused;
	/* sent after the switch to postcopy: the packet carries
	 * MF_FLAG_POSTCOPY and never XBZRLE (another codec, or none) */
	bool postcopy;
	/* codec NONE whatever the method (urgent pages) */
	bool raw;
	uint64_t pages[MF_MAX_PAGES]; /* page numbers within the block */
};

/*
 * mf_send_start() - start one worker per connection. Each sends its hello,
 * binds the RAM to its connection (conn_bind_ram(): a placement transport
 * registers it and learns the peer's keys; a stream does nothing), then
 * sends packets. mf_send_flush() waits for the hellos and the binding too, so
 * a caller that wants the setup's cost in its setup time calls it next.
 * @conns: consumed (closed by mf_send_free()), success or not.
 */
int mf_send_start(const struct mf_config *cfg, struct tern_conn **conns, struct mf_send **ret,
		  struct tern_error *err);

/*
 * The producer's waits below end at the latest when no worker took or
 * finished anything for twice io-timeout (the data plane then fails with
 * that reason; a stalled write fails its worker sooner), at once on failure
 * or shutdown, and -- those that take @timeout_ms (-1: no limit of the
 * caller's) -- with -EAGAIN after @timeout_ms, so that the caller can look
 * at its own clocks (a migration-timeout) and call again.
 */

/* An empty batch to fill (paused, postcopy and raw false); waits for one.
 * NULL once the data plane failed. A producer that holds no other batch
 * never waits here (the pool has one batch more than the slots and the
 * workers of the bulk channels can hold). */
struct mf_batch *mf_send_batch_get(struct mf_send *s);
/* Hand a filled batch to the next free worker (never the urgent channel's).
 * @b: consumed, except on -EAGAIN, when it is still the caller's. */
int mf_send_batch_queue(struct mf_send *s, struct mf_batch *b, int timeout_ms);
/* Give back a batch that was not filled (e.g. cancel). An urgent batch goes
 * back to the urgent pool. NULL is a no-op. */
void mf_send_batch_put(struct mf_send *s, struct mf_batch *b);

/*
 * The urgent channel (cfg.urgent): pages the destination faulted on, from
 * the return-path thread, while the migration thread queues bulk batches and
 * syncs -- the three calls below are thread-safe against those.
 *
 * mf_send_urgent_get() - an empty batch from the urgent pool: two batches
 * (one sending, one in the slot) that bulk batches never take. Its postcopy
 * and raw are set (postcopy pages, sent unencoded), paused is false. Waits
 * while both are in flight (the producer waits' stall backstop applies).
 * NULL on failure or shutdown, once the urgent channel is closed (its
 * SYNC|LAST was queued), or without cfg.urgent.
 */
struct mf_batch *mf_send_urgent_get(struct mf_send *s);
/*
 * mf_send_urgent_queue() - put @b in the urgent channel's slot, after what
 * is there already (a batch or a SYNC), waiting for it as
 * mf_send_batch_queue() does. @b->round is set here: the round in progress
 * on the urgent channel (its last SYNC queued + 1), whatever the caller put
 * there, so that a request racing mf_send_sync() still carries the round the
 * destination expects on that channel. -EPIPE once the urgent channel is
 * closed: drop the request, the page is on its way on a bulk channel.
 * @b: consumed (back to the urgent pool when sent, or at once on -EPIPE and
 * every other failure) -- except on -EAGAIN, when it is still the caller's:
 * only then may the caller mf_send_urgent_put() it.
 */
int mf_send_urgent_queue(struct mf_send *s, struct mf_batch *b, int timeout_ms);
/* Give back an urgent batch that was not queued. NULL is a no-op. */
void mf_send_urgent_put(struct mf_send *s, struct mf_batch *b);
/* Queue SYNC @round on every channel (the urgent one too), after what each
 * has queued. @last closes the channels after it. Returns without waiting
 * for the send. After -EAGAIN some channels may have theirs queued: call
 * again with the same @round, and only the others are queued. */
int mf_send_sync(struct mf_send *s, uint64_t round, bool last, int timeout_ms);
/* Wait until every queued batch and sync was written (urgent ones too). */
int mf_send_flush(struct mf_send *s, int timeout_ms);
/* First worker error (0 if none), copied to @err. */
int mf_send_error(struct mf_send *s, struct tern_error *err);
/* Cancel: shut every connection down and wake every waiter. Thread-safe. */
void mf_send_shutdown(struct mf_send *s);
/* Sum over channels and, when @per_chan is not NULL, each channel's figures. */
void mf_send_stats(struct mf_send *s, struct mf_chan_stats *total, struct mf_chan_stats *per_chan);
/*
 * The bytes written on all channels up to and including their SYNC of
 * @round, in *@ret_bytes (the same count mf_send_stats() sums): false when a
 * channel has not written that SYNC yet, or has written the SYNC of a round
 * MF_SYNC_MARKS or more later (its mark was reused). Thread-safe.
 */
bool mf_send_sync_wire(struct mf_send *s, uint64_t round, uint64_t *ret_bytes);
/*
 * What the channels' paths deliver together, bytes/s, as the transport
 * measured it (TCP: the kernel's delivery rate); 0 when a channel cannot
 * say, or its last sample was limited by the sender having nothing to send
 * (then it says only "at least"). Thread-safe.
 */
uint64_t mf_send_link_rate(struct mf_send *s);
/*
 * Whether the channels place pages in the peer's RAM as they send them
 * (conn_places_pages()). The receiving side's SYNC barrier then orders
 * nothing: a page of round n+1 would land at once, before a copy of round n
 * still in flight on another channel, or before the peer clears a page that
 * round n sent as zero. The caller must not send round n+1's pages before
 * the peer acknowledged round n.
 */
bool mf_send_places_pages(struct mf_send *s);
/* The transports' own figures (registration, placement) summed over channels. */
void mf_send_xport_stats(struct mf_send *s, struct tern_xport_stats *total);
/* Codec figures summed over channels; @reason (@len bytes, may be NULL): the
 * explanation of AUTO's last choice on any channel ("" before the first). */
void mf_send_codec_stats(struct mf_send *s, struct mf_codec_stats *total, char *reason, size_t len);
/* Stop (quit flag, wake, join) and free. NULL is a no-op. */
void mf_send_free(struct mf_send *s);

/* ---- recv.c ------------------------------------------------------------ */

struct mf_recv;

/*
 * Places @n pages at @page of block @block atomically (userfaultfd): from
 * @data (n x page_size bytes, valid only during the call), or zero pages
 * when @data is NULL. Called by the receive workers, concurrently, for the
 * pages of MF_FLAG_POSTCOPY packets. A negative errno, with @err set, fails
 * the receive side with that message.
 */
typedef int (*mf_place_fn)(void *opaque, uint32_t block, uint64_t page, uint32_t n,
			   const void *data, struct tern_error *err);

int mf_recv_new(const struct mf_config *cfg, struct mf_recv **ret, struct tern_error *err);
/*
 * mf_recv_set_placer() - where the pages of postcopy packets go from now on
 * (@fn not NULL); call once, from the load thread, when postcopy starts. A
 * worker that reads a postcopy packet first reads and checks all of it, then
 * waits for this call before placing anything -- the packets say what they
 * are, so the placer may come after the workers were released past the last
 * precopy SYNC. Until then that worker reads nothing more, so its SYNCs wait
 * too; mf_recv_shutdown() or a failure ends the wait (and the worker; a
 * shutdown is no failure). Thread-safe.
 */
void mf_recv_set_placer(struct mf_recv *r, mf_place_fn fn, void *opaque);
/*
 * mf_recv_add_channel() - read and check the hello on @conn, then run a
 * worker for that channel. @conn: consumed, success or not.
 */
int mf_recv_add_channel(struct mf_recv *r, struct tern_conn *conn, struct tern_error *err);
/*
 * mf_recv_join() - run a worker for channel @index on @conn, whose hello the
 * caller has read and checked (mf_hello_check()). -EPROTO when that channel
 * has joined already. @conn: consumed, success or not.
 */
int mf_recv_join(struct mf_recv *r, struct tern_conn *conn, uint32_t index, struct tern_error *err);
/* Whether every channel has joined. */
bool mf_recv_complete(struct mf_recv *r);
/*
 * mf_recv_wait_sync() - wait until every channel has read SYNC @round, then
 * let them read on. Returns the first worker error instead, if any.
 */
int mf_recv_wait_sync(struct mf_recv *r, uint64_t round, struct tern_error *err);
/* Wait until every channel has read SYNC|LAST and its worker has ended. */
int mf_recv_finish(struct mf_recv *r, struct tern_error *err);
int mf_recv_error(struct mf_recv *r, struct tern_error *err);
void mf_recv_shutdown(struct mf_recv *r);
void mf_recv_stats(struct mf_recv *r, struct mf_chan_stats *total, struct mf_chan_stats *per_chan);
void mf_recv_codec_stats(struct mf_recv *r, struct mf_codec_stats *total);
void mf_recv_xport_stats(struct mf_recv *r, struct tern_xport_stats *total);
void mf_recv_free(struct mf_recv *r);

#endif /* TERN_MULTIFD_H */
