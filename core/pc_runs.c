/* SPDX-License-Identifier: MIT */
/*
 * Page runs on the control channel: POSTCOPY_DISCARD (source -> destination,
 * at the switch: the pages the destination must not trust) and
 * POSTCOPY_MISSING (destination -> source, at a recovery: the pages it
 * still lacks) share one layout, a frame per block and per
 * CTL_DISCARD_RANGES runs:
 *
 *   block u32 | runs u32 | (first page u64, pages u64) x runs
 *
 * Runs of a block come in order and never overlap; a receiver checks every
 * run against the block before it sets a bit.
 */
#include "core_priv.h"

int pc_runs_send(struct tern_session *s, struct tern_conn *c, enum ctl_type type,
		 uint64_t *const *maps, uint64_t *ret_pages, uint64_t *ret_bytes,
		 struct tern_error *err)
{
	struct buf b;
	uint32_t bi;
	int ret = 0;

	*ret_pages = 0;
	buf_init(&b);
	for (bi = 0; bi < s->nblocks && !ret; bi++) {
		const struct tern_ram_block *blk = s->blocks[bi];
		uint64_t p = 0, end;
		uint32_t runs = 0;

		while (!ret && maps[bi]) {
			p = bitmap_find_next(maps[bi], blk->npages, p);
			if (p < blk->npages) {
				end = bitmap_find_next_zero(maps[bi], blk->npages, p + 1);
				if (!runs) {
					buf_reset(&b);
					buf_put_u32(&b, bi);
					buf_put_u32(&b, 0); /* runs: filled in below */
				}
				buf_put_u64(&b, p);
				buf_put_u64(&b, end - p);
				*ret_pages += end - p;
				runs++;
				p = end;
			}
			if (runs && (p >= blk->npages || runs == CTL_DISCARD_RANGES)) {
				if (b.oom) {
					ret =
					    tern_error_set(err, -ENOMEM, "postcopy: out of memory");
					break;
				}
				put_be32(b.data + 4, runs);
				ret = ctl_send(c, type, b.data, b.len);
				*ret_bytes += CTL_HDR_SIZE + b.len;
				if (ret)
					tern_error_set(err, ret, "sending %s: %s",
						       ctl_type_name(type), strerror(-ret));
				runs = 0;
			}
			if (p >= blk->npages)
				break;
		}
	}
	buf_fini(&b);
	return ret;
}

int pc_runs_take(struct tern_session *s, const uint8_t *p, uint32_t len, enum ctl_type type,
		 uint64_t **maps, struct tern_error *err)
{
	const char *what = ctl_type_name(type);
	const struct tern_ram_block *b;
	uint32_t block, runs, i;
	struct rd r;

	rd_init(&r, p, len);
	block = rd_u32(&r);
	runs = rd_u32(&r);
	if (r.bad || !runs || rd_left(&r) != (size_t)runs * 16)
		return tern_error_set(err, -EPROTO, "%s: %u bytes do not hold %u page runs", what,
				      len, runs);
	if (block >= s->nblocks)
		return tern_error_set(err, -EPROTO, "%s: block %u of %u", what, block, s->nblocks);
	b = s->blocks[block];
	if (!maps[block]) {
		maps[block] = bitmap_new(b->npages);
		if (!maps[block])
			return tern_error_set(err, -ENOMEM, "postcopy: out of memory");
	}
	for (i = 0; i < runs; i++) {
		uint64_t first = rd_u64(&r), n = rd_u64(&r);

		if (!n || first >= b->npages || n > b->npages - first)
			return tern_error_set(err, -EPROTO,
					      "%s: block '%s' pages %" PRIu64 "+%" PRIu64
					      " outside its %" PRIu64 " pages",
					      what, b->name, first, n, b->npages);
		bitmap_set_range(maps[block], first, n);
	}
	return 0;
}
