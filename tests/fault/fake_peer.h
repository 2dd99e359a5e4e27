/* SPDX-License-Identifier: MIT */
/*
 * Fake peers that speak tern's protocol by hand, with the library's own
 * encoders, so that a test can put any byte on the wire at any point:
 *
 *   fake source (fsrc_*): dials a real destination session, sends the
 *     control stream header and HELLO (or anything else), reads the return
 *     path, opens worker channels and writes packets and control frames.
 *   fake destination (fdst_*): listens for a real source session and plays
 *     one scenario on its own thread (answer nothing, answer ERROR, or
 *     close everything in the middle of round 1).
 *
 * Wire formats: core/control.c (frames), core/hello.c (HELLO),
 * core/section.c (SECTION_FULL), multifd/multifd.h (worker channels).
 *
 * Functions return 0 or a negative errno with @err filled; nothing here
 * asserts, so the fake destination's thread may use all of it.
 */
#ifndef TERN_FAKE_PEER_H
#define TERN_FAKE_PEER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core_priv.h"
#include "multifd/multifd.h"

#define FP_MAX_CHANNELS 8
/* fsrc_read_error() reads at most this many other frames before ERROR. */
#define FP_MAX_SKIPPED_FRAMES 64
/* Every read of a fake peer gives up after this long (SO_RCVTIMEO). */
#define FP_RECV_TIMEOUT_MS 20000

struct fp_block {
	const char *name;
	uint64_t size;
};

/*
 * fp_dial() - connect to "tcp:HOST:PORT" or "unix:PATH" with a plain socket
 * (so that the caller keeps the fd for a half-close) and wrap it in a
 * struct tern_conn. *@ret_fd stays valid until the conn is closed.
 */
int fp_dial(const char *uri, struct tern_conn **ret_conn, int *ret_fd, struct tern_error *err);

/* HELLO exactly as core/hello.c lays it out, from explicit fields (@codec:
 * the page-encoding method; both levels 1). */
int fp_hello_encode(struct buf *b, const uint8_t uuid[16], uint32_t page_size, uint32_t nchannels,
		    uint32_t codec, uint64_t caps, const struct fp_block *blocks, uint32_t nblocks);

/* ---- fake source ------------------------------------------------------------ */

struct fake_src {
	char uri[300];
	uint8_t uuid[16];
	uint32_t page_size;
	uint32_t nchannels;
	uint32_t method;    /* HELLO's page encoding; fsrc_init() sets none */
	uint64_t caps;	    /* HELLO's capability bits (CAP_BIT()); fsrc_init(): none */
	uint32_t urgent;    /* postcopy-ram: 1 more worker channel (the urgent one) */
	uint16_t pkt_flags; /* added to fsrc_send_pages()' headers (MF_FLAG_POSTCOPY) */
	struct tern_conn *ctl;
	int ctl_fd;
	struct tern_conn *chan[FP_MAX_CHANNELS];
	uint64_t seq[FP_MAX_CHANNELS];
	/* round in progress on each channel, for the packet headers */
	uint64_t round[FP_MAX_CHANNELS];
};

void fsrc_init(struct fake_src *fs, const char *uri, uint32_t nchannels);
int fsrc_connect(struct fake_src *fs, struct tern_error *err);
/* Raw stream header: any magic, any version. */
int fsrc_send_stream_hdr(struct fake_src *fs, uint32_t magic, uint32_t version);
/* A well-formed frame. */
int fsrc_send_frame(struct fake_src *fs, uint16_t type, const void *p, size_t len);
/* A frame header that claims @claimed_len, followed by @len bytes of @p. */
int fsrc_send_frame_raw(struct fake_src *fs, uint16_t type, uint16_t flags, uint32_t claimed_len,
			const void *p, size_t len);
int fsrc_send_hello(struct fake_src *fs, const struct fp_block *blocks, uint32_t nblocks);
int fsrc_recv_rp_hdr(struct fake_src *fs, struct tern_error *err);
/* Read the next return-path frame, which must be HELLO_ACK. */
int fsrc_expect_ack(struct fake_src *fs, struct tern_error *err);
/*
 * fsrc_read_error() - read return-path frames, skipping the others, until
 * ERROR; decode it into @peer_err as "destination: <reason>". The read
 * error, or -EPROTO after FP_MAX_SKIPPED_FRAMES frames without one.
 */
int fsrc_read_error(struct fake_src *fs, struct tern_error *peer_err, struct tern_error *err);
/* Stream header, HELLO, the return path's header and HELLO_ACK. */
int fsrc_handshake(struct fake_src *fs, const struct fp_block *blocks, uint32_t nblocks,
		   struct tern_error *err);
/* Connect worker channel @i and send its hello with @uuid. */
int fsrc_open_channel(struct fake_src *fs, uint32_t i, const uint8_t uuid[16],
		      struct tern_error *err);
/* Every channel, with the session's uuid. */
int fsrc_open_channels(struct fake_src *fs, struct tern_error *err);
/* A header exactly as given (seq and round not filled in). */
int fsrc_send_pkt_hdr(struct fake_src *fs, uint32_t chan, const struct mf_packet_hdr *h);
/*
 * fsrc_send_pages() - one well-formed packet on @chan: @nnormal pages at
 * @offsets with @payload (nnormal x page size), then @nzero zero pages at
 * offsets[nnormal..]. Takes the channel's seq and round.
 */
int fsrc_send_pages(struct fake_src *fs, uint32_t chan, uint32_t block, const uint64_t *offsets,
		    uint32_t nnormal, uint32_t nzero, const void *payload);
/*
 * fsrc_send_encoded() - one packet of @nnormal pages at @offsets whose
 * payload is @payload_len bytes of codec @codec, exactly as given (header
 * payload_len included). Takes the channel's seq and round.
 */
int fsrc_send_encoded(struct fake_src *fs, uint32_t chan, uint32_t block, const uint64_t *offsets,
		      uint32_t nnormal, uint32_t codec, const void *payload, uint32_t payload_len);
/* SYNC (| LAST) for the channel's round; then the channel is in the next round. */
int fsrc_send_sync(struct fake_src *fs, uint32_t chan, bool last);
int fsrc_ram_sync(struct fake_src *fs, uint64_t round);
int fsrc_section(struct fake_src *fs, uint32_t id, const char *name, uint32_t instance,
		 uint32_t version, const void *payload, uint32_t plen);
/* Close one worker channel (both directions). */
void fsrc_close_channel(struct fake_src *fs, uint32_t i);
/* Half-close the control channel: the destination reads EOF, we can still read. */
void fsrc_shutdown_ctl_write(struct fake_src *fs);
void fsrc_close_ctl(struct fake_src *fs);
void fsrc_close(struct fake_src *fs);

/* ---- fake destination ------------------------------------------------------- */

enum fdst_mode {
	FDST_INVALID = 0,
	FDST_HANG,	     /* read HELLO, then answer nothing until stopped */
	FDST_REPLY_ERROR,    /* read HELLO, answer ERROR */
	FDST_CLOSE_IN_ROUND, /* HELLO_ACK, join channels, read some pages, close all */
	FDST_MODE_MAX,
};

/* FDST_CLOSE_IN_ROUND: bytes read from each channel before closing */
#define FDST_READ_PER_CHANNEL (1u << 20)
#define FDST_ERROR_MSG "fake destination: this host is draining, no migrations"

struct fake_dst {
	/* immutable after fdst_start */
	enum fdst_mode mode;
	uint64_t read_per_channel;
	struct tern_listener *l;
	char uri[300];
	pthread_t thread;
	bool thread_started;
	/* protected by ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool hello_seen;
	bool closed; /* FDST_CLOSE_IN_ROUND: everything closed */
	uint32_t nchannels;
	uint64_t bytes_read;
	int ret;
	struct tern_error err;
	struct tern_conn *ctl;
	struct tern_conn *chan[TERN_MAX_CHANNELS];
};

/* Listen on @listen_uri ("tcp:127.0.0.1:0", "unix:PATH") and run @mode. */
int fdst_start(struct fake_dst *d, const char *listen_uri, enum fdst_mode mode,
	       struct tern_error *err);
/* Wait until HELLO arrived (or closed, for the other flag); false on timeout. */
bool fdst_wait_hello(struct fake_dst *d, int timeout_ms);
bool fdst_wait_closed(struct fake_dst *d, int timeout_ms);
/* Stop the scenario, join its thread, close everything. Returns its result. */
int fdst_stop(struct fake_dst *d, struct tern_error *err);

#endif /* TERN_FAKE_PEER_H */
