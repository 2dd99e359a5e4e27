/* SPDX-License-Identifier: MIT */
/*
 * What the parts of e2e_kvm share: the limits and the settings read from the
 * command line and the environment (e2e_kvm.c), CHECK(), the JSON field
 * readers, the tern-vm pair runner (kvm_pair.c) and the management-socket
 * client (kvm_mgmt.c).
 */
#ifndef TERN_E2E_KVM_H
#define TERN_E2E_KVM_H

#include "bench_proc.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NS_PER_S 1000000000ull
#define EXIT_SKIP 77
/* The guest size every figure below is written for (TERN_KVM_TEST_RAM scales them). */
#define BASE_RAM (512ull << 20)
/* Bounds a hang; the meson timeout is larger still (at TERN_KVM_TEST_TIMEOUT_SCALE 1). */
#define PAIR_DEADLINE_S 300
/* tern-vm's own timeout for its migration. */
#define VM_TIMEOUT_S 240
/* How long a destination may outlive its source before we SIGTERM it. */
#define DEST_GRACE_S 30

/* Set once by main() before any case runs (kvm_settings.c). */
extern const char *vm_path;
extern const char *bench_path;
extern int failures;
extern uint64_t test_ram;   /* TERN_KVM_TEST_RAM */
extern double time_scale;   /* TERN_KVM_TEST_TIMEOUT_SCALE */
extern char vm_timeout[24]; /* VM_TIMEOUT_S scaled, for --timeout */

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...);

/* the environment's settings into test_ram, time_scale, vm_timeout */
void e2e_read_env(void);

/* scaling for slow hosts (kvm_settings.c) */
uint64_t scaled(uint64_t at_base, bool pages);
const char *scaled_arg(char *s, uint64_t at_base, bool pages);
uint64_t deadline_in(unsigned int seconds);

/* JSON fields (kvm_settings.c) */
const char *jstr(json_object *o, const char *key);
int jbool(json_object *o, const char *key);
double jnum(json_object *o, const char *key);
bool streq(const char *a, const char *b);

/* ---- a pair of tern-vm (kvm_pair.c) ---------------------------------------------------- */

struct pair;

struct pair_cfg {
	const char *src_ram;
	const char *dst_ram;
	const char *transport;
	const char *channels;
	const char *const *src_extra; /* NULL-terminated */
	const char *const *dst_extra; /* NULL-terminated */
	bool kill_dest_mid;	      /* SIGKILL the destination once pages land */
	unsigned int dest_grace_s;    /* SIGTERM a destination that outlives its
				       * source by so long; 0: DEST_GRACE_S */
	/* runs once both are started, before waiting for the end; it must
	 * keep pumping the pair (pair_pump()) while it waits */
	void (*during)(struct pair *p, void *ctx, uint64_t deadline);
	void *ctx;
};

struct pair {
	struct bench_proc src, dst;
	json_object *sj, *dj; /* final lines */
	int src_code, dst_code;
	bool dst_termed; /* we had to SIGTERM the destination */
	bool dst_killed_mid;
	char sock[96];
};

json_object *last_object(struct bench_proc *p, bool skip_first);
void run_pair(const struct pair_cfg *c, struct pair *p);
void pair_fini(struct pair *p);
void pair_pump(struct pair *p, unsigned int ms);
void expect_source_guest_running(const struct pair *p);
void expect_dest_never_resumed(const struct pair *p, bool allow_cancelled);

/* ---- a management-socket client (kvm_mgmt.c, docs/MGMT.md) ----------------------------- */

struct mgmt {
	int fd;
	size_t len;
	char buf[1 << 16];
};

bool mgmt_connect(struct mgmt *m, const char *path, struct pair *p, const struct bench_proc *who,
		  uint64_t deadline);
void mgmt_close(struct mgmt *m);
json_object *mgmt_call(struct mgmt *m, const char *req, struct pair *p, uint64_t deadline);
const char *mgmt_status(struct mgmt *m, struct pair *p, uint64_t deadline, char *buf, size_t len);

#endif
