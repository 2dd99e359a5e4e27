/* SPDX-License-Identifier: MIT */
/*
 * e2e_converge: migrations that need the operator's knobs to end well --
 * live max-bandwidth and downtime-limit changes, migration-timeout and its
 * policies, auto-converge, pause-before-switchover -- driven through the
 * source's management socket while a writer thread keeps dirtying RAM.
 * One scenario per run (--scenario); each is a struct e2e_scenario.
 */
#ifndef TERN_E2E_CONVERGE_H
#define TERN_E2E_CONVERGE_H

#include "e2e.h"
#include "e2e_mgmt.h"

#define MiB ((uint64_t)1 << 20)

struct e2e_conv;

/*
 * struct e2e_scenario - what one run does.
 * @configure: the run's sizes, rates and limits (both sides see them).
 * @before: source, before tern_migrate(): caps and parameters through the
 *	socket. Non-zero: setup failed.
 * @drive: while the migration runs: live changes and their checks. It
 *	returns when the migration should be ending; the harness then waits
 *	for the end (bounded).
 * @after: once both sides ended and the report was read: the scenario's
 *	own checks (the harness already checked the status, RAM and sections).
 * @completes: the migration must complete (else: end `cancelled`, the
 *	source guest running, the destination's never started).
 * @pending: completes with RAM pending in the last estimate (a forced or
 *	a very permissive switchover): expected_ram_us must be non-zero.
 */
struct e2e_scenario {
	const char *name;
	void (*configure)(struct e2e_cfg *cfg);
	int (*before)(struct e2e_conv *c);
	void (*drive)(struct e2e_conv *c);
	void (*after)(struct e2e_conv *c, const struct e2e_report *rep);
	bool completes;
	bool pending;
};

struct e2e_conv {
	const struct e2e_scenario *sc;
	struct e2e_src src;
	struct e2e_mgmt m;
	char sock[108];
	uint64_t start_ns;    /* tern_migrate() */
	uint64_t end_ns;      /* the harness saw the final status */
	uint64_t waited_us;   /* pause-before-switchover: the least time kept waiting */
	uint64_t mark_ram;    /* downtime: ram_transferred when the limit changed */
	uint64_t mark_left;   /* downtime: what that round still had to send then */
	uint64_t mark_rounds; /* rounds when the last live change was made */
	struct tern_stats st; /* the source's, once ended */
};

/* ---- helpers (e2e_converge.c) ---- */

void e2e_sleep_ms(unsigned int ms);
/* Through the socket: set a number / a name, a capability. Failures are
 * counted; return true on success. */
bool e2e_conv_set(struct e2e_conv *c, const char *name, uint64_t value);
bool e2e_conv_set_str(struct e2e_conv *c, const char *name, const char *value);
bool e2e_conv_cap(struct e2e_conv *c, const char *name, bool on);
/* Send @req, expect a reply whose "ok" is @ok and, when not, whose error
 * contains @needle (NULL: any). Failures are counted. */
void e2e_conv_expect(struct e2e_conv *c, const char *req, bool ok, const char *needle);
/* Poll the source's stats (every 5 ms) until @status, or a final one, or
 * @timeout_ms. Returns whether @status was reached; *@st holds the last. */
bool e2e_conv_wait_status(struct e2e_conv *c, enum tern_status status, unsigned int timeout_ms,
			  struct tern_stats *st);
/* Whether the writer wrote a page within @timeout_ms. */
bool e2e_conv_writer_runs(struct e2e_conv *c, unsigned int timeout_ms);
/* Print the round events after round @from (what the source estimated
 * then), reading what is still queued on the socket first. */
void e2e_conv_note_rounds(struct e2e_conv *c, uint64_t from);
/* The writer's pause and resume calls so far. */
void e2e_conv_pauses(struct e2e_conv *c, unsigned int *ret_pauses, unsigned int *ret_resumes);
/* The throttle callback's calls so far (values in c->src.throttle_pct). */
unsigned int e2e_conv_throttle_calls(struct e2e_conv *c);

extern const struct e2e_scenario e2e_scen_bandwidth, e2e_scen_downtime;
extern const struct e2e_scenario e2e_scen_timeout_cancel, e2e_scen_converge, e2e_scen_timeout_force;
extern const struct e2e_scenario e2e_scen_pause_continue, e2e_scen_pause_cancel;
extern const struct e2e_scenario e2e_scen_switchover_learned, e2e_scen_switchover_declared;

#endif /* TERN_E2E_CONVERGE_H */
