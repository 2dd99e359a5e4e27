/* SPDX-License-Identifier: MIT */
/*
 * tern-vm internals: the configuration, the VM with its vCPU threads, the
 * device sections and the control thread. Public libtern API only.
 */
#ifndef TERN_VM_TV_H
#define TERN_VM_TV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <tern/tern.h>

#include "guest/abi.h"
#include "kvm_guest.h"
#include "common/converge_opts.h"

struct tv_cfg {
	uint64_t ram;
	uint32_t vcpus;
	enum tv_fill fill;
	uint32_t zero_bp; /* --zero-pct in 1/100 % */
	uint64_t dirty_rate;
	uint64_t dirty_ws;
	uint64_t dirty_pages;  /* the guest stops dirtying after so many pages; 0 = never */
	uint64_t dirty_rounds; /* round-driven workload (guest/abi.h); 0 = paced by dirty_rate */
	enum tv_pattern pattern;
	const char *incoming;
	const char *migrate_to;
	uint32_t channels;
	uint64_t downtime_limit;
	uint64_t max_bandwidth;
	uint64_t avail_switchover_bandwidth;
	uint32_t clear_bitmap_shift;
	const char *codec;     /* multifd-compression (source; the destination follows) */
	uint64_t codec_level;  /* multifd-zstd-level / multifd-zlib-level; 0: default */
	uint64_t xbzrle_cache; /* xbzrle-cache-size; 0: default */
	bool verify;
	bool rdma_pin_all;		/* rdma-pin-all capability */
	bool zero_copy_send;		/* zero-copy-send capability (source) */
	bool postcopy;			/* postcopy-ram capability (both sides) */
	uint64_t postcopy_after_ms;	/* source: tern_postcopy_start() this long after
					 * the start (0: only through --mgmt) */
	uint64_t pc_recover_timeout_ms; /* postcopy-recover-timeout (0: none) */
	uint64_t rdma_pin_limit;	/* rdma-pin-limit, 0: the default */
	uint64_t watch_ms;
	uint64_t timeout_s;
	enum tern_status cancel_on; /* TERN_STATUS_INVALID: none */
	int log_level;		    /* library log level; -1: none */
	const char *mgmt;	    /* tern_mgmt_listen() path; NULL: none */
	/* source only; 0 / NULL: the library's default */
	struct converge_opts conv; /* the source's convergence options */
};

struct tv_vm;

struct tv_vcpu {
	/* immutable after tv_vm_init() */
	struct tv_vm *vm;
	uint32_t idx;
	/* set by the thread that starts it (main, or libtern's load thread on a
	 * destination), under vm->lock; read under it, or after the session ended */
	pthread_t thread;
	bool started;
	/* protected by vm->lock */
	bool fill_reported;
	/* the vCPU's thread only: exits the guest asked for (its `out`s); 0 when
	 * a fault comes first, which means the guest could not start here */
	uint64_t exits;
};

struct tv_vm {
	/* immutable after tv_vm_init() */
	struct kg_vm kg;
	const struct tv_cfg *cfg;
	struct tv_mailbox *mb;
	uint32_t xsave_len; /* 0: KVM_GET_FPU instead of XSAVE */
	bool xsave2;	    /* KVM_GET_XSAVE2 (KVM_CAP_XSAVE2 > 4096) */
	bool has_xcrs;
	uint32_t nxcrs; /* what KVM_GET_XCRS reports (the "cpu" section's size) */
	/* set before the migration starts: where the VMM's own writes to guest
	 * RAM (held_tsc, and round from the migration thread) are reported;
	 * NULL: nowhere (no migration, or before tern_session_free()). Written
	 * under ->lock; the vCPUs load it and mark under ->lock too */
	struct tern_ram_block *block;
	/* stop_req mirrors pause_req || quit for the vCPU threads' lock-free check */
	bool stop_req;
	/* written under ->lock, read lock-free: the throttle holds the vCPUs out */
	bool hold_req;
	/* vCPU threads, atomic: ns they were held out, summed over vCPUs */
	uint64_t held_ns;
	/* the migration thread only (tv_rounds.c): dirty-log syncs this migration */
	uint64_t round_syncs;
	/* protected by ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;
	bool quit;
	uint32_t nstarted;
	uint32_t nparked; /* parked or ended */
	uint32_t nfill_done;
	uint64_t fill_done_ns;
	char fatal[384]; /* first vCPU failure; "" while none */
	/* the throttle (auto-converge), also under ->lock; throttle_cond wakes
	 * the throttle thread, on CLOCK_MONOTONIC */
	pthread_cond_t throttle_cond;
	pthread_t throttle_thread;
	bool throttle_started;
	uint32_t throttle_pct;
	uint32_t throttle_max;
	struct tv_vcpu vcpu[KG_MAX_VCPUS];
};

/* tern-vm.c */
uint64_t tv_now_ns(void);
int tv_err(struct tern_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tv_log(const struct tv_cfg *cfg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* tv_vcpu.c: the VM and its vCPU threads */
int tv_vm_init(struct tv_vm *vm, const struct tv_cfg *cfg, bool source, struct tern_error *err);
void tv_vm_fini(struct tv_vm *vm);
int tv_vcpus_start(struct tv_vm *vm, struct tern_error *err);
int tv_vcpus_pause(struct tv_vm *vm, struct tern_error *err);
void tv_vcpus_resume(struct tv_vm *vm);
void tv_vcpus_stop(struct tv_vm *vm);
bool tv_vm_failed(struct tv_vm *vm, char *buf, size_t len);
bool tv_fill_done(struct tv_vm *vm, uint64_t *ret_ns);
uint64_t tv_progress(struct tv_vm *vm);
void tv_vm_set_block(struct tv_vm *vm, struct tern_ram_block *b);

/*
 * tv_rounds_attach() - source, --dirty-rounds: plug in the dirty source that
 * locks the guest's round-driven workload to the migration's rounds
 * (tv_rounds.c). Before tern_kvm_log_attach(): its sync runs first.
 */
int tv_rounds_attach(struct tv_vm *vm, struct tern_session *s, struct tern_error *err);
void tv_vm_throttle(struct tv_vm *vm, unsigned int percent);
/* The throttle now and at most (percent), and the vCPU time held out (ms, summed). */
void tv_throttle_stats(struct tv_vm *vm, uint32_t *ret_now, uint32_t *ret_max,
		       uint64_t *ret_held_ms);

/* tv_cpu_state.c: the "vm" and "cpu" device sections */
int tv_sections_register(struct tern_session *s, struct tv_vm *vm, struct tern_error *err);

/* tv_ctl.c: signals, --timeout and --cancel-on, on a thread of their own */
struct tv_ctl;
int tv_ctl_start(const struct tv_cfg *cfg, struct tv_ctl **ret_ctl, struct tern_error *err);
void tv_ctl_set_session(struct tv_ctl *c, struct tern_session *s);
void tv_ctl_state_changed(struct tv_ctl *c, enum tern_status to);
void tv_ctl_cancel(struct tv_ctl *c);
bool tv_ctl_interrupted(struct tv_ctl *c);
unsigned int tv_ctl_signals(struct tv_ctl *c);
bool tv_ctl_timed_out(struct tv_ctl *c);
void tv_ctl_stop(struct tv_ctl *c);

#endif /* TERN_VM_TV_H */
