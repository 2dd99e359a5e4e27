/* SPDX-License-Identifier: MIT */
/*
 * libtern's dirty-log provider for KVM memslots.
 *
 * A VMM that keeps guest RAM in KVM memslots hands the slots to
 * tern_kvm_log_new() and plugs the log into a session with
 * tern_kvm_log_attach(). During the migration the library then:
 *   - at start, turns KVM_MEM_LOG_DIRTY_PAGES on for every slot (and, where
 *     the kernel has KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, enables manual
 *     protection with INITIALLY_SET, so starting costs no write-protect pass);
 *   - each round, fetches every slot's bitmap with KVM_GET_DIRTY_LOG;
 *   - with manual protection, re-arms the log one chunk of
 *     1 << clear-bitmap-shift pages at a time with KVM_CLEAR_DIRTY_LOG, right
 *     before the first page of the chunk is read (clear first, then read: a
 *     write after the clear is caught by the next round);
 *   - at the end, failed or not, turns dirty logging off again.
 * Without the capability it falls back to plain KVM_GET_DIRTY_LOG, which
 * fetches and re-arms the whole slot at once.
 *
 * The slots must stay registered, at the same addresses, until the migration
 * has ended; the VMM must not change their flags meanwhile.
 */
#ifndef TERN_KVM_H
#define TERN_KVM_H

#include <stdbool.h>
#include <stdint.h>

#include "tern.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct tern_kvm_slot - one memslot as the VMM registered it.
 * @slot: the KVM slot number (address space in bits 16..31, as KVM takes it).
 * @flags: the flags the VMM registered it with (KVM_MEM_READONLY, ...);
 *	the log adds and later removes KVM_MEM_LOG_DIRTY_PAGES.
 * @guest_phys_addr, @size: the slot's range; @size a multiple of 4096.
 * @host: its userspace_addr.
 * @block: the RAM block that holds the slot's memory, at @block_offset
 *	(page-aligned; the slot must fit inside the block).
 */
struct tern_kvm_slot {
	uint32_t slot;
	uint32_t flags;
	uint64_t guest_phys_addr;
	uint64_t size;
	void *host;
	struct tern_ram_block *block;
	uint64_t block_offset;
};

struct tern_kvm_log;

/**
 * tern_kvm_log_new() - a dirty log over @nslots memslots of @vm_fd (copied).
 * Checks the slots against their blocks and asks KVM what it offers; touches
 * nothing yet. @vm_fd stays the caller's.
 */
TERN_EXPORT int tern_kvm_log_new(int vm_fd, const struct tern_kvm_slot *slots, uint32_t nslots,
				 struct tern_kvm_log **ret_log, struct tern_error *err);

/** tern_kvm_log_attach() - use @log as a dirty-log provider of @s (before the start). */
TERN_EXPORT int tern_kvm_log_attach(struct tern_session *s, struct tern_kvm_log *log,
				    struct tern_error *err);

/** tern_kvm_log_free() - after the session that used it has ended (or was freed). */
TERN_EXPORT void tern_kvm_log_free(struct tern_kvm_log *log);

/**
 * struct tern_kvm_log_stats - what the log did, for the VMM's reports.
 * @manual_protect: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 in use.
 * @initially_set: ... with KVM_DIRTY_LOG_INITIALLY_SET.
 * @syncs: KVM_GET_DIRTY_LOG rounds; @dirty_pages: pages they reported.
 * @clears: KVM_CLEAR_DIRTY_LOG calls; @cleared_pages: pages they re-armed.
 * @sync_ns, @clear_ns: total time in those ioctls.
 * @last_sync_ns, @last_round_clear_ns: the last round's share.
 */
struct tern_kvm_log_stats {
	bool manual_protect;
	bool initially_set;
	uint64_t syncs;
	uint64_t dirty_pages;
	uint64_t clears;
	uint64_t cleared_pages;
	uint64_t sync_ns;
	uint64_t clear_ns;
	uint64_t last_sync_ns;
	uint64_t last_round_clear_ns;
};

/** tern_kvm_log_stats() - thread-safe snapshot. */
TERN_EXPORT void tern_kvm_log_stats(struct tern_kvm_log *log, struct tern_kvm_log_stats *ret);

#ifdef __cplusplus
}
#endif

#endif /* TERN_KVM_H */
