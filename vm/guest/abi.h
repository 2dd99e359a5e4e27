/* SPDX-License-Identifier: MIT */
/*
 * The ABI between tern-vm and its guest workload: the mailbox at
 * KG_MAILBOX_GPA and the I/O ports. Included by the freestanding guest code
 * (vm/guest/guest.c) and by the VMM, so it uses fixed-width types only.
 *
 * The VMM fills the parameters before the first KVM_RUN; after that the
 * guest writes the mailbox (its progress counters) and the VMM only reads
 * them, with two exceptions: held_tsc, which the VMM raises while that vCPU
 * is out of the guest (auto-converge's throttle held it out), and round,
 * the migration round the VMM publishes for the round-driven workload
 * (dirty_rounds, see vm/tv_rounds.c); it reports both to libtern as written
 * (tern_ram_mark_dirty()) since KVM's dirty log does not see the VMM's own
 * writes. The mailbox is guest RAM: it migrates with
 * the rest, so a guest resumed on the destination carries on counting where
 * it stopped.
 *
 * Each vCPU owns one struct tv_vcpu_box, on its own cache line, so vCPUs do
 * not bounce lines between each other when they count.
 *
 * Ports (`out` of 32 bits from CPL 3, allowed by the TSS's I/O permission
 * bitmap, which opens TV_PORT_FIRST .. TV_PORT_FIRST + TV_PORT_COUNT - 1
 * (the three ports and the bytes their 32-bit accesses span) and nothing else; every one exits to
 * the VMM as KVM_EXIT_IO): TV_PORT_FILL_DONE  value = vCPU index: this vCPU filled its slice.
 *   TV_PORT_SLEEP      value = microseconds: the guest is ahead of its pace
 *                      (or idle); the VMM sleeps that long, at most
 *                      TV_SLEEP_MAX_US, before it enters the guest again.
 *   TV_PORT_PANIC      value = a TV_PANIC_* code: the guest found the
 *                      mailbox unusable and stops working (it keeps sleeping).
 */
#ifndef TERN_VM_GUEST_ABI_H
#define TERN_VM_GUEST_ABI_H

#include <stdint.h>

#define TV_MAILBOX_MAGIC 0x6d766e726574ull /* "ternvm" */
#define TV_ABI_VERSION 3u
#define TV_MAX_VCPUS 64u
#define TV_PAGE_SIZE 4096ull

#define TV_PORT_FILL_DONE 0x510
#define TV_PORT_SLEEP 0x511
#define TV_PORT_PANIC 0x512
/* The range the VMM opens in the TSS's I/O bitmap. A 32-bit `out` to port p
 * is an access to ports p .. p + 3, and the CPU wants all four bits clear. */
#define TV_PORT_FIRST TV_PORT_FILL_DONE
#define TV_PORT_COUNT (TV_PORT_PANIC + 4u - TV_PORT_FIRST)

#define TV_SLEEP_IDLE_US 10000u /* an idle guest's tick */
#define TV_SLEEP_MIN_US 100u
#define TV_SLEEP_MAX_US 10000u

enum tv_fill {
	TV_FILL_INVALID = 0,
	TV_FILL_RANDOM,
	TV_FILL_TEXT,
	TV_FILL_MAX,
};

enum tv_pattern {
	TV_PATTERN_INVALID = 0,
	TV_PATTERN_SEQUENTIAL,
	TV_PATTERN_RANDOM,
	TV_PATTERN_HOT_COLD, /* 80 % of the writes go to the first 20 % of the set */
	TV_PATTERN_MAX,
};

enum tv_panic {
	TV_PANIC_INVALID = 0,
	TV_PANIC_MAGIC,	 /* wrong magic or ABI version */
	TV_PANIC_VCPU,	 /* vCPU index out of range */
	TV_PANIC_PARAMS, /* fill kind, pattern or tsc_khz out of range */
	TV_PANIC_SLICE,	 /* slice or working set outside RAM */
	TV_PANIC_MAX,
};

/* One vCPU's share. 128 bytes: two cache lines, parameters and counters apart. */
struct tv_vcpu_box {
	/* in: written by the VMM before the first run */
	uint64_t slice_gpa;   /* page-aligned, >= KG_WORK_GPA */
	uint64_t slice_pages; /* pages to fill */
	uint64_t ws_pages;    /* working set: the first ws_pages of the slice */
	uint64_t dirty_rate;  /* bytes/s this vCPU writes; 0 = idle */
	uint64_t seed;
	uint64_t dirty_pages_max; /* dirty phase ends (idle) after so many pages; 0 = never */
	/* live in: TSC ticks the VMM held this vCPU out of the guest (throttle),
	 * in all; written only while the vCPU is out. The pacing does not count
	 * that time, so the guest does not make it up afterwards. */
	uint64_t held_tsc;
	/* in: 0 = the paced dirty phase above. N > 0: instead, rewrite half of
	 * every working-set page once each time the mailbox's round changes,
	 * for the first N changes, then idle; dirty_rate is not used. */
	uint64_t dirty_rounds;
	/* out: written by the guest only */
	uint64_t progress;	/* pages written + idle ticks (sleeps) */
	uint64_t pages_written; /* dirty phase pages */
	uint64_t passes;	/* dirty phase: times the working set was covered */
	uint64_t fill_done;	/* 1 once the slice is filled */
	uint64_t round_served;	/* dirty_rounds: the mailbox round last rewritten for */
	uint64_t out_pad[3];
};

struct tv_mailbox {
	/* in */
	uint64_t magic;
	uint32_t abi_version;
	uint32_t nvcpus;
	uint64_t ram_size;
	uint32_t fill;	  /* enum tv_fill */
	uint32_t pattern; /* enum tv_pattern */
	uint32_t zero_bp; /* pages left zero, in 1/100 % (0..10000) */
	uint32_t tsc_khz; /* for RDTSC pacing */
	/* live in: a new value each migration round (dirty_rounds), written by
	 * the VMM from its dirty-log sync; like held_tsc, reported to libtern
	 * as written. */
	uint64_t round;
	uint64_t in_pad[3];
	struct tv_vcpu_box vcpu[TV_MAX_VCPUS];
};

#endif /* TERN_VM_GUEST_ABI_H */
