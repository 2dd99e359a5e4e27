/* SPDX-License-Identifier: MIT */
/*
 * Bad input for a real destination: a fake source (fake_peer.c) dials a
 * tern_incoming() session and breaks one thing. Each case asserts that
 *
 *   - the destination ends `failed`, with a message naming the problem;
 *   - the fake source reads an ERROR frame on the return path carrying the
 *     very same reason (when the connection still allows it);
 *   - the destination's resume callback was never called;
 *   - nothing was written outside guest RAM (each block sits between
 *     PROT_NONE guard pages: a stray write kills the case), and where the
 *     bad packet carried pages, nothing was written at all;
 *   - tern_session_free() leaves nothing behind (ASan + LSan in CI).
 *
 * The destination has one block "ram0" of 4 MiB and one section "dev"
 * instance 0 that loads versions 2..2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake_peer.h"
#include "fault_util.h"

#define RAM_SIZE (4u << 20)

static const struct ram_spec dst_ram[] = {{"ram0", RAM_SIZE}};
static const struct sec_spec dst_secs[] = {{"dev", 0, 2, 2, false}};
static const struct fp_block layout[] = {{"ram0", RAM_SIZE}};

struct dcase {
	struct peer dst;
	struct fake_src fs;
	struct tern_error peer_err; /* the ERROR the fake source read */
	bool got_error;
	/* pages the valid round sent: checked after the failure */
	uint8_t *sent;
	uint64_t sent_off[FP_MAX_CHANNELS][3];
	uint32_t sent_normal;
};

static void dcase_start(struct dcase *c, bool use_unix, uint32_t nchannels)
{
	char uri[300];

	memset(c, 0, sizeof(*c));
	peer_new(&c->dst, false, dst_ram, 1, dst_secs, 1);
	/* short, so that a case that waits for a join window is quick */
	peer_param(&c->dst, "handshake-timeout", 1000);
	if (use_unix)
		unix_uri(uri, sizeof(uri));
	else
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:0");
	peer_listen(&c->dst, uri);
	fsrc_init(&c->fs, c->dst.uri, nchannels);
}

/* The return path's stream header; the destination sends it on accept. */
static void read_rp_hdr(struct dcase *c)
{
	CHECK_ERR(fsrc_recv_rp_hdr(&c->fs, &err));
}

/* The destination's ERROR frame on the return path must name the problem. */
static void expect_error_frame(struct dcase *c, const char *needle)
{
	struct tern_error err = {0};

	if (fsrc_read_error(&c->fs, &c->peer_err, &err))
		fail_msg("no ERROR frame from the destination: %s", err.msg);
	fprintf(stderr, "[fake src] ERROR frame: %s\n", c->peer_err.msg);
	assert_str_contains(c->peer_err.msg, needle);
	c->got_error = true;
}

/*
 * The end of every case: the destination failed with @needle in its
 * message (the same one its ERROR frame carried), never started the guest,
 * and frees cleanly.
 */
static void dcase_finish(struct dcase *c, const char *needle)
{
	static const char prefix[] = "destination: ";
	struct tern_stats st;

	expect_final(&c->dst, TERN_STATUS_FAILED, needle);
	tern_stats_get(c->dst.s, &st);
	assert_false(st.is_source);
	if (c->got_error) {
		assert_true(!strncmp(c->peer_err.msg, prefix, sizeof(prefix) - 1));
		assert_string_equal(c->peer_err.msg + sizeof(prefix) - 1, st.error);
	}
	assert_uint_equal(probe_resumes(&c->dst.probe), 0);
	assert_uint_equal(probe_pauses(&c->dst.probe), 0);
	fsrc_close(&c->fs);
}

static void dcase_free(struct dcase *c)
{
	peer_free(&c->dst);
	free(c->sent);
	c->sent = NULL;
}

static void expect_ram_untouched(struct dcase *c)
{
	assert_true(ram_is_zero(c->dst.ram[0].host, c->dst.ram[0].size));
}

/* Handshake and every worker channel, all well-formed. */
static void connect_all(struct dcase *c)
{
	CHECK_ERR(fsrc_handshake(&c->fs, layout, 1, &err));
	CHECK_ERR(fsrc_open_channels(&c->fs, &err));
}

/*
 * A valid round 1: on each channel two normal pages and one zero page, then
 * SYNC; then RAM_SYNC 1 on the control channel.
 */
static void send_valid_round(struct dcase *c)
{
	uint32_t page = c->fs.page_size, i;

	c->sent = malloc(2 * (size_t)page * c->fs.nchannels);
	assert_non_null(c->sent);
	for (i = 0; i < c->fs.nchannels; i++) {
		uint8_t *payload = c->sent + 2 * (size_t)page * i;

		ram_fill_pattern(payload, 2 * (size_t)page, 100 + i);
		c->sent_off[i][0] = (uint64_t)(7 * i + 1) * page;
		c->sent_off[i][1] = RAM_SIZE - (uint64_t)(i + 1) * page; /* the last pages */
		c->sent_off[i][2] = (uint64_t)(7 * i + 3) * page;	 /* a zero page */
		CHECK(fsrc_send_pages(&c->fs, i, 0, c->sent_off[i], 2, 1, payload));
		CHECK(fsrc_send_sync(&c->fs, i, false));
	}
	c->sent_normal = 2;
	CHECK(fsrc_ram_sync(&c->fs, 1));
}

/* After the failure: the valid round's pages are in place, nothing else moved. */
static void expect_round_landed(struct dcase *c)
{
	const uint8_t *ram = c->dst.ram[0].host;
	uint32_t page = c->fs.page_size, i, j;
	uint64_t nonzero = 0, off;

	for (i = 0; i < c->fs.nchannels; i++)
		for (j = 0; j < c->sent_normal; j++)
			assert_memory_equal(ram + c->sent_off[i][j],
					    c->sent + (2 * (size_t)i + j) * page, page);
	for (off = 0; off < RAM_SIZE; off += page)
		nonzero += !ram_is_zero(ram + off, page);
	assert_uint_equal(nonzero, (uint64_t)c->sent_normal * c->fs.nchannels);
}

/*
 * A connection that never presented a stream header and a HELLO is no
 * source (issue 10): the destination closes it -- after an ERROR saying why
 * (@needle) when it sent our control magic, else with nothing -- and waits
 * on. A well-formed source is let in afterwards; its closing then ends the
 * case.
 */
static void expect_refused_still_listening(struct dcase *c, const char *needle)
{
	struct tern_stats st;
	uint8_t b;
	int r;

	if (needle) {
		read_rp_hdr(c);
		expect_error_frame(c, needle);
	} else if (c->fs.ctl) {
		r = conn_recv(c->fs.ctl, &b, 1);
		assert_true(r == -EPIPE || r == -ECONNRESET);
	}
	fsrc_close(&c->fs);
	tern_stats_get(c->dst.s, &st);
	assert_int_equal(st.status, TERN_STATUS_SETUP);
	fsrc_init(&c->fs, c->dst.uri, 1);
	connect_all(c);
	assert_true(peer_wait_status(&c->dst, TERN_STATUS_ACTIVE, FAULT_WAIT_MS));
	fsrc_close(&c->fs);
	expect_final(&c->dst, TERN_STATUS_FAILED, "closed the connection");
	assert_uint_equal(probe_resumes(&c->dst.probe), 0);
}

/* ---- 1, 2: the control stream header ---------------------------------------- */

static void test_bad_magic(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, 0xdeadbeef, CTL_VERSION));
	expect_refused_still_listening(&c, NULL);
	dcase_free(&c);
}

static void test_bad_version(void **state)
{
	struct dcase c;

	dcase_start(&c, true, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, CTL_MAGIC, CTL_VERSION + 41));
	expect_refused_still_listening(&c, "unknown protocol version 42 (we speak 1)");
	dcase_free(&c);
}

/* ---- 3: truncated HELLO ------------------------------------------------------- */

/* Send the stream header and the first half of a HELLO frame. */
static void send_half_hello(struct dcase *c)
{
	struct buf b;

	buf_init(&b);
	CHECK(fp_hello_encode(&b, c->fs.uuid, c->fs.page_size, 1, 1, 0, layout, 1));
	CHECK(fsrc_send_stream_hdr(&c->fs, CTL_MAGIC, CTL_VERSION));
	CHECK(fsrc_send_frame_raw(&c->fs, CTL_HELLO, 0, (uint32_t)b.len, b.data, b.len / 2));
	buf_fini(&b);
}

/* Half-close: the destination reads EOF mid-frame, we can still read its ERROR;
 * it was no source (no complete HELLO), so the destination waits on. */
static void test_truncated_hello_halfclose(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	send_half_hello(&c);
	fsrc_shutdown_ctl_write(&c.fs);
	expect_refused_still_listening(&c, "stream truncated inside a HELLO frame");
	dcase_free(&c);
}

/* Full close: no one to tell; the destination forgets it and waits on. */
static void test_truncated_hello_close(void **state)
{
	struct dcase c;

	dcase_start(&c, true, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	send_half_hello(&c);
	fsrc_close_ctl(&c.fs);
	expect_refused_still_listening(&c, NULL);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/* ---- 4: RAM layout mismatch -------------------------------------------------- */

static void layout_case(const struct fp_block *blocks, uint32_t n, const char *needle)
{
	struct dcase c;

	dcase_start(&c, false, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, CTL_MAGIC, CTL_VERSION));
	CHECK(fsrc_send_hello(&c.fs, blocks, n));
	read_rp_hdr(&c);
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

static void test_layout_size(void **state)
{
	static const struct fp_block b[] = {{"ram0", 2 * RAM_SIZE}};

	layout_case(b, 1,
		    "RAM layout mismatch: block 'ram0' has 8388608 bytes on the source, "
		    "4194304 here");
}

static void test_layout_name(void **state)
{
	static const struct fp_block b[] = {{"pc.ram", RAM_SIZE}};

	layout_case(b, 1, "RAM layout mismatch: block 0 is 'pc.ram' on the source, 'ram0' here");
}

static void test_layout_count(void **state)
{
	static const struct fp_block b[] = {{"ram0", RAM_SIZE}, {"vga.vram", 1 << 20}};

	layout_case(b, 2, "RAM layout mismatch: source has 2 blocks, destination 1");
}

/* ---- 5: a worker channel of another session --------------------------------- */

static void test_channel_foreign_uuid(void **state)
{
	struct dcase c;
	uint8_t other[16];
	char ours[37], theirs[37], needle[128];

	dcase_start(&c, false, 2);
	CHECK_ERR(fsrc_handshake(&c.fs, layout, 1, &err));
	memcpy(other, c.fs.uuid, 16);
	other[15] ^= 0x01;
	tern_uuid_format(c.fs.uuid, ours);
	tern_uuid_format(other, theirs);
	CHECK_ERR(fsrc_open_channel(&c.fs, 0, c.fs.uuid, &err));
	CHECK_ERR(fsrc_open_channel(&c.fs, 1, other, &err));
	snprintf(needle, sizeof(needle), "worker channel 1 belongs to session %s, not %s", theirs,
		 ours);
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/* ---- 6: page offsets -------------------------------------------------------- */

/*
 * One packet: a good page at offset 0, then the bad offset (a normal page or
 * a zero page). The packet is refused as a whole: not even the good page
 * may land.
 */
static void bad_offset_case(uint64_t off, bool zero_page, const char *needle)
{
	uint64_t offs[2] = {0, off};
	struct dcase c;
	uint8_t *pages;

	dcase_start(&c, false, 1);
	connect_all(&c);
	pages = malloc(2 * (size_t)c.fs.page_size);
	assert_non_null(pages);
	ram_fill_pattern(pages, 2 * (size_t)c.fs.page_size, 9);
	if (zero_page)
		CHECK(fsrc_send_pages(&c.fs, 0, 0, offs, 1, 1, pages));
	else
		CHECK(fsrc_send_pages(&c.fs, 0, 0, offs, 2, 0, pages));
	free(pages);
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

static void test_offset_outside(void **state)
{
	/* Right past the end: a write there would hit the guard page at once. */
	bad_offset_case(RAM_SIZE, false, "page offset 0x400000 outside its block of 4194304 bytes");
}

static void test_offset_far(void **state)
{
	/* Far away, on a zero page (which is never written unless touched). */
	bad_offset_case(1ull << 40, true,
			"page offset 0x10000000000 outside its block of 4194304 bytes");
}

static void test_offset_unaligned(void **state)
{
	char needle[128];
	uint64_t off = RAM_SIZE - (uint64_t)getpagesize() / 2;

	/* Inside the block, but a page there would run into the guard page. */
	snprintf(needle, sizeof(needle),
		 "page offset %#" PRIx64 " is not a multiple of the %d-byte page", off,
		 getpagesize());
	bad_offset_case(off, false, needle);
}

/* ---- 7: page counts ----------------------------------------------------------- */

static void bad_count_case(uint32_t normal, uint32_t zero, const char *needle)
{
	struct dcase c;
	struct mf_packet_hdr h;

	dcase_start(&c, true, 1);
	connect_all(&c);
	h = (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .seq = 0,
	    .round = 1,
	    .block = 0,
	    .normal = normal,
	    .zero = zero,
	    .codec = 1,
	    .payload_len = normal * c.fs.page_size,
	};
	CHECK(fsrc_send_pkt_hdr(&c.fs, 0, &h));
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

static void test_too_many_pages(void **state)
{
	bad_count_case(MF_MAX_PAGES + 1, 0, "page count 513 outside 1..512");
}

static void test_page_count_wraps(void **state)
{
	/* normal + zero wraps to 0 in 32 bits */
	bad_count_case(UINT32_MAX, 1, "page count 4294967296 outside 1..512");
}

/* ---- 8, 9: sections ----------------------------------------------------------- */

static void section_case(const char *name, uint32_t version, const char *needle)
{
	static const uint8_t payload[12] = {0, 0, 0, 2};
	struct dcase c;

	dcase_start(&c, false, 2);
	connect_all(&c);
	send_valid_round(&c);
	CHECK(fsrc_section(&c.fs, 0, name, 0, version, payload, sizeof(payload)));
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_round_landed(&c);
	dcase_free(&c);
}

static void test_unknown_section(void **state)
{
	section_case("nosuchdev", 1, "unknown section 'nosuchdev' instance 0");
}

static void test_section_version_high(void **state)
{
	section_case("dev", 3, "section 'dev' instance 0: version 3, this destination loads 2..2");
}

static void test_section_version_low(void **state)
{
	section_case("dev", 1, "section 'dev' instance 0: version 1, this destination loads 2..2");
}

/* ---- 10: connections closed mid-round ---------------------------------------- */

static void test_worker_closed_mid_payload(void **state)
{
	struct dcase c;
	struct mf_packet_hdr h;
	uint8_t *buf;
	uint32_t page;
	size_t hlen;
	int i;

	dcase_start(&c, false, 2);
	connect_all(&c);
	page = c.fs.page_size;
	/* Channel 1: a packet of 4 pages, of which only 2 arrive. */
	hlen = MF_HDR_SIZE + 4 * 8;
	buf = calloc(1, hlen + 2 * (size_t)page);
	assert_non_null(buf);
	h = (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .round = 1,
	    .normal = 4,
	    .codec = 1,
	    .payload_len = 4 * page,
	};
	mf_hdr_encode(buf, &h);
	for (i = 0; i < 4; i++)
		put_be64(buf + MF_HDR_SIZE + 8 * i, (uint64_t)(10 + i) * page);
	ram_fill_pattern(buf + hlen, 2 * (size_t)page, 5);
	CHECK(conn_send(c.fs.chan[1], buf, hlen + 2 * (size_t)page));
	free(buf);
	fsrc_close_channel(&c.fs, 1);
	expect_error_frame(&c, "closed the connection in packet 0 (pages)");
	dcase_finish(&c, "channel 1: ");
	dcase_free(&c);
}

static void test_ctl_closed_after_sync(void **state)
{
	struct tern_stats st;
	struct dcase c;

	dcase_start(&c, true, 2);
	connect_all(&c);
	send_valid_round(&c);
	fsrc_close_ctl(&c.fs);
	dcase_finish(&c, "control channel: ");
	expect_final(&c.dst, TERN_STATUS_FAILED, "closed the connection");
	/* Round 1 passed its barrier before the stream ended. */
	tern_stats_get(c.dst.s, &st);
	assert_uint_equal(st.rounds, 1);
	expect_round_landed(&c);
	dcase_free(&c);
}

/* ---- 11: frame lengths and types --------------------------------------------- */

static void test_frame_over_limit(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 2);
	connect_all(&c);
	CHECK(fsrc_send_frame_raw(&c.fs, CTL_RAM_SYNC, 0, 1u << 30, NULL, 0));
	expect_error_frame(&c, "RAM_SYNC frame of 1073741824 bytes, more than its limit of 8");
	dcase_finish(&c, "RAM_SYNC frame of 1073741824 bytes, more than its limit of 8");
	dcase_free(&c);
}

static void test_hello_over_limit(void **state)
{
	struct dcase c;

	dcase_start(&c, true, 1);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, CTL_MAGIC, CTL_VERSION));
	CHECK(fsrc_send_frame_raw(&c.fs, CTL_HELLO, 0, 0xffffffffu, NULL, 0));
	expect_refused_still_listening(
	    &c, "HELLO frame of 4294967295 bytes, more than its limit of 1048576");
	dcase_free(&c);
}

static void test_frame_unknown_type(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 1);
	connect_all(&c);
	CHECK(fsrc_send_frame_raw(&c.fs, 0x77, 0, 0, NULL, 0));
	expect_error_frame(&c, "control channel: unknown frame type 119");
	dcase_finish(&c, "unknown frame type 119");
	dcase_free(&c);
}

/* ---- 12: RAM_SYNC out of order ------------------------------------------------- */

static void test_ram_sync_out_of_order(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 2);
	connect_all(&c);
	CHECK(fsrc_ram_sync(&c.fs, 2));
	expect_error_frame(&c, "RAM_SYNC for round 2 after round 0");
	dcase_finish(&c, "RAM_SYNC for round 2 after round 0");
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/* ---- 13: page encodings ---------------------------------------------------------- */

/* Handshake with HELLO method @method, every channel open. */
static void connect_method(struct dcase *c, uint32_t method)
{
	c->fs.method = method;
	connect_all(c);
}

/* A HELLO method no build knows: refused before any channel is opened. */
static void test_hello_unknown_codec(void **state)
{
	struct dcase c;

	dcase_start(&c, false, 1);
	c.fs.method = 9;
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, CTL_MAGIC, CTL_VERSION));
	CHECK(fsrc_send_hello(&c.fs, layout, 1));
	read_rp_hdr(&c);
	expect_error_frame(&c, "HELLO: unknown page encoding 9");
	dcase_finish(&c, "HELLO: unknown page encoding 9");
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/* Method none, then a zstd packet: refused before its payload is read. */
static void test_codec_not_negotiated(void **state)
{
	static const char needle[] =
	    "channel 0 packet 0: codec zstd was not negotiated (multifd-compression none)";
	uint64_t off = 0;
	uint8_t payload[64] = {0x28, 0xb5, 0x2f, 0xfd};
	struct dcase c;

	dcase_start(&c, true, 1);
	connect_method(&c, TERN_CODEC_NONE);
	CHECK(fsrc_send_encoded(&c.fs, 0, 0, &off, 1, TERN_CODEC_ZSTD, payload, sizeof(payload)));
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/*
 * A compressed payload that is garbage: the decoder refuses it and the error
 * names channel, packet and codec. The decoder may have written part of the
 * pages (guest RAM, which the failed migration discards) but never outside
 * RAM: the pages are the last two of the block, before the guard page.
 */
static void corrupt_payload_case(uint32_t codec, const char *needle)
{
	uint64_t offs[2];
	uint8_t payload[300];
	struct dcase c;
	uint64_t rng = 0x1234567;
	size_t i;

	if (!codec_available((enum tern_codec_id)codec))
		skip();
	dcase_start(&c, false, 2);
	connect_method(&c, codec);
	offs[0] = RAM_SIZE - 2 * (uint64_t)c.fs.page_size;
	offs[1] = RAM_SIZE - (uint64_t)c.fs.page_size;
	for (i = 0; i < sizeof(payload); i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		payload[i] = (uint8_t)rng;
	}
	/* a valid frame magic for zstd, so that the decoder reads on */
	if (codec == TERN_CODEC_ZSTD)
		memcpy(payload, "\x28\xb5\x2f\xfd", 4);
	CHECK(fsrc_send_encoded(&c.fs, 1, 0, offs, 2, codec, payload, sizeof(payload)));
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	dcase_free(&c);
}

static void test_zstd_corrupt(void **state)
{
	corrupt_payload_case(TERN_CODEC_ZSTD, "channel 1 packet 0 (zstd): ");
}

static void test_zlib_corrupt(void **state)
{
	corrupt_payload_case(TERN_CODEC_ZLIB, "channel 1 packet 0 (zlib): ");
}

/* payload_len over the codec's bound: refused from the header alone. */
static void test_payload_over_bound(void **state)
{
	uint8_t b[MF_HDR_SIZE + 8];
	struct mf_packet_hdr h;
	struct dcase c;
	char needle[160];
	uint64_t max;

	if (!codec_available(TERN_CODEC_ZSTD))
		skip();
	dcase_start(&c, true, 1);
	connect_method(&c, TERN_CODEC_ZSTD);
	max = codec_payload_max(TERN_CODEC_ZSTD, c.fs.page_size, 1);
	h = (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .round = 1,
	    .normal = 1,
	    .codec = TERN_CODEC_ZSTD,
	    .payload_len = (uint32_t)max + 1,
	};
	/* header and offset only: the payload never comes, and must not be waited for */
	mf_hdr_encode(b, &h);
	put_be64(b + MF_HDR_SIZE, 0);
	CHECK(conn_send(c.fs.chan[0], b, sizeof(b)));
	snprintf(
	    needle, sizeof(needle),
	    "channel 0 packet 0 (zstd): payload of %u bytes for 1 pages, more than the %" PRIu64
	    " the codec may produce",
	    (uint32_t)max + 1, max);
	expect_error_frame(&c, needle);
	dcase_finish(&c, needle);
	expect_ram_untouched(&c);
	dcase_free(&c);
}

/*
 * An XBZRLE delta for the last page of the block whose run would end 8 bytes
 * past it: a write there would hit the guard page. Refused before anything
 * is written.
 */
static void test_xbzrle_past_page(void **state)
{
	uint8_t payload[3 + 3 + 1 + 10];
	uint32_t page, skip_bytes;
	uint64_t off;
	struct dcase c;

	dcase_start(&c, false, 1);
	connect_method(&c, TERN_CODEC_XBZRLE);
	page = c.fs.page_size;
	off = RAM_SIZE - (uint64_t)page;
	skip_bytes = page - 2; /* then 10 bytes: 8 past the page */
	payload[0] = 1;	       /* record kind: delta */
	put_be16(payload + 1, sizeof(payload) - 3);
	/* pair: skip (uleb128, 3 bytes for up to 2^21), count 10, bytes */
	payload[3] = (uint8_t)(0x80 | (skip_bytes & 0x7f));
	payload[4] = (uint8_t)(0x80 | ((skip_bytes >> 7) & 0x7f));
	payload[5] = (uint8_t)(skip_bytes >> 14);
	if (!payload[5]) {
		/* no redundant trailing zero group: two bytes do */
		payload[4] &= 0x7f;
		put_be16(payload + 1, sizeof(payload) - 4);
		payload[5] = 10;
		memset(payload + 6, 0xee, 10);
		CHECK(fsrc_send_encoded(&c.fs, 0, 0, &off, 1, TERN_CODEC_XBZRLE, payload,
					sizeof(payload) - 1));
	} else {
		payload[6] = 10;
		memset(payload + 7, 0xee, 10);
		CHECK(fsrc_send_encoded(&c.fs, 0, 0, &off, 1, TERN_CODEC_XBZRLE, payload,
					sizeof(payload)));
	}
	expect_error_frame(&c, "channel 0 packet 0 (xbzrle): ");
	assert_str_contains(c.peer_err.msg, "past the");
	dcase_finish(&c, "channel 0 packet 0 (xbzrle): ");
	expect_ram_untouched(&c);
	dcase_free(&c);
}

int main(int argc, char **argv)
{
	static const struct CMUnitTest tests[] = {
	    FAULT_CASE(test_bad_magic),
	    FAULT_CASE(test_bad_version),
	    FAULT_CASE(test_truncated_hello_halfclose),
	    FAULT_CASE(test_truncated_hello_close),
	    FAULT_CASE(test_layout_size),
	    FAULT_CASE(test_layout_name),
	    FAULT_CASE(test_layout_count),
	    FAULT_CASE(test_channel_foreign_uuid),
	    FAULT_CASE(test_offset_outside),
	    FAULT_CASE(test_offset_far),
	    FAULT_CASE(test_offset_unaligned),
	    FAULT_CASE(test_too_many_pages),
	    FAULT_CASE(test_page_count_wraps),
	    FAULT_CASE(test_unknown_section),
	    FAULT_CASE(test_section_version_high),
	    FAULT_CASE(test_section_version_low),
	    FAULT_CASE(test_worker_closed_mid_payload),
	    FAULT_CASE(test_ctl_closed_after_sync),
	    FAULT_CASE(test_frame_over_limit),
	    FAULT_CASE(test_hello_over_limit),
	    FAULT_CASE(test_frame_unknown_type),
	    FAULT_CASE(test_ram_sync_out_of_order),
	    FAULT_CASE(test_hello_unknown_codec),
	    FAULT_CASE(test_codec_not_negotiated),
	    FAULT_CASE(test_zstd_corrupt),
	    FAULT_CASE(test_zlib_corrupt),
	    FAULT_CASE(test_payload_over_bound),
	    FAULT_CASE(test_xbzrle_past_page),
	};

	return fault_main("fault_dest", tests, ARRAY_SIZE(tests), argc, argv);
}
