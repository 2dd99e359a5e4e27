/* SPDX-License-Identifier: MIT */
/*
 * What ternctl's files share: the kinds of parameter values, the human
 * output (ctl_show.c) and the watch command (ctl_watch.c).
 */
#ifndef TERN_CLI_CTL_H
#define TERN_CLI_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "conn.h"

/* Exit codes (docs/TERNCTL.md). */
#define CTL_EXIT_OK 0
#define CTL_EXIT_ERROR 1 /* the server answered an error; watch: not completed */
#define CTL_EXIT_USAGE 2 /* bad arguments, socket unreachable, no valid reply */

/*
 * How `set` reads a parameter's value and how `params` shows it. A name
 * ternctl does not know (a newer server's) is CTL_KIND_INVALID: its value
 * goes out as an integer when it is one, as a string otherwise.
 */
enum ctl_kind {
	CTL_KIND_INVALID = 0,
	CTL_KIND_INT,
	CTL_KIND_RATE,	  /* bytes/s, 0 = unlimited */
	CTL_KIND_SIZE,	  /* bytes */
	CTL_KIND_MS,	  /* milliseconds */
	CTL_KIND_S,	  /* seconds, 0 = none */
	CTL_KIND_PERCENT, /* % */
	CTL_KIND_NAME,	  /* a string */
	CTL_KIND_MAX,
};

enum ctl_kind ctl_param_kind(const char *name);

/* Field readers that tolerate absent fields (an older server): 0, "", false. */
uint64_t ctl_u64(struct json_object *o, const char *key);
double ctl_double(struct json_object *o, const char *key);
const char *ctl_str(struct json_object *o, const char *key);
bool ctl_bool(struct json_object *o, const char *key);

/* completed, failed, cancelled: nothing changes any more. */
bool ctl_status_final(const char *status);

/*
 * ctl_reply() - CTL_EXIT_OK with the "return" object of @reply (borrowed
 * from it) in *@ret_return; else the server's error (CTL_EXIT_ERROR) or a
 * malformed reply (CTL_EXIT_USAGE), printed to stderr.
 */
int ctl_reply(struct json_object *reply, struct json_object **ret_return);

/* One JSON line, as compact as the server's. */
void ctl_print_json(FILE *out, struct json_object *o);

void ctl_show_query(FILE *out, struct json_object *st);
void ctl_show_params(FILE *out, struct json_object *params);
void ctl_show_param_change(FILE *out, struct json_object *ret);
void ctl_show_caps(FILE *out, struct json_object *caps);
void ctl_show_cap_change(FILE *out, struct json_object *ret);
/* watch: the progress line (no newline), and the summary at the end. */
void ctl_progress_line(struct json_object *st, char *buf, size_t len);
void ctl_show_summary(FILE *out, struct json_object *st);

/* `watch`: returns the exit code. */
int ctl_watch(struct conn *c, bool json, int interval_ms);

#endif /* TERN_CLI_CTL_H */
