/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the worker-channel packet parser with every codec:
 * what a receiving worker does with bytes from the wire, minus the socket.
 *
 * Input: method u8 (index into methods[]) | packet header (48 bytes) |
 * offsets u64 x (normal + zero) | payload. The packet goes through
 * mf_hdr_check() (against a fixed configuration: one block of 16 pages,
 * channel 0, packet 0, round 1), mf_offsets_check(), and then lands in the
 * block the way recv.c lands it: codec NONE copies the payload into the
 * pages, the others run codec_decode() into them. The block sits between
 * PROT_NONE guard pages, so any write outside it faults; ASan and UBSan
 * catch the rest.
 *
 * zlib and zstd decoders keep a stream per channel, so each input gets fresh
 * decoders: an input is one channel's first packet, and replays the same way.
 *
 * Built with -fsanitize=fuzzer under -Dfuzz=true. With FUZZ_REPLAY, main()
 * replays the files and directories named on the command line instead, which
 * is how the 'fuzz' suite runs the seed corpus (make_packet_corpus.py) in
 * every build.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compress/compress.h"
#include "multifd/multifd.h"

#define FZ_PAGES 16

static const uint32_t methods[] = {TERN_CODEC_NONE, TERN_CODEC_ZLIB, TERN_CODEC_ZSTD,
				   TERN_CODEC_XBZRLE, MF_METHOD_AUTO};

struct fz_state {
	uint32_t page;
	uint8_t *map; /* guard | block | guard */
	size_t map_len;
	struct mf_block blk;
	uint64_t touched[1];
	uint8_t *dst_ptrs[MF_MAX_PAGES];
};

static struct fz_state *fz_init(void)
{
	static struct fz_state st;
	long page = sysconf(_SC_PAGESIZE);

	if (st.map)
		return &st;
	st.page = page > 0 ? (uint32_t)page : 4096;
	st.map_len = (size_t)(FZ_PAGES + 2) * st.page;
	st.map = mmap(NULL, st.map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st.map == MAP_FAILED)
		abort();
	if (mprotect(st.map + st.page, (size_t)FZ_PAGES * st.page, PROT_READ | PROT_WRITE))
		abort();
	st.blk.host = st.map + st.page;
	st.blk.size = (uint64_t)FZ_PAGES * st.page;
	st.blk.touched = st.touched;
	return &st;
}

static void fz_packet(struct fz_state *st, uint32_t method, const uint8_t *p, size_t len)
{
	struct mf_config cfg = {
	    .page_size = st->page,
	    .nchannels = 1,
	    .method = method,
	    .zlib_level = 1,
	    .zstd_level = 1,
	    .blocks = &st->blk,
	    .nblocks = 1,
	};
	struct tern_error err = {0};
	struct mf_packet_hdr h;
	const uint8_t *offs, *payload;
	uint32_t n, i;

	if (len < MF_HDR_SIZE)
		return;
	mf_hdr_decode(p, &h);
	if (mf_hdr_check(&h, &cfg, 0, 0, 1, &err))
		return;
	if (h.flags & MF_FLAG_SYNC)
		return;
	n = h.normal + h.zero;
	if (len - MF_HDR_SIZE < 8 * (size_t)n)
		return;
	offs = p + MF_HDR_SIZE;
	if (mf_offsets_check(offs, n, &st->blk, st->page, 0, 0, &err))
		return;
	payload = offs + 8 * (size_t)n;
	if (len - MF_HDR_SIZE - 8 * (size_t)n < h.payload_len)
		return;
	for (i = 0; i < h.normal; i++)
		st->dst_ptrs[i] = st->blk.host + get_be64(offs + 8 * (size_t)i);
	if (h.codec == TERN_CODEC_NONE) {
		for (i = 0; i < h.normal; i++)
			memcpy(st->dst_ptrs[i], payload + (size_t)i * st->page, st->page);
		return;
	}
	{
		struct codec_config cc = {
		    .id = (enum tern_codec_id)h.codec, .page_size = st->page, .level = 1};
		struct codec_dec *dec = NULL;

		if (codec_dec_new(&cc, &dec, NULL))
			return;
		codec_decode(dec, payload, h.payload_len, st->dst_ptrs, h.normal, &err);
		codec_dec_free(dec);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_state *st = fz_init();
	uint32_t method;

	if (size < 1)
		return 0;
	method = methods[data[0] % ARRAY_SIZE(methods)];
	if (mf_method_check(method, "fuzz", NULL))
		return 0;
	fz_packet(st, method, data + 1, size - 1);
	return 0;
}

#ifdef FUZZ_REPLAY
static int replay_file(const char *path)
{
	struct stat sb;
	uint8_t *buf;
	FILE *f;
	size_t n;

	f = fopen(path, "rb");
	if (!f || fstat(fileno(f), &sb)) {
		perror(path);
		if (f)
			fclose(f);
		return 1;
	}
	buf = malloc((size_t)sb.st_size + 1);
	n = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
	fclose(f);
	if (!buf)
		return 1;
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int i, bad = 0, files = 0;

	for (i = 1; i < argc; i++) {
		struct stat sb;
		struct dirent *de;
		DIR *d;

		if (stat(argv[i], &sb)) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(sb.st_mode)) {
			bad |= replay_file(argv[i]);
			files++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			bad |= replay_file(path);
			files++;
		}
		closedir(d);
	}
	printf("fuzz_packet: replayed %d inputs\n", files);
	return bad || !files;
}
#endif
