/* SPDX-License-Identifier: MIT */
/*
 * libtern: live migration of a running guest's RAM and device state.
 *
 * A VMM creates one session per migration, registers its RAM blocks and
 * device sections, sets parameters, and calls tern_migrate() (source) or
 * tern_incoming() (destination). The library runs its own threads; the VMM
 * is called back from the migration thread (source) or the load thread
 * (destination) to pause and resume its vCPUs.
 *
 * Unless a function says "thread-safe", call it from the thread that owns the
 * session (the one that created it). No callback runs after tern_wait() has
 * returned a final status.
 *
 * Lifetime: a struct tern_ram_block belongs to its session and dies with
 * it: it is valid until tern_session_free() begins, and not after (a section
 * writer or reader lives only for the save or load call it is passed to).
 * So the VMM frees a session last, in this order:
 *   1. stop (join, or park for good) every thread of its own that may still
 *      call into the session: the threads that call tern_ram_mark_dirty()
 *      (vCPUs, device emulation, DMA) and any that call the thread-safe
 *      entry points (tern_cancel(), tern_stats_get(), ...);
 *   2. tern_session_free(), which cancels the migration and joins the
 *      library's threads (no callback runs after it returns);
 *   3. only then free what the callbacks and the dirty-log providers use,
 *      and the guest RAM.
 * Debug builds (no NDEBUG) check the first rule where it is cheap: a
 * tern_ram_mark_dirty(), tern_dirty_report(), tern_ram_block_name() or
 * tern_ram_block_size() on a block of a freed session (a
 * tern_ram_mark_dirty() that overlaps the free included) prints the block's
 * name and aborts. Release builds turn a late tern_ram_mark_dirty() or
 * tern_dirty_report() into -ESTALE, but a call that overlaps the free is
 * undefined there. Both remember the last 1024 blocks freed in the process;
 * a handle older than that is undefined.
 *
 * Errors: every function returns zero (or a positive value) on success and a
 * negative errno on failure; when @err is not NULL it receives a message.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_EXPORT __attribute__((visibility("default")))

/* The most worker channels a session may use (multifd-channels). */
#define TERN_MAX_CHANNELS 64

/**
 * struct tern_error - a caller-owned error report.
 * @code: negative errno; 0 while unset.
 * @msg: human-readable detail; the first error recorded wins.
 */
struct tern_error {
	int code;
	char msg[256];
};

struct tern_session;
struct tern_ram_block;
struct tern_section_writer;
struct tern_section_reader;

/*
 * Migration states. Source: none -> setup -> active -> device -> completed,
 * with pause-before-switchover active -> pre-switchover -> device (the guest
 * is paused in pre-switchover), or failed / cancelling -> cancelled from any
 * state before completed.
 * Destination: none -> setup -> active -> completed | failed.
 * With postcopy-ram, after tern_postcopy_start(): source active ->
 * postcopy-active -> completed | failed; destination active ->
 * postcopy-active -> completed | failed. In postcopy-active the guest runs
 * on the destination (the source never resumes it). A broken connection
 * in postcopy-active loses nothing: both sides go to postcopy-paused (the
 * destination's vCPUs that need a missing page wait, the source keeps all
 * of guest RAM), tern_postcopy_recover() / tern_postcopy_resume() go
 * through postcopy-recover back to postcopy-active, and only a side that
 * gives up (postcopy-recover-timeout, or the session freed) fails.
 */
enum tern_status {
	TERN_STATUS_INVALID = 0,
	TERN_STATUS_NONE,
	TERN_STATUS_SETUP,
	TERN_STATUS_ACTIVE,
	TERN_STATUS_PRE_SWITCHOVER,
	TERN_STATUS_DEVICE,
	TERN_STATUS_COMPLETED,
	TERN_STATUS_FAILED,
	TERN_STATUS_CANCELLING,
	TERN_STATUS_CANCELLED,
	TERN_STATUS_POSTCOPY_ACTIVE,
	TERN_STATUS_POSTCOPY_PAUSED,
	TERN_STATUS_POSTCOPY_RECOVER,
	TERN_STATUS_MAX,
};

/** tern_status_name() - "active", "completed", ... ("invalid" when out of range). */
TERN_EXPORT const char *tern_status_name(enum tern_status st);

/**
 * struct tern_vmm_ops - callbacks into the VMM.
 * @pause: source only: stop every vCPU (and the VMM's own writers to guest
 *	RAM) for switchover; return once they are stopped. A failure aborts
 *	the migration (the guest keeps running). Called on the migration thread.
 * @resume: source: the guest was paused for switchover but the migration
 *	failed or was cancelled, so run it again. Destination: the whole state
 *	was loaded and the source let go of the guest, start it; the status
 *	turns `completed` after this returns. Called on the migration / load
 *	thread.
 * @state_changed: optional; every transition, from the thread that made it.
 * @throttle: optional, source, auto-converge: keep every vCPU out of the
 *	guest for @percent % of its time (0: run freely again), so that the guest
 *	dirties memory more slowly. Called on the migration thread when a round
 *	did not shrink what remains; once it was called with a non-zero value it
 *	is called with 0 when the migration ends, whatever the outcome. Time the
 *	guest loses this way must not be made up afterwards.
 */
struct tern_vmm_ops {
	int (*pause)(void *opaque, struct tern_error *err);
	void (*resume)(void *opaque);
	void (*state_changed)(void *opaque, enum tern_status from, enum tern_status to);
	void (*throttle)(void *opaque, unsigned int percent);
};

/**
 * tern_session_new() - create a session.
 * @ops: callbacks (copied); @opaque is passed back to them.
 * @ret_session: the new session, written only on success.
 *
 * Return: 0 or a negative errno.
 */
TERN_EXPORT int tern_session_new(const struct tern_vmm_ops *ops, void *opaque,
				 struct tern_session **ret_session, struct tern_error *err);

/**
 * tern_session_free() - cancel whatever runs, join every thread, free all.
 * NULL is a no-op. The RAM the VMM registered is not touched.
 *
 * Call it from the owner thread, after every VMM thread that may use the
 * session or one of its RAM blocks has stopped (see "Lifetime" at the top):
 * the session and its blocks are invalid from the moment it begins. The
 * VMM's callbacks may still run until it returns (to resume a paused guest),
 * so what they use must stay until then.
 */
TERN_EXPORT void tern_session_free(struct tern_session *s);

/* Logging: the library never prints; it hands lines at @level or more urgent
 * (syslog levels, LOG_ERR .. LOG_DEBUG) to @fn, from any of its threads. */
typedef void (*tern_log_fn)(void *opaque, int level, const char *msg);
TERN_EXPORT void tern_set_log_fn(struct tern_session *s, tern_log_fn fn, void *opaque, int level);

/*
 * Parameters, by the names operators know from QEMU:
 *   multifd-channels     1..64, default 2        (before start only)
 *   max-bandwidth        bytes/s, 0 = unlimited (default); thread-safe, live.
 *                        Held as an average: under it each round's last
 *                        4 MiB go unthrottled (paid back by the next round)
 *                        and what they deliver tells the switchover estimate
 *                        what the unthrottled last round will get
 *   avail-switchover-bandwidth  bytes/s, 0 = not declared (default); live.
 *                        What the last round (guest paused, never throttled)
 *                        may use: the estimate prices it at this rate, and
 *                        the rounds' tails are not sent unthrottled. Not
 *                        declared: learned as above; on a path no faster than
 *                        max-bandwidth (a shaped link), its rate. Stats say
 *                        which: switchover_bandwidth_bps, switchover_rate
 *   downtime-limit       ms, 1..2000000, default 300; thread-safe, live
 *   clear-bitmap-shift   6..31, default 18       (before start only)
 *   multifd-compression  a name: none (default), zlib, zstd, xbzrle or auto
 *                        (before start only; source side: the destination
 *                        follows what the source's HELLO says). auto picks
 *                        none, zstd or xbzrle per packet, whichever moves the
 *                        most RAM per second on the measured link. Set and read
 *                        with tern_param_set_str() / tern_param_get_str(); a
 *                        codec this build lacks is refused.
 *   multifd-zlib-level   1..9, default 1         (before start only)
 *   multifd-zstd-level   1..20, default 1        (before start only)
 *   xbzrle-cache-size    bytes, 4096..1 TiB, default 64 MiB, at least one page;
 *                        thread-safe, live: a change takes effect at the next
 *                        round boundary, once the workers drained (the cache
 *                        starts empty again)
 *   cpu-throttle-initial    %, 1..99, default 20; live  (auto-converge)
 *   cpu-throttle-increment  %, 1..99, default 10; live  (auto-converge)
 *   max-cpu-throttle        %, 1..99, default 99; live  (auto-converge)
 *   migration-timeout    seconds from tern_migrate(), 0..31536000, 0 = none
 *                        (default); live. Reached before switchover, the
 *                        policy applies within a second whatever the
 *                        destination does (a stopped one included).
 *   migration-timeout-policy  a name: cancel (default: the migration ends
 *                        `cancelled`, the source guest runs on), force
 *                        (switch over now, accepting a longer downtime) or
 *                        postcopy (switch to postcopy now: needs the
 *                        postcopy-ram capability); live; set with
 *                        tern_param_set_str()
 *   handshake-timeout    ms, 100..600000, default 10000 (before start only):
 *                        the longest a connection may take to present its
 *                        stream header and HELLO (or a worker channel its
 *                        hello), and the longest either side waits for the
 *                        other's handshake step (HELLO_ACK, the workers'
 *                        join). A destination closes and forgets a
 *                        connection that misses it and keeps listening.
 *   io-timeout           ms, 1000..3600000, default 30000 (before start
 *                        only): the longest any channel may make no progress
 *                        on a read or a write, or wait for a send slot or an
 *                        acknowledgement, before the migration fails naming
 *                        the channel and what it waited for; TCP channels
 *                        also get keepalive and TCP_USER_TIMEOUT from it.
 *                        The source says KEEPALIVE on the control channel
 *                        after io-timeout / 3 of its own without a frame,
 *                        and the destination fails once the source said
 *                        nothing there for io-timeout of its own: set the
 *                        same value on both sides.
 *   postcopy-recover-timeout  ms, 0..31536000000, default 0 = none; live:
 *                        how long a side paused in postcopy (its connection
 *                        broke) waits for tern_postcopy_recover() /
 *                        tern_postcopy_resume() to succeed before it gives
 *                        up. The destination then fails saying its guest
 *                        cannot go on and how many pages it lacks; 0 waits
 *                        for the operator as long as it takes, as QEMU does.
 *   rdma-pin-limit       bytes, 4 MiB..1 PiB, default 1 GiB (before start
 *                        only; source side, rdma: only): with rdma-pin-all
 *                        off, the most guest RAM registered (pinned) at once
 *                        on each side, shared by the channels; chunks of
 *                        1 MiB are registered as they are first sent and the
 *                        least recently used are released beyond it
 * Capabilities (booleans, before start only):
 *   verify-ram           digest all RAM on both sides after the last page,
 *                        fail on mismatch; default off. Each side keeps
 *                        the digest up to date on a thread of its own while
 *                        the migration runs (it trusts the dirty log from
 *                        the moment a region is re-armed, and on the
 *                        destination only what lands through the worker
 *                        channels changes RAM), so the pause pays only for
 *                        what the last rounds wrote
 *   auto-converge        when a round does not shrink what remains, throttle
 *                        the vCPUs through tern_vmm_ops.throttle:
 *                        cpu-throttle-initial, then + cpu-throttle-increment
 *                        per such round, up to max-cpu-throttle
 *   pause-before-switchover  with the guest paused for switchover, wait in
 *                        `pre-switchover` until tern_continue() (or a cancel)
 *   rdma-pin-all         rdma: only, source side (the destination follows):
 *                        register all guest RAM on both sides at setup
 *                        (the cost shows in setup_ms; every page pinned for
 *                        the whole migration, RLIMIT_MEMLOCK permitting);
 *                        off (default): register in chunks as pages are
 *                        first sent, up to rdma-pin-limit
 *   zero-copy-send       tcp: only, source side (the destination sees no
 *                        difference): raw pages (codec none) leave guest
 *                        RAM with MSG_ZEROCOPY, without a copy into socket
 *                        buffers; headers and encoded payloads are still
 *                        copied. tern_migrate() refuses it over unix: (no
 *                        SO_ZEROCOPY for Unix sockets) and rdma: (not
 *                        applicable: no copy there already), and with
 *                        multifd-compression zlib, zstd or xbzrle (every
 *                        page encoded: nothing would go zero-copy); none
 *                        and auto are fine. A kernel that refuses
 *                        SO_ZEROCOPY fails the migration in setup, naming
 *                        it. Each worker channel waits for the kernel to
 *                        release its pages before each round's SYNC, so
 *                        no page is in flight once the migration ended.
 *                        Loopback and veth deliver locally, where the
 *                        kernel copies anyway: see zero_copy_copied.
 *
 * downtime-limit and max-bandwidth changed during a migration take effect
 * within one rate window (100 ms): a changed downtime-limit ends the round
 * being sent so that the switchover rule is applied again at once.
 *
 * tern_param_set() refuses unknown names and out-of-range values with a
 * message that names the parameter and its range; it refuses the named
 * parameters (multifd-compression) with a message listing their values.
 * Thread-safe.
 */
TERN_EXPORT int tern_param_set(struct tern_session *s, const char *name, uint64_t value,
			       struct tern_error *err);
TERN_EXPORT int tern_param_get(struct tern_session *s, const char *name, uint64_t *ret_value,
			       struct tern_error *err);
/**
 * tern_param_set_str() - set a parameter from text: a name for
 * multifd-compression ("zstd"), a decimal number for the others. Thread-safe.
 * Return: 0, -ENOENT (unknown parameter), -EINVAL (unknown value, not a
 * number), -ERANGE, -EBUSY (not while migrating), -EPROTONOSUPPORT (a codec
 * this build lacks).
 */
TERN_EXPORT int tern_param_set_str(struct tern_session *s, const char *name, const char *value,
				   struct tern_error *err);
/**
 * tern_param_get_str() - a parameter as text into @buf (@len bytes, NUL
 * included): the name for multifd-compression, decimal for the others.
 * Return: 0, -ENOENT, or -ENOSPC when @len is too small. Thread-safe.
 */
TERN_EXPORT int tern_param_get_str(struct tern_session *s, const char *name, char *buf, size_t len,
				   struct tern_error *err);
TERN_EXPORT int tern_cap_set(struct tern_session *s, const char *name, bool on,
			     struct tern_error *err);
TERN_EXPORT int tern_cap_get(struct tern_session *s, const char *name, bool *ret_on,
			     struct tern_error *err);

/**
 * tern_ram_register() - add a RAM block before the migration starts.
 * @name: unique, 1..255 bytes; the destination must register the same
 *	names and sizes in the same order.
 * @host: page-aligned; @size: a non-zero multiple of the page size.
 *
 * On the destination the memory must read as zero when tern_incoming() is
 * called (fresh anonymous memory): zero pages are not written there, and the
 * library advises transparent huge pages on it so that landing pages do not
 * pay a fault per 4 KiB.
 *
 * @ret_block: the block's handle, valid until tern_session_free() (not
 *	after it, nor during it): the VMM stops every thread that may still
 *	use it before it frees the session.
 */
TERN_EXPORT int tern_ram_register(struct tern_session *s, const char *name, void *host,
				  uint64_t size, struct tern_ram_block **ret_block,
				  struct tern_error *err);

/**
 * tern_ram_mark_dirty() - the VMM wrote [@offset, @offset + @len) itself
 * (device DMA, emulation): send those pages again. Thread-safe and lock-free;
 * call it after the write, from any thread, at any time between
 * tern_ram_register() and tern_session_free() (whether a migration runs or
 * not). A thread that calls it must have stopped before tern_session_free()
 * begins: debug builds abort with a message on a call during or after it.
 *
 * Return: 0, -ERANGE when outside the block, or -ESTALE (release builds)
 * when the block's session was freed.
 */
TERN_EXPORT int tern_ram_mark_dirty(struct tern_ram_block *b, uint64_t offset, uint64_t len);

TERN_EXPORT const char *tern_ram_block_name(const struct tern_ram_block *b);
TERN_EXPORT uint64_t tern_ram_block_size(const struct tern_ram_block *b);

/**
 * struct tern_dirty_source_ops - a dirty-log provider (KVM memslots, or the
 * VMM's own tracking). All hooks run on the migration thread.
 * @start: begin logging; every page counts as dirty for the first round
 *	anyway, so bits already set are harmless.
 * @sync: fetch what was written since the last fetch and hand it over with
 *	tern_dirty_report().
 * @clear: optional. For logs that keep pages unprotected until told (KVM
 *	manual protect): re-arm logging for pages [@first_page, +@npages) of @b.
 *	The library calls it once per chunk of 1 << clear-bitmap-shift pages that
 *	sync reported dirty, right before it reads the first page of the chunk,
 *	so that a write after the clear is caught by the next sync.
 * @stop: end logging; called once after a successful start, whatever the
 *	outcome of the migration.
 */
struct tern_dirty_source_ops {
	const char *name;
	int (*start)(void *opaque, struct tern_error *err);
	int (*sync)(void *opaque, struct tern_error *err);
	int (*clear)(void *opaque, struct tern_ram_block *b, uint64_t first_page, uint64_t npages,
		     struct tern_error *err);
	void (*stop)(void *opaque);
};

/** tern_dirty_source_add() - plug a provider in before the migration starts. */
TERN_EXPORT int tern_dirty_source_add(struct tern_session *s,
				      const struct tern_dirty_source_ops *ops, void *opaque,
				      struct tern_error *err);

/**
 * tern_dirty_report() - from a provider's sync: pages first_page + i for every
 * bit i set in @bitmap (64 pages per word, bit 0 of word 0 first) were
 * written. Only from the provider's sync hook, on the migration thread.
 * Return: 0, -ERANGE when the range leaves the block, -EINVAL outside a
 * sync, -ESTALE (release builds; debug builds abort) when the block's
 * session was freed.
 */
TERN_EXPORT int tern_dirty_report(struct tern_ram_block *b, uint64_t first_page,
				  const uint64_t *bitmap, uint64_t npages);

/**
 * struct tern_section_ops - device state saved at switchover.
 * @save: source, guest paused: write the state with tern_section_put*().
 * @load: destination: read it back with tern_section_get*(); @version is the
 *	one the source saved (between the registered min_version and version).
 *	Every byte must be consumed, or the load fails.
 * @size: optional: about how many bytes @save would write now. Called on
 *	the migration thread while the guest runs, once per round, so that the
 *	switchover decision counts the device state in the downtime.
 */
struct tern_section_ops {
	int (*save)(void *opaque, struct tern_section_writer *w, struct tern_error *err);
	int (*load)(void *opaque, struct tern_section_reader *r, uint32_t version,
		    struct tern_error *err);
	size_t (*size)(void *opaque);
};

/**
 * tern_section_register() - add a device section, identified by
 * (@name, @instance). The destination loads versions min_version..version.
 */
TERN_EXPORT int tern_section_register(struct tern_session *s, const char *name, uint32_t instance,
				      uint32_t version, uint32_t min_version,
				      const struct tern_section_ops *ops, void *opaque,
				      struct tern_error *err);

TERN_EXPORT int tern_section_put(struct tern_section_writer *w, const void *data, size_t len);
TERN_EXPORT int tern_section_put_u32(struct tern_section_writer *w, uint32_t v);
TERN_EXPORT int tern_section_put_u64(struct tern_section_writer *w, uint64_t v);
/* Return -EPROTO (with nothing written to @data) when fewer bytes remain. */
TERN_EXPORT int tern_section_get(struct tern_section_reader *r, void *data, size_t len);
TERN_EXPORT int tern_section_get_u32(struct tern_section_reader *r, uint32_t *ret_v);
TERN_EXPORT int tern_section_get_u64(struct tern_section_reader *r, uint64_t *ret_v);
TERN_EXPORT size_t tern_section_remaining(const struct tern_section_reader *r);

/**
 * tern_migrate() - start an outgoing migration to @uri (tcp:HOST:PORT or
 * unix:PATH) and return; the migration thread runs it. Follow it with
 * tern_wait() or tern_stats_get().
 *
 * After a migration failed or was cancelled (tern_wait() returned it), the
 * same session may migrate again, as QEMU's `migrate` may: the status goes
 * none -> setup once more and the stats start from zero; RAM blocks,
 * sections, dirty-log providers, parameters and a management server stay.
 * Return: 0; -EBUSY while a migration runs, after one completed, or on a
 * session that ran tern_incoming(); -EINVAL for a bad @uri (the last
 * attempt's stats are then kept).
 */
TERN_EXPORT int tern_migrate(struct tern_session *s, const char *uri, struct tern_error *err);

/**
 * tern_incoming() - listen on @uri and return once it is bound; the load
 * thread accepts the source, loads RAM and sections, and calls resume on
 * success. tcp:HOST:0 binds an ephemeral port: read it back with
 * tern_incoming_uri().
 */
TERN_EXPORT int tern_incoming(struct tern_session *s, const char *uri, struct tern_error *err);
/* The URI as bound (destination) or as given to the last tern_migrate()
 * (source). Return: 0, -EINVAL before a start, -ENOSPC when @len is short. */
TERN_EXPORT int tern_incoming_uri(struct tern_session *s, char *buf, size_t len);

/**
 * tern_cancel() - thread-safe. Cancel at any state before completion: the
 * source guest keeps running (resumed if paused), the destination guest is
 * never started. Return: 0, or -EALREADY when the migration already ended.
 */
TERN_EXPORT int tern_cancel(struct tern_session *s);

/**
 * tern_continue() - thread-safe. With pause-before-switchover, leave
 * `pre-switchover` and finish the migration. Return: 0, or -EINVAL when the
 * capability is off, -EAGAIN when the migration is not (yet) in
 * pre-switchover (with a message saying which state it is in).
 */
TERN_EXPORT int tern_continue(struct tern_session *s, struct tern_error *err);

/**
 * tern_postcopy_start() - thread-safe; QMP's migrate-start-postcopy. On a
 * source in precopy (setup or active) with the postcopy-ram capability on
 * both sides: switch to postcopy at the next step of the migration thread
 * (the round being sent is cut short). The guest pauses, device state and
 * the list of pages still dirty go to the destination, and the guest runs
 * there at once; the destination fetches the pages it touches on demand,
 * on an urgent channel of their own, while the rest streams on the worker
 * channels. From then on tern_cancel() is refused: the source's copy of
 * the guest is no longer the one that runs.
 * -EINVAL (with @err) without postcopy-ram, on a destination, or once the
 * switchover began; -EALREADY when already asked.
 */
TERN_EXPORT int tern_postcopy_start(struct tern_session *s, struct tern_error *err);

/**
 * tern_postcopy_recover() - thread-safe; QMP's migrate-recover. On a
 * destination in postcopy-paused (its connection to the source broke in
 * postcopy): listen on @uri (port 0 picks one: tern_incoming_uri() says
 * which) for the same source's tern_postcopy_resume(). Connections that
 * are not that source resuming this migration (another session, a new
 * migration, junk) are refused and the wait goes on. When the source
 * comes, the destination tells it which pages it still lacks, asks again
 * for the pages its vCPUs wait on, and postcopy goes on. Asynchronous:
 * the status shows postcopy-recover, then postcopy-active (or
 * postcopy-paused again, with the reason logged, if it broke again).
 * -EINVAL (with @err) when not paused in postcopy, for a bad @uri, or when
 * it cannot listen there; -EALREADY when a recovery is already listening.
 */
TERN_EXPORT int tern_postcopy_recover(struct tern_session *s, const char *uri,
				      struct tern_error *err);

/**
 * tern_postcopy_resume() - thread-safe; QMP's `migrate` with resume. On a
 * source in postcopy-paused: reconnect to the destination's
 * tern_postcopy_recover() at @uri, learn which pages it still lacks, and
 * send them. Asynchronous: postcopy-recover, then postcopy-active; if the
 * peer refuses (not this migration's destination, not paused) or cannot be
 * reached, the source goes back to postcopy-paused with the reason logged,
 * and may be resumed again. -EINVAL (with @err) when not paused in
 * postcopy or for a bad @uri; -EALREADY when a resume is under way.
 */
TERN_EXPORT int tern_postcopy_resume(struct tern_session *s, const char *uri,
				     struct tern_error *err);

/**
 * tern_wait() - thread-safe. Wait up to @timeout_ms (-1: forever) for the
 * migration to end. Return: the status then (a final one unless timed out).
 */
TERN_EXPORT enum tern_status tern_wait(struct tern_session *s, int timeout_ms);

/* Slots of the per-codec arrays of struct tern_stats: the codec ids of the
 * wire (slot 0 is unused). */
enum tern_stats_codec {
	TERN_STATS_CODEC_INVALID = 0,
	TERN_STATS_CODEC_NONE,
	TERN_STATS_CODEC_ZLIB,
	TERN_STATS_CODEC_ZSTD,
	TERN_STATS_CODEC_XBZRLE,
	TERN_STATS_CODECS,
};

/*
 * Slots of the per-class CPU arrays of struct tern_stats: the library's
 * threads by what they do (slot 0 is unused). Each names itself so that
 * `top -H` and profilers show it:
 *   migration  the source's migration thread (tern-mig) and return path
 *              (tern-rp); the destination's load thread (tern-load)
 *   send       the source's worker channels (tern-send/N)
 *   recv       the destination's worker channels (tern-recv/N)
 *   prefault   the destination's RAM_HINT prefault thread (tern-prefault)
 *   digest     verify-ram's RAM digest: its threads (tern-digest/N) and
 *              the migration / load thread's own share of the digest
 *   mgmt       the management server (tern-mgmt)
 *   other      the rest: the destination's lobby readers (tern-lobby)
 */
enum tern_cpu_class {
	TERN_CPU_INVALID = 0,
	TERN_CPU_MIGRATION,
	TERN_CPU_SEND,
	TERN_CPU_RECV,
	TERN_CPU_PREFAULT,
	TERN_CPU_DIGEST,
	TERN_CPU_MGMT,
	TERN_CPU_OTHER,
	TERN_CPU_CLASSES,
};

/** tern_cpu_class_name() - "migration", "send", ... ("invalid" when out of range). */
TERN_EXPORT const char *tern_cpu_class_name(enum tern_cpu_class c);

/**
 * struct tern_codec_stats - what went through one codec (source: encoded;
 * destination: decoded), normal pages only (zero pages never reach a codec).
 * @pages: normal pages.
 * @bytes_in: their size in RAM (pages x page size).
 * @bytes_out: the payload bytes they took on the wire.
 * @compression_rate: @bytes_in / @bytes_out (QEMU's compression rate;
 *	2.0 = half the bytes); 0 before any page.
 * @time_ms: time spent encoding (source) or decoding (destination).
 * @auto_packets: source, multifd-compression auto: packets this codec
 *	carried (the chooser's decisions and its probes).
 */
struct tern_codec_stats {
	uint64_t pages;
	uint64_t bytes_in;
	uint64_t bytes_out;
	double compression_rate;
	uint64_t time_ms;
	uint64_t auto_packets;
};

/**
 * struct tern_stats - a snapshot; fields are bytes, pages or milliseconds.
 * @expected_downtime_ms: remaining RAM over the measured bandwidth.
 * @downtime_ms: measured, source side: the whole pause, from the pause
 *	callback until COMMIT went out, plus the destination's resume callback
 *	(its RESUMED report); with verify-ram the digests' part included
 *	(@downtime_verify_us). The sum of the @downtime_*_us parts.
 * @ram_transferred: page data sent (normal pages x page size).
 * @ram_remaining: dirty RAM not yet sent, as of the last sync.
 * @wire_bytes: everything written to the worker and control channels.
 * @rounds: source: dirty-log syncs (the first sends all RAM; an idle guest
 *	takes three: the first, the one that finds nothing left, and the last
 *	with the guest paused). Destination: rounds received (RAM_SYNC).
 * @dirty_pages_rate: source: pages the guest newly dirtied per second of its
 *	run time, over the last closed window: whole dirty-log sync intervals
 *	adding up to at least 1 s of run time (so one round longer than 1 s is
 *	a window of its own). A page counts once per sync interval it was
 *	written in, whether or not it was still waiting to be sent; the first
 *	sync (every page dirty) and the bulk round after it are left out.
 *	Run time is wall time less the switchover's pause; an auto-converge
 *	throttle is not taken out (the rate is what the throttled guest
 *	dirties). 0 until the first window closes: see @dirty_rate_window_ms.
 * @dirty_rate_window_ms: source: the guest run time @dirty_pages_rate was
 *	measured over; 0: no window has closed yet, the rate is unknown.
 * @dirty_sync_us: time the last round's dirty-log sync took (every provider
 *	plus the VMM's own marks).
 * @dirty_clear_us: time the last finished round spent re-arming the
 *	providers' logs, chunk by chunk (KVM_CLEAR_DIRTY_LOG).
 * @throughput_bps: RAM bytes moved per second (pages sent, normal or zero),
 *	over the last rate window while active; over the whole run once ended.
 * @verify_ms: source: the digests' part of the downtime (as
 *	@downtime_verify_us); destination: what its digest took after the last
 *	page landed. 0 without verify-ram.
 * @verified: verify-ram was on and both digests matched.
 * @multifd_compression: the page-encoding method ("none", "zstd", "auto" ...).
 * @codec: per codec, indexed by enum tern_stats_codec.
 * @xbzrle_*: source, methods that use XBZRLE: the cache's size, pages found
 *	in it (hits) or not (misses, sent raw), pages whose delta did not pay
 *	(overflows, sent raw), bytes of deltas; @xbzrle_cache_hit_rate =
 *	hits / (hits + misses); @xbzrle_encoding_rate = page bytes / payload
 *	bytes of the XBZRLE packets.
 * @auto_reason: source, auto: why the last choice was made, e.g.
 *	"zstd: 3.1x ratio, link-bound at 360 MB/s of RAM (link 117 MB/s)".
 * @round_bytes: source: RAM the current round has to send (as of its sync).
 * @round_sent_bytes: source: of those, how much was queued to the channels
 *	so far (so round_sent_bytes * 100 / round_bytes is the round's progress).
 * @cpu_throttle_percent: source, auto-converge: the throttle asked of the
 *	VMM now (0 once the migration ended).
 * @expected_*_us: source: the parts of @expected_downtime_ms, as of the
 *	last round: the final dirty-log sync (the last round's sync time), the
 *	pending RAM over the measured rate, the device sections (their
 *	size hooks' bytes over the rate, plus one control-channel round trip),
 *	and the final handshake (two round trips: COMPLETE -> COMMIT and the
 *	destination's RESUMED). The round trip is the HELLO handshake's. The
 *	pause and resume callbacks cannot be timed before they run without
 *	stopping the guest: they appear in the measured parts only. The rate is
 *	the least of the rate windows', the channels' TCP delivery rate and the
 *	rate measured end to end between acknowledged rounds.
 * @switchover_bandwidth_bps, @switchover_rate: source: the wire rate the
 *	last estimate priced the switchover's RAM at, and why that one:
 *	"declared" (avail-switchover-bandwidth), "learned" (max-bandwidth holds
 *	the rounds back; 3/4 of what the rounds' unthrottled tails delivered),
 *	"link" (the tails were no faster than the limit: the path is the limit,
 *	the rounds' rate), "max-bandwidth" (held back, nothing learned yet: the
 *	rounds' rate), "measured" (the rounds' rate, nothing holds them back),
 *	"none" (no estimate yet).
 * @downtime_*_us: source, once completed: the parts of @downtime_ms as
 *	measured: pause (the pause callback), wait (in pre-switchover until
 *	continue), sync (the final dirty-log sync), ram (the last pages, until
 *	the destination had them all), device (saving sections on the source
 *	and loading them on the destination), verify (verify-ram: LOADED until
 *	the destination's COMPLETE with its digest: a round trip and both
 *	sides' digests of what changed since their background hashing; 0
 *	without), resume (COMMIT -- without verify-ram, after the COMPLETE
 *	round trip -- and the destination's resume callback). They add up to
 *	the downtime.
 * @rdma_*: this side's channels, rdma: only (0 on tcp: and unix:): guest RAM
 *	registered now (@rdma_pinned_bytes; 0 again once the channels ended)
 *	and at most (@rdma_pinned_peak), time spent registering it
 *	(@rdma_reg_us: with rdma-pin-all all of it falls in @setup_ms),
 *	registrations made (@rdma_chunks_registered: 1 MiB chunks, or one per
 *	block and channel with rdma-pin-all), page bytes written by RDMA WRITE
 *	straight into the destination's RAM (@rdma_placed_bytes) and encoded
 *	payload bytes that went through the staging ring (@rdma_staged_bytes).
 * @cpu_user_us, @cpu_sys_us: this side's CPU that the migration cost, per
 *	thread class (indexed by enum tern_cpu_class), user and system time
 *	(getrusage(RUSAGE_THREAD) of each thread), from tern_migrate() /
 *	tern_incoming() to the final status. A thread adds its time when it
 *	ends, and every thread of the migration has ended when the final
 *	status is published, so the figures are complete once tern_wait()
 *	returned it; while the migration runs they hold only the threads that
 *	ended (and the management server's time so far). The calls into the
 *	library on the VMM's own threads (tern_migrate(), tern_stats_get() ...)
 *	and the VMM's callbacks on its threads are not counted; the callbacks
 *	made on the migration / load thread are.
 * @cpu_total_user_us, @cpu_total_sys_us: the sums over the classes.
 * @zero_copy_*: source, zero-copy-send: page sends handed to the kernel
 *	without a copy (@zero_copy_sends: sendmsg() calls, about one per
 *	packet of raw pages; @zero_copy_bytes: their bytes), of those the ones
 *	the kernel reported it copied after all (@zero_copy_copied: loopback
 *	and veth deliver locally and do; the kernel merges consecutive
 *	reports, so this is exact per report, not per send), and packets
 *	whose pages went by copy because the kernel refused a zero-copy send
 *	(@zero_copy_fallbacks: ENOBUFS, past net.core.optmem_max or
 *	RLIMIT_MEMLOCK without CAP_IPC_LOCK; the migration goes on).
 */
struct tern_stats {
	enum tern_status status;
	bool is_source;
	bool verified;
	uint32_t channels;
	uint32_t page_size;
	uint64_t setup_ms;
	uint64_t total_ms;
	uint64_t downtime_ms;
	uint64_t expected_downtime_ms;
	uint64_t verify_ms;
	uint64_t ram_total;
	uint64_t ram_transferred;
	uint64_t ram_remaining;
	uint64_t normal_pages;
	uint64_t zero_pages;
	uint64_t wire_bytes;
	uint64_t channel_wire_bytes[TERN_MAX_CHANNELS];
	uint64_t rounds;
	uint64_t dirty_pages_rate;
	uint64_t dirty_sync_us;
	uint64_t dirty_clear_us;
	uint64_t throughput_bps;
	uint64_t bandwidth_bps;
	char error[256];
	char multifd_compression[16];
	struct tern_codec_stats codec[TERN_STATS_CODECS];
	uint64_t xbzrle_cache_size;
	uint64_t xbzrle_cache_hits;
	uint64_t xbzrle_cache_misses;
	uint64_t xbzrle_overflows;
	uint64_t xbzrle_bytes;
	double xbzrle_cache_hit_rate;
	double xbzrle_encoding_rate;
	char auto_reason[128];
	uint64_t round_bytes;
	uint64_t round_sent_bytes;
	uint32_t cpu_throttle_percent;
	uint64_t expected_sync_us;
	uint64_t expected_ram_us;
	uint64_t expected_device_us;
	uint64_t expected_resume_us;
	uint64_t downtime_pause_us;
	uint64_t downtime_wait_us;
	uint64_t downtime_sync_us;
	uint64_t downtime_ram_us;
	uint64_t downtime_device_us;
	uint64_t downtime_resume_us;
	uint64_t dirty_rate_window_ms;
	uint64_t rdma_pinned_bytes;
	uint64_t rdma_pinned_peak;
	uint64_t rdma_reg_us;
	uint64_t rdma_chunks_registered;
	uint64_t rdma_placed_bytes;
	uint64_t rdma_staged_bytes;
	uint64_t cpu_user_us[TERN_CPU_CLASSES];
	uint64_t cpu_sys_us[TERN_CPU_CLASSES];
	uint64_t cpu_total_user_us;
	uint64_t cpu_total_sys_us;
	uint64_t zero_copy_sends;
	uint64_t zero_copy_bytes;
	uint64_t zero_copy_copied;
	uint64_t zero_copy_fallbacks;
	uint64_t downtime_verify_us;
	uint64_t switchover_bandwidth_bps;
	char switchover_rate[16];
	/* postcopy (0 before it starts): pages the destination lacked at the
	 * switch and lacks still; faults read on the destination, pages it
	 * requested, and their fault-to-placed latency; on the source, pages
	 * sent on the urgent channel and requests it refused as malformed;
	 * bytes on the worker channels since the switch, and the time in
	 * postcopy (the guest ran on the destination meanwhile) */
	bool postcopy; /* the migration switched to postcopy */
	uint64_t postcopy_missing_pages;
	uint64_t postcopy_remaining_pages;
	uint64_t postcopy_faults;
	uint64_t postcopy_requests;
	uint64_t postcopy_latency_p50_us;
	uint64_t postcopy_latency_p99_us;
	uint64_t postcopy_latency_max_us;
	uint64_t postcopy_urgent_pages;
	uint64_t postcopy_bad_requests;
	uint64_t postcopy_bytes;
	uint64_t postcopy_ms;
	/* postcopy-paused: how long (all pauses together, the current one
	 * included), how many times, and how many recoveries went through */
	uint64_t postcopy_paused_ms;
	uint64_t postcopy_pauses;
	uint64_t postcopy_recoveries;
};

/** tern_stats_get() - thread-safe snapshot. */
TERN_EXPORT int tern_stats_get(struct tern_session *s, struct tern_stats *ret_stats);

/**
 * struct tern_round_info - a source's round, as its dirty-log sync left it.
 * @round: 1 for the bulk round, then one more per sync.
 * @dirty_pages: pages this sync found newly dirty.
 * The others are tern_stats' figures of the moment, by the same names
 * (@ram_remaining: bytes this sync left to send).
 */
struct tern_round_info {
	uint64_t round;
	uint64_t dirty_pages;
	uint64_t dirty_pages_rate;
	uint64_t dirty_sync_us;
	uint64_t ram_remaining;
	uint64_t bandwidth_bps;
	uint64_t expected_downtime_ms;
	uint32_t cpu_throttle_percent;
};

#define TERN_MAX_OBSERVERS 8

/**
 * struct tern_observer_ops - a subscriber to a session's events (the
 * management server is one; a VMM may add its own). Every hook is optional.
 * @state: a transition @from -> @to, from the thread that made it.
 * @round: source: a round's dirty-log sync completed (migration thread).
 * @closing: tern_session_free() began; the subscription is gone already.
 *	Stop whatever uses the session before returning (called once, from
 *	the thread that frees the session).
 *
 * @state and @round run with the session's observer lock held: they must
 * not block (queue the event and wake a thread of your own) and must not
 * call back into the session. Once tern_observer_remove() returned, no hook
 * of that subscription runs.
 */
struct tern_observer_ops {
	void (*state)(void *opaque, enum tern_status from, enum tern_status to);
	void (*round)(void *opaque, const struct tern_round_info *info);
	void (*closing)(void *opaque);
};

/**
 * tern_observer_add() - subscribe @ops with @opaque (copied by reference:
 * @ops must outlive the subscription). Thread-safe.
 * Return: 0; -EEXIST for the same pair twice; -ENOSPC past
 * TERN_MAX_OBSERVERS.
 */
TERN_EXPORT int tern_observer_add(struct tern_session *s, const struct tern_observer_ops *ops,
				  void *opaque, struct tern_error *err);

/**
 * tern_observer_remove() - end the subscription of @ops with @opaque.
 * Thread-safe; not from inside a hook. Return: 0, or -ENOENT when there was
 * none (removed already, or the session is being freed).
 */
TERN_EXPORT int tern_observer_remove(struct tern_session *s, const struct tern_observer_ops *ops,
				     void *opaque);

/** tern_observer_find() - the @opaque of a subscription of @ops, or NULL. */
TERN_EXPORT void *tern_observer_find(struct tern_session *s, const struct tern_observer_ops *ops);

/**
 * tern_mgmt_listen() - serve the management protocol (docs/MGMT.md: JSON,
 * one request and one reply per line) on a Unix stream socket at @path.
 *
 * The socket is created with mode 0600, so only this user may connect. A
 * socket file nobody listens on is replaced; any other file at @path, or a
 * socket with a live server behind it, is refused. Several clients may be
 * connected at once. Requests run on the server's own thread, which calls
 * the public entry points on the owner's behalf (query, set, caps, cancel,
 * migrate, incoming): while a server runs, the owner thread must not call
 * tern_migrate() or tern_incoming() itself at the same time as a client may.
 * Subscribed clients receive state and round events; the migration thread
 * never waits for a slow client (its events are dropped and counted).
 *
 * Return: 0, -EBUSY (this session serves already), -EEXIST (@path is not a
 * socket), -EADDRINUSE (a server listens at @path), -ENAMETOOLONG, or the
 * errno of a failed socket call.
 */
TERN_EXPORT int tern_mgmt_listen(struct tern_session *s, const char *path, struct tern_error *err);

/**
 * tern_mgmt_close() - stop the management server: disconnect every client,
 * join the server thread, remove the socket file. No-op when none runs.
 * tern_session_free() calls it. Call it from the owner thread.
 */
TERN_EXPORT void tern_mgmt_close(struct tern_session *s);

#ifdef __cplusplus
}
#endif

#endif /* TERN_TERN_H */
