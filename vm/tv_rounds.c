/* SPDX-License-Identifier: MIT */
/*
 * The round-locked workload (tern-vm --dirty-rounds N): the guest rewrites
 * its working set once in each of the first N rounds of the migration, and
 * each round's dirty-log sync waits until it has. What a test sees -- every
 * working-set page re-sent once a round, N times, then a round that finds
 * the guest idle -- is then set by the workload at any guest speed: a guest
 * on TCG and one on a 16-core host give the same rounds and the same pages.
 * Paced by the clock instead (--dirty-rate), a fast guest finishes its work
 * before the migration gets going and a slow one never lets it converge.
 * The KVM dirty_log selftest lock-steps its guest with the host's
 * collection the same way.
 *
 * It is a dirty source of tern-vm's own, attached before KVM's log, so its
 * sync hook runs first. Step by step, at round k's sync, k >= 2:
 *   1. round k - 1 re-armed the dirty log for every page it sent (KVM's
 *      clear ran before it read them), so from then on the guest's writes
 *      are caught by the next KVM sync;
 *   2. this hook writes a new value into the mailbox's round and reports
 *      that write itself (tern_ram_mark_dirty(): KVM does not see the VMM's
 *      writes), so the destination gets the final value;
 *   3. each vCPU, sleeping in short ticks, sees the new round, rewrites its
 *      working set and stores the round in its box's round_served;
 *   4. the hook waits until every vCPU that still has passes to make has
 *      served the round, then returns: KVM's sync, next, sees the whole pass.
 * Round 1 (the bulk round) publishes nothing: the guest's pages go in it
 * anyway. With the guest paused (the switchover's sync) or stopping, the
 * hook neither publishes nor waits. The wait is bounded (TV_ROUND_WAIT_MS):
 * a guest too slow for it only loosens the lock-step; it never holds a
 * migration up for good.
 */
#include <errno.h>
#include <syslog.h>
#include <time.h>

#include "tv.h"

#define TV_ROUND_WAIT_MS 30000
#define TV_ROUND_POLL_NS 200000 /* 200 us */

/* Guest RAM the workers may be sending: see held_add() in tv_vcpu.c. */
static __attribute__((no_sanitize_thread)) void round_store(volatile uint64_t *p, uint64_t v)
{
	*p = v;
}

static __attribute__((no_sanitize_thread)) uint64_t guest_load(const volatile uint64_t *p)
{
	return *p;
}

/* The guest cannot serve a round now: paused for switchover, or ending. */
static bool guest_stopped(struct tv_vm *vm)
{
	bool stopped;

	pthread_mutex_lock(&vm->lock);
	stopped = vm->pause_req || vm->quit || vm->fatal[0];
	pthread_mutex_unlock(&vm->lock);
	return stopped;
}

/* vCPU box @b still has passes to make. */
static bool passes_left(struct tv_vm *vm, struct tv_vcpu_box *b)
{
	return b->ws_pages && guest_load(&b->passes) < vm->cfg->dirty_rounds;
}

static bool any_passes_left(struct tv_vm *vm)
{
	uint32_t i;

	for (i = 0; i < vm->kg.nvcpus; i++)
		if (passes_left(vm, &vm->mb->vcpu[i]))
			return true;
	return false;
}

/* Every vCPU with passes still to make has served @round. */
static bool all_served(struct tv_vm *vm, uint64_t round)
{
	uint32_t i;

	for (i = 0; i < vm->kg.nvcpus; i++) {
		struct tv_vcpu_box *b = &vm->mb->vcpu[i];

		if (passes_left(vm, b) && guest_load(&b->round_served) != round)
			return false;
	}
	return true;
}

static int rounds_start(void *opaque, struct tern_error *err)
{
	struct tv_vm *vm = opaque;

	(void)err;
	vm->round_syncs = 0;
	return 0;
}

static int rounds_sync(void *opaque, struct tern_error *err)
{
	struct tv_vm *vm = opaque;
	struct timespec tick = {.tv_sec = 0, .tv_nsec = TV_ROUND_POLL_NS};
	uint64_t round, t0;
	struct tern_ram_block *b;

	(void)err;
	if (++vm->round_syncs < 2 || guest_stopped(vm) || !any_passes_left(vm))
		return 0;
	round = guest_load(&vm->mb->round) + 1;
	round_store(&vm->mb->round, round);
	b = __atomic_load_n(&vm->block, __ATOMIC_ACQUIRE);
	if (b)
		tern_ram_mark_dirty(b, (uint64_t)((uint8_t *)&vm->mb->round - vm->kg.ram),
				    sizeof(vm->mb->round));
	t0 = tv_now_ns();
	while (!all_served(vm, round)) {
		if (guest_stopped(vm))
			return 0;
		if (tv_now_ns() - t0 > TV_ROUND_WAIT_MS * 1000000ull) {
			tv_log(vm->cfg, LOG_WARNING,
			       "--dirty-rounds: the guest did not finish round %llu's pass in "
			       "%u ms; going on without it",
			       (unsigned long long)round, TV_ROUND_WAIT_MS);
			return 0;
		}
		nanosleep(&tick, NULL);
	}
	return 0;
}

static void rounds_stop(void *opaque)
{
	(void)opaque;
}

static const struct tern_dirty_source_ops rounds_ops = {
    .name = "tern-vm round lock",
    .start = rounds_start,
    .sync = rounds_sync,
    .stop = rounds_stop,
};

int tv_rounds_attach(struct tv_vm *vm, struct tern_session *s, struct tern_error *err)
{
	return tern_dirty_source_add(s, &rounds_ops, vm, err);
}
