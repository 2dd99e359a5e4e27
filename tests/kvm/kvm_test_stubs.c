/* SPDX-License-Identifier: MIT */
/*
 * Stand-ins for the core functions the KVM dirty-log provider calls (see
 * kvm_test.h). tern_dirty_report() checks its range exactly as core/ram.c
 * does, so a provider that reports outside its block fails here too.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/kvm/kvm_test.h"
#include "util/util.h"

struct tern_ram_block *ktest_block_new(const char *name, uint64_t npages)
{
	struct tern_ram_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->npages = npages;
	b->size = npages * 4096;
	b->reported = bitmap_new(npages);
	if (!b->reported) {
		free(b);
		return NULL;
	}
	return b;
}

void ktest_block_free(struct tern_ram_block *b)
{
	if (!b)
		return;
	bitmap_free(b->reported);
	free(b);
}

void ktest_block_reset(struct tern_ram_block *b)
{
	memset(b->reported, 0, BITMAP_WORDS(b->npages) * sizeof(uint64_t));
	b->nreports = 0;
}

bool ktest_block_test(const struct tern_ram_block *b, uint64_t page)
{
	return page < b->npages && bitmap_test(b->reported, page);
}

uint64_t ktest_block_count(const struct tern_ram_block *b)
{
	return bitmap_count(b->reported, b->npages);
}

int tern_dirty_report(struct tern_ram_block *b, uint64_t first_page, const uint64_t *bitmap,
		      uint64_t npages)
{
	uint64_t i;

	if (first_page > b->npages || npages > b->npages - first_page)
		return -ERANGE;
	for (i = 0; i < npages; i++)
		if (bitmap_test(bitmap, i))
			bitmap_set(b->reported, first_page + i);
	b->nreports++;
	return 0;
}

int tern_dirty_source_add(struct tern_session *s, const struct tern_dirty_source_ops *ops,
			  void *opaque, struct tern_error *err)
{
	if (!ops || !ops->sync)
		return tern_error_set(err, -EINVAL, "dirty-log provider: sync is required");
	s->ops = ops;
	s->opaque = opaque;
	s->nadded++;
	return 0;
}

uint64_t tern_ram_block_size(const struct tern_ram_block *b)
{
	return b->size;
}

const char *tern_ram_block_name(const struct tern_ram_block *b)
{
	return b->name;
}
