/* SPDX-License-Identifier: MIT */
/*
 * What the KVM dirty-log tests put in place of libtern's core: a RAM block
 * that records what a provider reports, and a session that records which ops
 * table a provider attached. The provider (kvm/kvm_log.c) sees only the
 * public functions it calls -- tern_dirty_report(), tern_dirty_source_add(),
 * tern_ram_block_size() and tern_ram_block_name() -- so these stand-ins let
 * its tests drive start/sync/clear/stop one call at a time, as core's
 * precopy loop would, and compare the reported bits with what the guest wrote.
 */
#ifndef TERN_TESTS_KVM_TEST_H
#define TERN_TESTS_KVM_TEST_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/tern.h"

struct tern_ram_block {
	char name[32];
	uint64_t size, npages;
	uint64_t *reported; /* OR of every tern_dirty_report() since the reset */
	uint64_t nreports;
};

struct tern_session {
	const struct tern_dirty_source_ops *ops;
	void *opaque;
	int nadded;
};

struct tern_ram_block *ktest_block_new(const char *name, uint64_t npages);
void ktest_block_free(struct tern_ram_block *b);
/* Forget what was reported. */
void ktest_block_reset(struct tern_ram_block *b);
bool ktest_block_test(const struct tern_ram_block *b, uint64_t page);
uint64_t ktest_block_count(const struct tern_ram_block *b);

#endif /* TERN_TESTS_KVM_TEST_H */
