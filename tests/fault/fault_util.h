/* SPDX-License-Identifier: MIT */
/*
 * Harness for the fault tests: guest RAM fenced by PROT_NONE guard pages, a
 * VMM stand-in that counts pause and resume (and can hold pause until the
 * test lets it go), real source and destination sessions built from a
 * table of RAM blocks and sections, a watchdog, and the case runner.
 *
 * Every case runs in its own process (one meson test() each), so a stray
 * write into a guard page, a leak or a hang fails exactly that case.
 */
#ifndef TERN_FAULT_UTIL_H
#define TERN_FAULT_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tern/tern.h>

#include "tests/cmocka_compat.h"

/* How long a test waits for a session to reach a final state. */
#define FAULT_WAIT_MS 30000
/* The watchdog: a hang fails the case before meson's timeout does. */
#define FAULT_WATCHDOG_S 100

/* ---- guest RAM with guard pages ------------------------------------------ */

#define GUARD_SIZE (1u << 20)

struct guarded_ram {
	uint8_t *map; /* PROT_NONE guard | RAM | PROT_NONE guard */
	size_t map_len;
	uint8_t *host;
	size_t size;
};

void guarded_ram_alloc(struct guarded_ram *r, size_t size);
void guarded_ram_free(struct guarded_ram *r);
/* Fill every page with bytes derived from @seed and its index: no zero page. */
void ram_fill_pattern(uint8_t *p, size_t size, uint32_t seed);
bool ram_is_zero(const uint8_t *p, size_t size);

/* ---- the VMM stand-in ------------------------------------------------------ */

struct vmm_probe {
	const char *side;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* protected by ->lock */
	unsigned int pauses;
	unsigned int resumes;
	bool hold_pause;    /* pause() waits until probe_release_pause() */
	bool in_pause;	    /* pause() was entered */
	bool pause_release; /* probe_release_pause() was called */
};

extern const struct tern_vmm_ops probe_ops;

void probe_init(struct vmm_probe *p, const char *side);
void probe_fini(struct vmm_probe *p);
unsigned int probe_pauses(struct vmm_probe *p);
unsigned int probe_resumes(struct vmm_probe *p);
/* Wait until pause() was entered; false after @timeout_ms. */
bool probe_wait_in_pause(struct vmm_probe *p, int timeout_ms);
void probe_release_pause(struct vmm_probe *p);

/* ---- sessions -------------------------------------------------------------- */

struct ram_spec {
	const char *name;
	size_t size;
};

struct sec_spec {
	const char *name;
	uint32_t instance;
	uint32_t version;
	uint32_t min_version;
	bool fail_save; /* save() fails with FAULT_SAVE_MSG */
};

#define FAULT_SAVE_MSG "fault injection: device refused to save its state"
#define PEER_MAX_RAM 4
#define PEER_MAX_SECS 4

struct peer {
	struct tern_session *s;
	struct vmm_probe probe;
	struct guarded_ram ram[PEER_MAX_RAM];
	struct tern_ram_block *blocks[PEER_MAX_RAM];
	unsigned int nram;
	struct sec_spec secs[PEER_MAX_SECS];
	unsigned int nsecs;
	char uri[300];
};

/*
 * peer_new() - a session with guarded RAM blocks and sections registered.
 * @source: fill the RAM with a pattern (no zero pages); a destination's RAM
 * stays untouched (zero).
 */
void peer_new(struct peer *p, bool source, const struct ram_spec *rs, unsigned int nram,
	      const struct sec_spec *ss, unsigned int nsecs);
/* Destination: tern_incoming() on @listen_uri, the real URI into p->uri. */
void peer_listen(struct peer *p, const char *listen_uri);
/* tern_session_free(), then the RAM; all of it checked by ASan in CI. */
void peer_free(struct peer *p);
void peer_param(struct peer *p, const char *name, uint64_t v);

/*
 * A dirty-log provider that reports every page of every block dirty on each
 * sync (blocks of up to 64 MiB): the migration never converges and stays
 * active until cancelled or failed.
 */
void peer_add_always_dirty(struct peer *p);

/* Wait for a final status and return the stats then (asserts it is final). */
void peer_wait_final(struct peer *p, struct tern_stats *st);
/* Poll until the status is @want (true) or final / @timeout_ms (false). */
bool peer_wait_status(struct peer *p, enum tern_status want, int timeout_ms);
/* Poll until stats show @bytes of RAM moved; false on a final status. */
bool peer_wait_transferred(struct peer *p, uint64_t bytes, int timeout_ms);
/* Until worker channel @index of destination @p joined; false on a final state
 * or after @timeout_ms. */
bool peer_wait_channel_joined(struct peer *p, uint32_t index, int timeout_ms);

/*
 * expect_final() - the session ended in @want with an error message that
 * contains @needle; returns nothing, asserts. Prints the message.
 */
void expect_final(struct peer *p, enum tern_status want, const char *needle);

/* A fresh unix socket path for this process: "unix:/tmp/tern-fault-PID-N.sock". */
void unix_uri(char *buf, size_t len);

/* ---- running one case ------------------------------------------------------ */

/*
 * fault_teardown() - every case's teardown: once the sessions are freed, no
 * thread but the test's own may be left (the library joins all of its own).
 */
int fault_teardown(void **state);
#define FAULT_CASE(f) cmocka_unit_test_teardown(f, fault_teardown)

/*
 * fault_main() - run the case named argv[1] (or all with no argument) under
 * the watchdog; returns the process exit status.
 */
int fault_main(const char *group, const struct CMUnitTest *tests, size_t ntests, int argc,
	       char **argv);

/* A call that returns 0 or a negative errno: fail the test with both. */
#define CHECK(call)                                                                                \
	do {                                                                                       \
		int _r = (call);                                                                   \
		if (_r)                                                                            \
			fail_msg("%s: %d (%s)", #call, _r, strerror(-_r));                         \
	} while (0)

/* A call that takes a struct tern_error * named err as its last argument. */
#define CHECK_ERR(call)                                                                            \
	do {                                                                                       \
		struct tern_error err = {0};                                                       \
		int _r = (call);                                                                   \
		if (_r)                                                                            \
			fail_msg("%s: %s", #call, err.msg);                                        \
	} while (0)

#endif /* TERN_FAULT_UTIL_H */
