/* SPDX-License-Identifier: MIT */
/*
 * codec-bench: how fast each page codec encodes and decodes on one core,
 * and how well it compresses, on three kinds of pages:
 *
 *   random  incompressible (the worst case for zlib and zstd)
 *   text    words from a small vocabulary (compresses several times)
 *   1%      pages sent before, with 1% of their bytes changed since (the
 *           case XBZRLE exists for; the others see plain random pages)
 *
 * A run encodes the whole buffer packet by packet through one encoder (one
 * stream, flushed per packet, as a worker channel does), then decodes it
 * through one decoder, and keeps the best of --reps runs. For zstd and zlib
 * it also times the library alone on the same buffer in one call
 * (ZSTD_compressCCtx / compress2 at the same level: what `zstd -b1` and
 * friends measure), so "vs lib" shows what the codec's streaming, per-packet
 * flushes and page-by-page feeding cost. XBZRLE also gets the delta
 * function alone (xbzrle_encode / xbzrle_decode on page pairs).
 *
 * This measures a module, not a migration: it links compress/ directly and
 * is not installed. Figures in GB/s are 10^9 bytes of page data per second
 * of the thread's CPU time (the figure per core, and steadier than wall
 * time on a shared machine). "xbzrle new" is a first pass through an empty
 * cache: every page a miss, sent raw.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "compress/compress.h"

#ifdef TERN_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef TERN_HAVE_ZSTD
#include <zstd.h>
#endif

#define PS 4096u

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd_next(void)
{
	uint64_t x = rnd_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

static void fill_random(uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = rnd_next();

		memcpy(p + i, &v, 8);
	}
}

static void fill_text(uint8_t *p, size_t len)
{
	static const char *const words[] = {
	    "the ", "page ", "migration ", "dirty ", "round ",	   "delta ",	"of ", "guest ",
	    "RAM ", "\n",    "channel ",   "zero ",  "bandwidth ", "downtime ", "= ",  "42 ",
	};
	size_t i = 0;

	while (i < len) {
		const char *w = words[rnd_next() % ARRAY_SIZE(words)];
		size_t n = MIN(strlen(w), len - i);

		memcpy(p + i, w, n);
		i += n;
	}
}

/* Change 1% of the bytes of every page, at random offsets. */
static void change_1pct(uint8_t *p, size_t npages)
{
	size_t i, k;

	for (i = 0; i < npages; i++)
		for (k = 0; k < PS / 100; k++)
			p[i * PS + rnd_next() % PS] ^= (uint8_t)(1 + rnd_next() % 255);
}

struct opts {
	size_t npages;	  /* pages in the buffer */
	uint32_t per_pkt; /* pages a packet */
	int reps;
};

struct result {
	double enc_gbs, dec_gbs, ratio;
	double lib_enc_gbs, lib_dec_gbs; /* 0: not measured */
	struct codec_stats st;
};

/* Thread CPU time: the figures are per core, and this machine is shared. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double gbs(size_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;
}

static __attribute__((noreturn)) void die(const char *what, const struct tern_error *err)
{
	fprintf(stderr, "codec-bench: %s: %s\n", what, err && err->msg[0] ? err->msg : "failed");
	exit(1);
}

/*
 * Encode @versions[v % nver] for v = 0..reps*nver-1 through one encoder (so
 * XBZRLE sees each buffer after the previous version), decode each pass
 * into @dst, and keep the best pass (@skip first passes are warm-up: the
 * XBZRLE cache filling).
 */
static void run_codec(const struct opts *o, struct codec_config *cfg, uint8_t *const *versions,
		      int nver, int skip, uint8_t *dst, struct result *r)
{
	uint32_t nseg = (uint32_t)DIV_ROUND_UP(o->npages, o->per_pkt), s, i;
	uint64_t pmax = codec_payload_max(cfg->id, PS, o->per_pkt);
	uint8_t *pay = malloc(pmax * nseg);
	size_t *plen = calloc(nseg, sizeof(*plen));
	struct codec_page *pages = calloc(o->per_pkt, sizeof(*pages));
	uint8_t **dptr = calloc(o->per_pkt, sizeof(*dptr));
	struct iovec *iov = calloc(o->per_pkt, sizeof(*iov));
	struct tern_error err = {0};
	struct codec_enc *enc;
	struct codec_dec *dec;
	uint64_t best_e = UINT64_MAX, best_d = UINT64_MAX;
	size_t total = 0;
	int pass;

	if (!pay || !plen || !pages || !dptr || !iov)
		die("no memory", NULL);
	if (codec_enc_new(cfg, &enc, &err) < 0 || codec_dec_new(cfg, &dec, &err) < 0)
		die(codec_name(cfg->id), &err);
	for (pass = 0; pass < skip + o->reps * nver; pass++) {
		const uint8_t *src = versions[pass % nver];
		struct codec_stats s0, s1;
		uint64_t t1, t2, te = 0;

		codec_enc_stats(enc, &s0);
		total = 0;
		for (s = 0; s < nseg; s++) {
			uint32_t n =
			    (uint32_t)MIN((size_t)o->per_pkt, o->npages - (size_t)s * o->per_pkt);
			uint32_t niov;
			size_t off = 0;
			ssize_t len;

			for (i = 0; i < n; i++) {
				pages[i].src = src + ((size_t)s * o->per_pkt + i) * PS;
				pages[i].key = (size_t)s * o->per_pkt + i;
			}
			t1 = cpu_ns();
			len = codec_encode(enc, pages, n, iov, o->per_pkt, &niov, &err);
			te += cpu_ns() - t1;
			if (len < 0)
				die("encode", &err);
			/* gather into the packet's slot, as a socket would (not
			 * timed) */
			for (i = 0; i < niov; i++) {
				memcpy(pay + s * pmax + off, iov[i].iov_base, iov[i].iov_len);
				off += iov[i].iov_len;
			}
			plen[s] = off;
			total += off;
		}
		codec_enc_stats(enc, &s1);
		t1 = cpu_ns();
		for (s = 0; s < nseg; s++) {
			uint32_t n =
			    (uint32_t)MIN((size_t)o->per_pkt, o->npages - (size_t)s * o->per_pkt);

			for (i = 0; i < n; i++)
				dptr[i] = dst + ((size_t)s * o->per_pkt + i) * PS;
			if (codec_decode(dec, pay + s * pmax, plen[s], dptr, n, &err) < 0)
				die("decode", &err);
		}
		t2 = cpu_ns();
		if (memcmp(dst, src, o->npages * PS))
			die("decoded pages differ from the source", NULL);
		if (pass < skip)
			continue;
		best_e = MIN(best_e, te);
		best_d = MIN(best_d, t2 - t1);
		r->st.pages += s1.pages - s0.pages;
		r->st.cache_hits += s1.cache_hits - s0.cache_hits;
		r->st.cache_misses += s1.cache_misses - s0.cache_misses;
		r->st.overflows += s1.overflows - s0.overflows;
	}
	r->enc_gbs = gbs(o->npages * PS, best_e);
	r->dec_gbs = gbs(o->npages * PS, best_d);
	r->ratio = (double)(o->npages * PS) / (double)total;
	codec_enc_free(enc);
	codec_dec_free(dec);
	free(pay);
	free(plen);
	free(pages);
	free(dptr);
	free(iov);
}

/* The library alone on the whole buffer, best of @reps. */
static void run_lib(const struct opts *o, enum tern_codec_id id, int level, const uint8_t *src,
		    uint8_t *dst, struct result *r)
{
	size_t len = o->npages * PS, cap = len + len / 16 + 4096, clen = 0;
	uint8_t *c = malloc(cap);
	uint64_t be = UINT64_MAX, bd = UINT64_MAX;
	int rep;

	if (!c)
		die("no memory", NULL);
	for (rep = 0; rep < o->reps; rep++) {
		uint64_t t0 = cpu_ns(), t1, t2;

		if (id == TERN_CODEC_ZSTD) {
#ifdef TERN_HAVE_ZSTD
			static ZSTD_CCtx *cctx;
			static ZSTD_DCtx *dctx;

			if (!cctx)
				cctx = ZSTD_createCCtx();
			if (!dctx)
				dctx = ZSTD_createDCtx();
			clen = ZSTD_compressCCtx(cctx, c, cap, src, len, level);
			if (ZSTD_isError(clen))
				die("ZSTD_compressCCtx", NULL);
			t1 = cpu_ns();
			if (ZSTD_decompressDCtx(dctx, dst, len, c, clen) != len)
				die("ZSTD_decompressDCtx", NULL);
#else
			die("zstd is not in this build", NULL);
#endif
		} else {
#ifdef TERN_HAVE_ZLIB
			uLongf cl = cap, dl = len;

			if (compress2(c, &cl, src, len, level) != Z_OK)
				die("compress2", NULL);
			clen = cl;
			t1 = cpu_ns();
			if (uncompress(dst, &dl, c, cl) != Z_OK || dl != len)
				die("uncompress", NULL);
#else
			die("zlib is not in this build", NULL);
#endif
		}
		t2 = cpu_ns();
		be = MIN(be, t1 - t0);
		bd = MIN(bd, t2 - t1);
	}
	(void)clen;
	r->lib_enc_gbs = gbs(len, be);
	r->lib_dec_gbs = gbs(len, bd);
	free(c);
}

static void print_row(const char *codec, const char *data, const struct result *r)
{
	printf("%-10s %-7s %7.2f %9.2f %9.2f", codec, data, r->ratio, r->enc_gbs, r->dec_gbs);
	if (r->lib_enc_gbs > 0)
		printf(" %9.2f %9.2f %8.0f%%", r->lib_enc_gbs, r->lib_dec_gbs,
		       100.0 * r->enc_gbs / r->lib_enc_gbs);
	else
		printf(" %9s %9s %9s", "-", "-", "-");
	if (r->st.cache_hits + r->st.cache_misses)
		printf("  hits %.0f%% overflows %.0f%%",
		       100.0 * (double)r->st.cache_hits /
			   (double)(r->st.cache_hits + r->st.cache_misses),
		       100.0 * (double)r->st.overflows / (double)r->st.pages);
	printf("\n");
}

/* The delta function alone: old -> 1%-changed new, page by page. */
static void run_delta(const struct opts *o, const uint8_t *old, const uint8_t *cur)
{
	size_t n = o->npages, i, dbytes = 0;
	uint8_t *out = malloc((size_t)n * PS), *page = malloc(PS);
	uint32_t *dl = calloc(n, sizeof(*dl));
	uint64_t be = UINT64_MAX, bd = UINT64_MAX;
	struct tern_error err = {0};
	int rep;

	if (!out || !page || !dl)
		die("no memory", NULL);
	for (rep = 0; rep < o->reps + 1; rep++) {
		uint64_t t0 = cpu_ns(), t1, t2;

		dbytes = 0;
		for (i = 0; i < n; i++) {
			int r = xbzrle_encode(old + i * PS, cur + i * PS, PS, out + i * PS,
					      PS - PS / 8);

			if (r < 0)
				die("xbzrle_encode overflowed on a 1% page", NULL);
			dl[i] = (uint32_t)r;
			dbytes += (size_t)r;
		}
		t1 = cpu_ns();
		for (i = 0; i < n; i++) {
			memcpy(page, old + i * PS, PS); /* not timed apart: a 4 KiB copy */
			if (xbzrle_decode(out + i * PS, dl[i], page, PS, &err) < 0)
				die("xbzrle_decode", &err);
		}
		t2 = cpu_ns();
		if (rep) {
			be = MIN(be, t1 - t0);
			bd = MIN(bd, t2 - t1);
		}
	}
	printf("\nxbzrle delta alone, 1%% changed (%zu pages, best of %d): encode %.2f GB/s, "
	       "decode %.2f GB/s (incl. a page copy), %.1f delta bytes a page\n",
	       n, o->reps, gbs(n * PS, be), gbs(n * PS, bd), (double)dbytes / (double)n);
	free(out);
	free(page);
	free(dl);
}

static void usage(void)
{
	fprintf(stderr, "usage: codec-bench [--mib N (64)] [--packet PAGES (512)] [--reps N (3)]\n"
			"  --zstd-level N (1) --zlib-level N (1) --cache-mib N (256)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"mib", required_argument, NULL, 'm'},
	    {"packet", required_argument, NULL, 'p'},
	    {"reps", required_argument, NULL, 'r'},
	    {"zstd-level", required_argument, NULL, 's'},
	    {"zlib-level", required_argument, NULL, 'z'},
	    {"cache-mib", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {.npages = 64 * 256, .per_pkt = 512, .reps = 3};
	int zstd_level = 1, zlib_level = 1, opt;
	uint64_t cache_mib = 256;
	uint8_t *rnd, *txt, *v0, *v1, *dst;
	struct tern_error err = {0};
	size_t len;

	while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			o.npages = (size_t)strtoul(optarg, NULL, 0) * 256;
			break;
		case 'p':
			o.per_pkt = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'r':
			o.reps = atoi(optarg);
			break;
		case 's':
			zstd_level = atoi(optarg);
			break;
		case 'z':
			zlib_level = atoi(optarg);
			break;
		case 'c':
			cache_mib = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (!o.npages || !o.per_pkt || o.reps < 1)
		usage();
	len = o.npages * PS;
	rnd = aligned_alloc(PS, len);
	txt = aligned_alloc(PS, len);
	v0 = aligned_alloc(PS, len);
	v1 = aligned_alloc(PS, len);
	dst = aligned_alloc(PS, len);
	if (!rnd || !txt || !v0 || !v1 || !dst)
		die("no memory", NULL);
	fill_random(rnd, len);
	fill_text(txt, len);
	/* 1%: v0 and v1 differ from each other by 1% of each page */
	fill_random(v0, len);
	memcpy(v1, v0, len);
	change_1pct(v1, o.npages);
	memset(dst, 0, len);

	printf("codec-bench: %zu MiB, %u pages a packet, page %u, best of %d, one core\n",
	       len >> 20, o.per_pkt, PS, o.reps);
	printf("%-10s %-7s %7s %9s %9s %9s %9s %9s\n", "codec", "data", "ratio", "enc GB/s",
	       "dec GB/s", "lib enc", "lib dec", "vs lib");
	{
		struct codec_config cfg = {.id = TERN_CODEC_NONE, .page_size = PS};
		struct result r = {0};
		uint8_t *one[1] = {rnd};

		run_codec(&o, &cfg, one, 1, 0, dst, &r);
		print_row("none", "random", &r);
	}
	{
		static const enum tern_codec_id ids[] = {TERN_CODEC_ZSTD, TERN_CODEC_ZLIB};
		size_t k;

		for (k = 0; k < ARRAY_SIZE(ids); k++) {
			int level = ids[k] == TERN_CODEC_ZSTD ? zstd_level : zlib_level;
			struct codec_config cfg = {.id = ids[k], .page_size = PS, .level = level};
			uint8_t *data[2] = {rnd, txt};
			const char *names[2] = {"random", "text"};
			char label[32];
			int d;

			if (!codec_available(ids[k]))
				continue;
			snprintf(label, sizeof(label), "%s-%d", codec_name(ids[k]), level);
			for (d = 0; d < 2; d++) {
				struct result r = {0};
				uint8_t *one[1] = {data[d]};

				run_codec(&o, &cfg, one, 1, 0, dst, &r);
				run_lib(&o, ids[k], level, data[d], dst, &r);
				print_row(label, names[d], &r);
			}
		}
	}
	{
		struct codec_config cfg = {.id = TERN_CODEC_XBZRLE, .page_size = PS};
		struct result r = {0};
		uint8_t *vers[2] = {v0, v1};
		uint8_t *one[1] = {rnd};
		struct opts o1 = o;

		if (xbzrle_cache_new(cache_mib << 20, PS, &cfg.cache, &err) < 0)
			die("xbzrle cache", &err);
		/* pass 0 fills the cache (all raw); then v1, v0, v1...: each
		 * page 1% off the version cached */
		run_codec(&o, &cfg, vers, 2, 1, dst, &r);
		print_row("xbzrle", "1%", &r);
		xbzrle_cache_free(cfg.cache);
		if (xbzrle_cache_new(cache_mib << 20, PS, &cfg.cache, &err) < 0)
			die("xbzrle cache", &err);
		/* one pass through an empty cache: every page a miss, raw */
		memset(&r, 0, sizeof(r));
		o1.reps = 1;
		run_codec(&o1, &cfg, one, 1, 0, dst, &r);
		print_row("xbzrle", "new", &r);
		xbzrle_cache_free(cfg.cache);
	}
	run_delta(&o, v0, v1);
	free(rnd);
	free(txt);
	free(v0);
	free(v1);
	free(dst);
	return 0;
}
