/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the XBZRLE decoder (compress/xbzrle.c and the
 * packet records of compress/xbzrle_codec.c): whatever the bytes, decoding
 * refuses them with a message or applies them inside the page, never a
 * crash, never a write outside the page.
 *
 * The first input byte picks a mode, the second a size; the rest is data:
 *   mode 0: a delta applied to a page of 64..4096 bytes; if it is accepted,
 *           re-encoding old -> new and decoding that must give the same page.
 *   mode 1: a packet payload of 1..4 pages through the XBZRLE decoder.
 *   mode 2: two pages (old, new) built from the data: encode, decode, and
 *           the result must equal new (the encoder's side of the format);
 *           the cache's xbzrle_encode_update() must agree.
 * Pages are heap blocks of exactly their size, so AddressSanitizer catches
 * a write one byte past them.
 *
 * Built twice: with -Dfuzz=true and clang as a libFuzzer target, and always
 * with -DFUZZ_REPLAY as a plain program that runs each file of the committed
 * corpus (tests/fuzz/corpus/xbzrle/) through the same function, so CI runs
 * the seeds and every crash once found.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "compress/compress_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_xbzrle: %s\n", what);
		abort();
	}
}

static void fuzz_delta(const uint8_t *d, size_t n, size_t len)
{
	uint8_t *page = malloc(len), *old = malloc(len), *out = malloc(2 * len + 16);
	struct tern_error err = {0};
	size_t i;

	check(page && old && out, "no memory");
	for (i = 0; i < len; i++)
		old[i] = (uint8_t)(i * 7);
	memcpy(page, old, len);
	if (xbzrle_decode(d, n, page, len, &err) == 0) {
		int dlen = xbzrle_encode(old, page, len, out, 2 * len + 16);

		check(dlen >= 0, "re-encoding refused");
		check(xbzrle_decode(out, (size_t)dlen, old, len, &err) == 0,
		      "re-encoded delta refused");
		check(!memcmp(old, page, len), "re-encoded delta decodes differently");
	} else {
		check(err.code == -EPROTO && err.msg[0], "refusal without -EPROTO and a message");
	}
	free(page);
	free(old);
	free(out);
}

static void fuzz_payload(const uint8_t *d, size_t n, uint32_t npages)
{
	struct codec_config cfg = {.id = TERN_CODEC_XBZRLE, .page_size = 4096};
	struct tern_error err = {0};
	struct codec_dec *dec = NULL;
	uint8_t *dst[4];
	uint32_t i;

	check(codec_dec_new(&cfg, &dec, NULL) == 0, "decoder");
	for (i = 0; i < npages; i++) {
		dst[i] = malloc(4096);
		check(dst[i] != NULL, "no memory");
		memset(dst[i], (int)i, 4096);
	}
	if (codec_decode(dec, d, n, dst, npages, &err) < 0)
		check(err.code == -EPROTO && err.msg[0], "refusal without -EPROTO and a message");
	for (i = 0; i < npages; i++)
		free(dst[i]);
	codec_dec_free(dec);
}

static void fuzz_encode(const uint8_t *d, size_t n, size_t len)
{
	uint8_t *old = calloc(1, len), *cur = calloc(1, len), *out = malloc(4 * len + 32), *upd;
	struct tern_error err = {0};
	size_t i;
	int dlen;

	check(old && cur && out, "no memory");
	/* old: the first half of the data, repeated; new: old with the second
	 * half's bytes as (offset, value) pairs written over it */
	for (i = 0; i < len && n / 2; i++)
		old[i] = d[i % (n / 2)];
	memcpy(cur, old, len);
	for (i = n / 2; i + 1 < n; i += 2) {
		size_t pos = (size_t)d[i] * len / 256 + (d[i + 1] & 3);

		cur[MIN(pos, len - 1)] = d[i + 1];
	}
	dlen = xbzrle_encode(old, cur, len, out, 2 * len + 16);
	check(dlen >= 0, "encoder refused a large enough buffer");
	check(dlen > 0 || !memcmp(old, cur, len), "empty delta for a changed page");
	/* a bound the delta does not fit is an overflow, never a cut delta */
	if (dlen > 0)
		check(xbzrle_encode(old, cur, len, out + dlen, (size_t)dlen - 1) == -ENOSPC,
		      "short buffer not refused");
	/* the cache's variant: the same delta, and old becomes cur */
	upd = malloc(len);
	check(upd != NULL, "no memory");
	memcpy(upd, old, len);
	check(xbzrle_encode_update(upd, cur, len, out + dlen, (size_t)dlen) == dlen &&
		  !memcmp(out, out + dlen, (size_t)dlen) && !memcmp(upd, cur, len),
	      "xbzrle_encode_update differs from xbzrle_encode");
	free(upd);
	check(xbzrle_decode(out, (size_t)dlen, old, len, &err) == 0, "encoder output refused");
	check(!memcmp(old, cur, len), "round trip differs");
	free(old);
	free(cur);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;

	if (size < 2)
		return 0;
	len = 64 * (1 + (size_t)data[1] % 64);
	switch (data[0] % 3) {
	case 0:
		fuzz_delta(data + 2, size - 2, len);
		break;
	case 1:
		fuzz_payload(data + 2, size - 2, 1 + data[1] % 4);
		break;
	default:
		fuzz_encode(data + 2, size - 2, len);
		break;
	}
	return 0;
}

#ifdef FUZZ_REPLAY
/* Run every file in the directories given (the committed corpus). */
int main(int argc, char **argv)
{
	int i, files = 0;

	for (i = 1; i < argc; i++) {
		DIR *dir = opendir(argv[i]);
		struct dirent *de;

		if (!dir) {
			fprintf(stderr, "fuzz_xbzrle: cannot open %s\n", argv[i]);
			return 1;
		}
		while ((de = readdir(dir))) {
			char path[4096];
			uint8_t *buf;
			FILE *f;
			long sz;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			f = fopen(path, "rb");
			if (!f || fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 ||
			    fseek(f, 0, SEEK_SET)) {
				fprintf(stderr, "fuzz_xbzrle: cannot read %s\n", path);
				return 1;
			}
			buf = malloc((size_t)sz + 1);
			if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
				fprintf(stderr, "fuzz_xbzrle: cannot read %s\n", path);
				return 1;
			}
			fclose(f);
			LLVMFuzzerTestOneInput(buf, (size_t)sz);
			free(buf);
			files++;
		}
		closedir(dir);
	}
	printf("fuzz_xbzrle: %d inputs replayed\n", files);
	return files ? 0 : 1;
}
#endif
