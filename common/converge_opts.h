/* SPDX-License-Identifier: MIT */
/*
 * The convergence options tern-vm and tern-loopback share (--auto-converge,
 * --cpu-throttle-*, --max-cpu-throttle, --migration-timeout,
 * --timeout-policy, --pause-before-switchover), and how a source session
 * takes them. Not part of libtern: the programs' own, like json_out.h.
 */
#ifndef TERN_COMMON_CONVERGE_OPTS_H
#define TERN_COMMON_CONVERGE_OPTS_H

#include <stdbool.h>
#include <stdint.h>

#include <tern/tern.h>

/* Zero: the library's default, left alone. */
struct converge_opts {
	bool auto_converge;
	bool pause_before_switchover;
	uint64_t throttle_initial;
	uint64_t throttle_increment;
	uint64_t max_throttle;
	uint64_t migration_timeout; /* s */
	const char *timeout_policy;
};

/* Set what @o asks for on source session @s; the first refusal wins. */
static inline int converge_opts_apply(struct tern_session *s, const struct converge_opts *o,
				      struct tern_error *err)
{
	int ret = 0;

	if (o->auto_converge)
		ret = tern_cap_set(s, "auto-converge", true, err);
	if (!ret && o->pause_before_switchover)
		ret = tern_cap_set(s, "pause-before-switchover", true, err);
	if (!ret && o->throttle_initial)
		ret = tern_param_set(s, "cpu-throttle-initial", o->throttle_initial, err);
	if (!ret && o->throttle_increment)
		ret = tern_param_set(s, "cpu-throttle-increment", o->throttle_increment, err);
	if (!ret && o->max_throttle)
		ret = tern_param_set(s, "max-cpu-throttle", o->max_throttle, err);
	if (!ret && o->migration_timeout)
		ret = tern_param_set(s, "migration-timeout", o->migration_timeout, err);
	if (!ret && o->timeout_policy)
		ret = tern_param_set_str(s, "migration-timeout-policy", o->timeout_policy, err);
	return ret;
}

#endif /* TERN_COMMON_CONVERGE_OPTS_H */
