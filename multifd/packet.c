/* SPDX-License-Identifier: MIT */
/*
 * Worker-channel hello and packet headers: encoding, decoding and the
 * validation that runs before a single byte of a packet body is read. The
 * receiver trusts nothing: every count, index, length and offset is checked
 * against what the handshake fixed, and the first bad field fails the
 * migration with a message that names the channel, the packet and the field.
 */
#include "multifd.h"

const char *mf_method_name(uint32_t method)
{
	if (method == MF_METHOD_AUTO)
		return "auto";
	if (method > TERN_CODEC_INVALID && method < TERN_CODEC_MAX)
		return codec_name((enum tern_codec_id)method);
	return "invalid";
}

uint32_t mf_method_by_name(const char *name)
{
	if (!name)
		return 0;
	if (!strcmp(name, "auto"))
		return MF_METHOD_AUTO;
	return (uint32_t)codec_by_name(name);
}

uint32_t mf_method_codecs(uint32_t method)
{
	const uint32_t none = 1u << TERN_CODEC_NONE;

	if (method == MF_METHOD_AUTO)
		return none | 1u << TERN_CODEC_ZSTD | 1u << TERN_CODEC_XBZRLE;
	if (method > TERN_CODEC_INVALID && method < TERN_CODEC_MAX)
		return none | 1u << method;
	return 0;
}

bool mf_codec_allowed(uint32_t method, uint32_t codec)
{
	return codec < 32 && (mf_method_codecs(method) >> codec & 1);
}

int mf_method_check(uint32_t method, const char *who, struct tern_error *err)
{
	uint32_t set = mf_method_codecs(method), id;

	if (!set)
		return tern_error_set(err, -EPROTONOSUPPORT, "%s: unknown page encoding %u", who,
				      method);
	for (id = TERN_CODEC_NONE; id < TERN_CODEC_MAX; id++)
		if (set >> id & 1 && !codec_available((enum tern_codec_id)id))
			return tern_error_set(err, -EPROTONOSUPPORT,
					      "%s: %s needs the %s codec, which this build lacks",
					      who, mf_method_name(method),
					      codec_name((enum tern_codec_id)id));
	return 0;
}

uint64_t mf_method_payload_max(uint32_t method, uint32_t page_size, uint32_t n)
{
	uint32_t set = mf_method_codecs(method), id;
	uint64_t max = (uint64_t)page_size * n;

	for (id = TERN_CODEC_NONE + 1; id < TERN_CODEC_MAX; id++)
		if (set >> id & 1)
			max = MAX(max, codec_payload_max((enum tern_codec_id)id, page_size, n));
	return max;
}

void mf_hello_encode(uint8_t buf[MF_HELLO_SIZE], const uint8_t uuid[16], uint32_t index,
		     uint32_t nchannels)
{
	put_be32(buf, MF_HELLO_MAGIC);
	put_be32(buf + 4, MF_VERSION);
	memcpy(buf + 8, uuid, 16);
	put_be32(buf + 24, index);
	put_be32(buf + 28, nchannels);
}

int mf_hello_check(const uint8_t buf[MF_HELLO_SIZE], const struct mf_config *cfg,
		   uint32_t *ret_index, struct tern_error *err)
{
	uint32_t magic = get_be32(buf), version = get_be32(buf + 4);
	uint32_t index = get_be32(buf + 24), n = get_be32(buf + 28);
	char want[37], got[37];

	if (magic != MF_HELLO_MAGIC)
		return tern_error_set(err, -EPROTO, "worker channel hello: bad magic %#x", magic);
	if (version != MF_VERSION)
		return tern_error_set(err, -EPROTONOSUPPORT,
				      "worker channel hello: unknown version %u (we speak %u)",
				      version, MF_VERSION);
	if (memcmp(buf + 8, cfg->uuid, 16)) {
		tern_uuid_format(cfg->uuid, want);
		tern_uuid_format(buf + 8, got);
		return tern_error_set(err, -EPROTO,
				      "worker channel %u belongs to session %s, not %s", index, got,
				      want);
	}
	if (n != cfg->nchannels || index >= cfg->nchannels)
		return tern_error_set(err, -EPROTO,
				      "worker channel hello: index %u of %u channels, expected "
				      "one of %u",
				      index, n, cfg->nchannels);
	*ret_index = index;
	return 0;
}

void mf_hdr_encode(uint8_t buf[MF_HDR_SIZE], const struct mf_packet_hdr *h)
{
	put_be32(buf, h->magic);
	put_be16(buf + 4, h->version);
	put_be16(buf + 6, h->flags);
	put_be64(buf + 8, h->seq);
	put_be64(buf + 16, h->round);
	put_be32(buf + 24, h->block);
	put_be32(buf + 28, h->normal);
	put_be32(buf + 32, h->zero);
	put_be32(buf + 36, h->codec);
	put_be32(buf + 40, h->payload_len);
	put_be32(buf + 44, h->reserved);
}

void mf_hdr_decode(const uint8_t buf[MF_HDR_SIZE], struct mf_packet_hdr *h)
{
	h->magic = get_be32(buf);
	h->version = get_be16(buf + 4);
	h->flags = get_be16(buf + 6);
	h->seq = get_be64(buf + 8);
	h->round = get_be64(buf + 16);
	h->block = get_be32(buf + 24);
	h->normal = get_be32(buf + 28);
	h->zero = get_be32(buf + 32);
	h->codec = get_be32(buf + 36);
	h->payload_len = get_be32(buf + 40);
	h->reserved = get_be32(buf + 44);
}

int mf_hdr_check(const struct mf_packet_hdr *h, const struct mf_config *cfg, uint32_t chan,
		 uint64_t expect_seq, uint64_t round, struct tern_error *err)
{
	uint64_t pages = (uint64_t)h->normal + h->zero;

	if (h->magic != MF_PACKET_MAGIC)
		return tern_error_set(err, -EPROTO, "channel %u packet %" PRIu64 ": bad magic %#x",
				      chan, expect_seq, h->magic);
	if (h->version != MF_VERSION)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": unknown version %u", chan,
				      expect_seq, h->version);
	if (h->flags & ~MF_FLAGS_KNOWN)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": unknown flags %#x", chan,
				      expect_seq, h->flags);
	if (h->reserved)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": reserved field %#x not zero",
				      chan, expect_seq, h->reserved);
	if (h->seq != expect_seq)
		return tern_error_set(err, -EPROTO,
				      "channel %u: packet number %" PRIu64 ", expected %" PRIu64,
				      chan, h->seq, expect_seq);
	if (h->round != round)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": round %" PRIu64
				      ", expected %" PRIu64,
				      chan, h->seq, h->round, round);
	if (h->flags & MF_FLAG_SYNC) {
		/* a SYNC carries no page to place */
		if (h->flags & MF_FLAG_POSTCOPY)
			return tern_error_set(err, -EPROTO,
					      "channel %u packet %" PRIu64
					      ": sync packet with the POSTCOPY flag",
					      chan, h->seq);
		if (h->codec != TERN_CODEC_NONE)
			return tern_error_set(err, -EPROTO,
					      "channel %u packet %" PRIu64
					      ": sync packet with codec %u",
					      chan, h->seq, h->codec);
		if (pages || h->payload_len)
			return tern_error_set(err, -EPROTO,
					      "channel %u packet %" PRIu64
					      ": sync packet carries %" PRIu64
					      " pages and %u payload bytes",
					      chan, h->seq, pages, h->payload_len);
		return 0;
	}
	if (h->flags & MF_FLAG_LAST)
		return tern_error_set(
		    err, -EPROTO, "channel %u packet %" PRIu64 ": LAST without SYNC", chan, h->seq);
	if (!pages || pages > MF_MAX_PAGES)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": page count %" PRIu64
				      " outside 1..%u",
				      chan, h->seq, pages, MF_MAX_PAGES);
	if (h->block >= cfg->nblocks)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": RAM block %u of %u", chan,
				      h->seq, h->block, cfg->nblocks);
	if (h->codec <= TERN_CODEC_INVALID || h->codec >= TERN_CODEC_MAX)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": unknown codec %u", chan,
				      h->seq, h->codec);
	if (!mf_codec_allowed(cfg->method, h->codec))
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64
				      ": codec %s was not negotiated (multifd-compression %s)",
				      chan, h->seq, codec_name((enum tern_codec_id)h->codec),
				      mf_method_name(cfg->method));
	if ((h->flags & MF_FLAG_POSTCOPY) && h->codec == TERN_CODEC_XBZRLE)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64
				      ": postcopy packet with codec xbzrle (its deltas would apply "
				      "to pages the destination dropped)",
				      chan, h->seq);
	if (h->codec == TERN_CODEC_NONE) {
		if ((uint64_t)h->payload_len != (uint64_t)h->normal * cfg->page_size)
			return tern_error_set(err, -EPROTO,
					      "channel %u packet %" PRIu64
					      ": payload %u bytes for %u pages",
					      chan, h->seq, h->payload_len, h->normal);
		return 0;
	}
	/* An encoded payload: some pages to decode, and no more bytes than the
	 * codec can produce for them -- checked before a byte is read. */
	if (!h->normal)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64
				      " (%s): no normal page, yet an encoded payload",
				      chan, h->seq, codec_name((enum tern_codec_id)h->codec));
	if (h->payload_len >
	    codec_payload_max((enum tern_codec_id)h->codec, cfg->page_size, h->normal))
		return tern_error_set(
		    err, -EPROTO,
		    "channel %u packet %" PRIu64
		    " (%s): payload of %u bytes for %u pages, more than the "
		    "%" PRIu64 " the codec may produce",
		    chan, h->seq, codec_name((enum tern_codec_id)h->codec), h->payload_len,
		    h->normal,
		    codec_payload_max((enum tern_codec_id)h->codec, cfg->page_size, h->normal));
	return 0;
}

int mf_offsets_check(const uint8_t *offsets, uint32_t n, const struct mf_block *blk,
		     uint32_t page_size, uint32_t chan, uint64_t seq, struct tern_error *err)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint64_t off = get_be64(offsets + 8 * (size_t)i);

		if (LIKELY(!(off % page_size) && off < blk->size))
			continue;
		if (off >= blk->size)
			return tern_error_set(err, -EPROTO,
					      "channel %u packet %" PRIu64 ": page offset %#" PRIx64
					      " outside its block of %" PRIu64 " bytes",
					      chan, seq, off, blk->size);
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 ": page offset %#" PRIx64
				      " is not a multiple of the %u-byte page",
				      chan, seq, off, page_size);
	}
	return 0;
}

void mf_block_note_written(const struct mf_block *blk, const uint8_t *offsets, uint32_t n)
{
	uint64_t last = UINT64_MAX;
	uint32_t i;

	if (!blk->gen)
		return;
	for (i = 0; i < n; i++) {
		uint64_t r = get_be64(offsets + 8 * (size_t)i) >> blk->gen_shift;

		if (r == last)
			continue;
		__atomic_fetch_add(&blk->gen[r], 1, __ATOMIC_RELEASE);
		last = r;
	}
}

void mf_chan_stats_add(struct mf_chan_stats *total, const struct mf_chan_stats *live,
		       struct mf_chan_stats *ret_one)
{
	struct mf_chan_stats v = {
	    .wire_bytes = __atomic_load_n(&live->wire_bytes, __ATOMIC_RELAXED),
	    .normal_pages = __atomic_load_n(&live->normal_pages, __ATOMIC_RELAXED),
	    .zero_pages = __atomic_load_n(&live->zero_pages, __ATOMIC_RELAXED),
	    .packets = __atomic_load_n(&live->packets, __ATOMIC_RELAXED),
	};

	total->wire_bytes += v.wire_bytes;
	total->normal_pages += v.normal_pages;
	total->zero_pages += v.zero_pages;
	total->packets += v.packets;
	if (ret_one)
		*ret_one = v;
}

void mf_codec_stats_add(struct mf_codec_stats *total, const struct mf_codec_stats *live)
{
	uint32_t i;

#define LDADD(f) (total->f += __atomic_load_n(&live->f, __ATOMIC_RELAXED))
	for (i = 0; i < MF_NCODECS; i++) {
		LDADD(codec[i].pages);
		LDADD(codec[i].bytes_in);
		LDADD(codec[i].bytes_out);
		LDADD(codec[i].ns);
		LDADD(codec[i].cache_hits);
		LDADD(codec[i].cache_misses);
		LDADD(codec[i].overflows);
		LDADD(codec[i].delta_bytes);
		LDADD(auto_packets[i]);
	}
#undef LDADD
}

struct codec_config mf_codec_config(const struct mf_config *cfg, uint32_t id)
{
	return (struct codec_config){
	    .id = (enum tern_codec_id)id,
	    .page_size = cfg->page_size,
	    .level = id == TERN_CODEC_ZLIB ? cfg->zlib_level : cfg->zstd_level,
	    .cache = cfg->xbzrle, /* decoders ignore it */
	};
}
