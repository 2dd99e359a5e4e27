/* SPDX-License-Identifier: MIT */
/*
 * The library's figures as JSON fields, for the programs' final lines
 * (tern-vm and tern-loopback print the same names, so tern-bench reads
 * either). Not part of libtern: the programs' own, like json_out.h, built
 * into each of them (common/meson.build).
 */
#ifndef TERN_COMMON_STATS_JSON_H
#define TERN_COMMON_STATS_JSON_H

#include <stddef.h>

#include <tern/tern.h>

/*
 * json_append() - printf into @buf (@len bytes) at *@n and move *@n on; a
 * line that would not fit is cut (NUL-terminated) and *@n stops at
 * @len - 1, so callers may append blindly and check once.
 */
void json_append(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * stats_json_lib() - append every figure of @st that is the library's own,
 * as `,"name":value` pairs (the struct's names where they fit a flat line:
 * docs in bench/README.md, "Output"), the CPU figures included
 * (stats_json_cpu()). The caller prints the object's braces and its own
 * fields (side, status, error, what the program did).
 */
void stats_json_lib(char *buf, size_t len, size_t *n, const struct tern_stats *st);

/*
 * stats_json_cpu() - what the migration cost this side in CPU:
 *   cpu_<class>_user_us, cpu_<class>_sys_us   per thread class (struct
 *       tern_stats' cpu_user_us[] / cpu_sys_us[]; classes by
 *       tern_cpu_class_name(): migration send recv prefault digest mgmt other)
 *   cpu_lib_user_us, cpu_lib_sys_us           their sums
 *   cpu_gib_moved                             ram_transferred in GiB: the RAM
 *       the migration carried (normal pages; zero pages cost a scan, not a
 *       page on the wire, and are left out)
 *   cpu_s_per_gib                             (user + system) CPU-seconds of
 *       all classes per GiB moved
 *   cpu_<class>_s_per_gib                     the same for one class
 *   ceiling_<class>_gib_s                     1 / cpu_<class>_s_per_gib: the
 *       GiB/s one core could move if that class were all it ran (the cap of
 *       a stage that is one thread; a class of N threads scales up to N
 *       cores)
 * A ratio without a denominator (nothing moved, a class that cost nothing)
 * is null.
 */
void stats_json_cpu(char *buf, size_t len, size_t *n, const struct tern_stats *st);

#endif /* TERN_COMMON_STATS_JSON_H */
