/* SPDX-License-Identifier: MIT */
/*
 * ternctl: the operator's command line over a tern management socket
 * (docs/MGMT.md for the protocol, docs/TERNCTL.md for this program).
 *
 * It parses, sends one request, shows the reply: the server checks every
 * value's range and says so in its own words, so ternctl only turns human
 * units into the numbers the protocol takes, and numbers back into units.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "units.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_INTERVAL_MS 500

static const char usage_text[] =
    "usage: ternctl -s PATH [--json] [--timeout DURATION] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  query                  status and figures of the migration\n"
    "  params                 every parameter and its value\n"
    "  set NAME VALUE         set a parameter; VALUE may carry units:\n"
    "                         1.5GiB/s, 100M, 1gbit (rates), 64MiB (sizes),\n"
    "                         300ms, 1.5s, 2m (durations), 20%\n"
    "  caps [NAME on|off]     list the capabilities, or turn one on or off\n"
    "  migrate URI            start migrating to URI (tcp:HOST:PORT, rdma:HOST:PORT,\n"
    "                         unix:PATH; [ADDR] for IPv6)\n"
    "  incoming URI           wait for a migration on URI (tcp:HOST:0 and\n"
    "                         rdma:HOST:0 pick a port)\n"
    "  cancel                 cancel the migration\n"
    "  continue               leave pre-switchover (pause-before-switchover)\n"
    "  postcopy               switch a running migration to postcopy (postcopy-ram\n"
    "                         on both sides; QMP's migrate-start-postcopy)\n"
    "  recover URI            destination paused in postcopy: listen on URI for\n"
    "                         the source's resume (QMP's migrate-recover)\n"
    "  resume URI             source paused in postcopy: reconnect to the\n"
    "                         destination's recover URI and finish\n"
    "  watch [--interval D]   live progress until the migration ends (every 500ms)\n"
    "\n"
    "options:\n"
    "  -s, --socket PATH      the session's management socket\n"
    "  -j, --json             print the server's reply (watch: every query and\n"
    "                         event) as JSON lines\n"
    "  -t, --timeout D        give up on a reply after D (default 10s)\n"
    "  -h, --help             this text\n"
    "\n"
    "exit: 0 done; 1 the server refused (watch: the migration did not complete);\n"
    "2 usage, socket unreachable, or no valid reply. See docs/TERNCTL.md.\n";

static int complain(bool hint, const char *fmt, va_list ap)
{
	fputs("ternctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(hint ? " (ternctl --help for usage)\n" : "\n", stderr);
	return CTL_EXIT_USAGE;
}

/* A command line ternctl cannot make sense of. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = complain(true, fmt, ap);
	va_end(ap);
	return rc;
}

/* A value that does not parse: its parser's message says enough. */
static int value_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int value_error(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = complain(false, fmt, ap);
	va_end(ap);
	return rc;
}

struct opts {
	const char *path;
	bool json;
	int timeout_ms;
	int interval_ms;
	const char *cmd;
	const char *arg[2];
	int nargs;
};

static const struct {
	const char *name;
	int min_args, max_args;
	const char *args;
} commands[] = {
    {"query", 0, 0, ""},	  {"params", 0, 0, ""},
    {"set", 2, 2, " NAME VALUE"}, {"caps", 0, 2, " [NAME on|off]"},
    {"migrate", 1, 1, " URI"},	  {"incoming", 1, 1, " URI"},
    {"cancel", 0, 0, ""},	  {"continue", 0, 0, ""},
    {"postcopy", 0, 0, ""},	  {"watch", 0, 0, " [--interval D]"},
    {"recover", 1, 1, " URI"},	  {"resume", 1, 1, " URI"},
};

/* A duration in ms that fits an int (poll's timeout), at least 1 ms. */
static int parse_ms_opt(const char *opt, const char *s, int *ret_ms)
{
	char why[256];
	uint64_t ms;

	if (units_parse_duration_ms(s, &ms, why, sizeof(why)))
		return value_error("%s: %s", opt, why);
	if (!ms || ms > INT_MAX)
		return value_error("%s: '%s' is outside 1ms..%dms", opt, s, INT_MAX);
	*ret_ms = (int)ms;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	size_t i;
	int c, rc;

	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->interval_ms = DEFAULT_INTERVAL_MS;
	opterr = 0;
	/* "+": stop at the command, so that a value such as "-5" reaches its
	 * parser; ":": tell a missing value from an unknown option */
	while ((c = getopt_long(argc, argv, "+:s:jt:h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->path = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 't':
			rc = parse_ms_opt("--timeout", optarg, &o->timeout_ms);
			if (rc)
				return rc;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(CTL_EXIT_OK);
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	o->cmd = argv[optind++];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(o->cmd, commands[i].name))
			break;
	if (i == sizeof(commands) / sizeof(commands[0]))
		return usage_error("unknown command '%s'", o->cmd);

	/* After the command: its arguments, --json, and watch's --interval. */
	for (; optind < argc; optind++) {
		const char *a = argv[optind];

		if (!strcmp(a, "--json") || !strcmp(a, "-j")) {
			o->json = true;
		} else if (!strcmp(o->cmd, "watch") && !strncmp(a, "--interval=", 11)) {
			rc = parse_ms_opt("--interval", a + 11, &o->interval_ms);
			if (rc)
				return rc;
		} else if (!strcmp(o->cmd, "watch") && !strcmp(a, "--interval")) {
			if (optind + 1 >= argc)
				return usage_error("--interval needs a value");
			rc = parse_ms_opt("--interval", argv[++optind], &o->interval_ms);
			if (rc)
				return rc;
		} else if (!strcmp(o->cmd, "watch") && a[0] == '-') {
			return usage_error("watch: unknown option '%s'", a);
		} else if (o->nargs < 2) {
			o->arg[o->nargs++] = a;
		} else {
			return usage_error("%s: too many arguments (%s%s)", o->cmd, o->cmd,
					   commands[i].args);
		}
	}
	if (o->nargs < commands[i].min_args || o->nargs > commands[i].max_args ||
	    (!strcmp(o->cmd, "caps") && o->nargs == 1))
		return usage_error("%s: expected %s%s", o->cmd, o->cmd, commands[i].args);
	if (!o->path)
		return usage_error("no socket: give it with -s PATH");
	return 0;
}

/* The JSON value of `set NAME VALUE`, or NULL after a usage error. */
static struct json_object *set_value(const char *name, const char *text)
{
	enum ctl_kind kind = ctl_param_kind(name);
	char why[256];
	uint64_t v;
	int rc;

	switch (kind) {
	case CTL_KIND_NAME:
		return json_object_new_string(text);
	case CTL_KIND_RATE:
		rc = units_parse_rate(text, &v, why, sizeof(why));
		break;
	case CTL_KIND_SIZE:
		rc = units_parse_size(text, &v, why, sizeof(why));
		break;
	case CTL_KIND_MS:
		rc = units_parse_duration_ms(text, &v, why, sizeof(why));
		break;
	case CTL_KIND_S:
		rc = units_parse_duration_s(text, &v, why, sizeof(why));
		break;
	case CTL_KIND_PERCENT:
		rc = units_parse_percent(text, &v, why, sizeof(why));
		break;
	case CTL_KIND_INVALID:
		/* Unknown to ternctl: let the server judge both name and value. */
		if (units_parse_uint(text, &v, why, sizeof(why)))
			return json_object_new_string(text);
		rc = 0;
		break;
	default:
		rc = units_parse_uint(text, &v, why, sizeof(why));
		break;
	}
	if (rc) {
		value_error("set %s: %s", name, why);
		return NULL;
	}
	return json_object_new_uint64(v);
}

/* The request for @o, or NULL after a usage error. */
static struct json_object *build_request(const struct opts *o)
{
	struct json_object *req = json_object_new_object(), *v;
	char why[256];
	int on;

	json_object_object_add(req, "cmd", json_object_new_string(o->cmd));
	if (!strcmp(o->cmd, "set")) {
		v = set_value(o->arg[0], o->arg[1]);
		if (!v)
			goto err_req;
		json_object_object_add(req, "name", json_object_new_string(o->arg[0]));
		json_object_object_add(req, "value", v);
	} else if (!strcmp(o->cmd, "caps") && o->nargs == 2) {
		on = units_parse_bool(o->arg[1], why, sizeof(why));
		if (on < 0) {
			value_error("caps %s: %s", o->arg[0], why);
			goto err_req;
		}
		json_object_object_add(req, "name", json_object_new_string(o->arg[0]));
		json_object_object_add(req, "on", json_object_new_boolean(on));
	} else if (!strcmp(o->cmd, "migrate") || !strcmp(o->cmd, "incoming") ||
		   !strcmp(o->cmd, "recover") || !strcmp(o->cmd, "resume")) {
		json_object_object_add(req, "uri", json_object_new_string(o->arg[0]));
	}
	return req;

err_req:
	json_object_put(req);
	return NULL;
}

static void show(const struct opts *o, struct json_object *ret)
{
	if (o->json)
		ctl_print_json(stdout, ret);
	else if (!strcmp(o->cmd, "query"))
		ctl_show_query(stdout, ret);
	else if (!strcmp(o->cmd, "params"))
		ctl_show_params(stdout, ret);
	else if (!strcmp(o->cmd, "set"))
		ctl_show_param_change(stdout, ret);
	else if (!strcmp(o->cmd, "caps") && o->nargs)
		ctl_show_cap_change(stdout, ret);
	else if (!strcmp(o->cmd, "caps"))
		ctl_show_caps(stdout, ret);
	else if (!strcmp(o->cmd, "migrate"))
		printf("migrating to %s\n", o->arg[0]);
	else if (!strcmp(o->cmd, "incoming"))
		printf("waiting for the source on %s\n",
		       *ctl_str(ret, "uri") ? ctl_str(ret, "uri") : o->arg[0]);
	else if (!strcmp(o->cmd, "cancel"))
		printf("cancelling\n");
	else if (!strcmp(o->cmd, "continue"))
		printf("switching over\n");
	else if (!strcmp(o->cmd, "postcopy"))
		printf("switching to postcopy\n");
	else if (!strcmp(o->cmd, "recover"))
		printf("waiting for the source to resume on %s\n",
		       *ctl_str(ret, "uri") ? ctl_str(ret, "uri") : o->arg[0]);
	else if (!strcmp(o->cmd, "resume"))
		printf("resuming postcopy to %s\n", o->arg[0]);
}

int main(int argc, char **argv)
{
	struct json_object *req, *reply = NULL, *ret;
	struct opts o = {0};
	struct conn c;
	char why[512];
	int rc, code;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	if (!strcmp(o.cmd, "watch")) {
		if (conn_open(&c, o.path, o.timeout_ms, why, sizeof(why))) {
			fprintf(stderr, "ternctl: %s\n", why);
			return CTL_EXIT_USAGE;
		}
		code = ctl_watch(&c, o.json, o.interval_ms);
		conn_close(&c);
		return code;
	}

	req = build_request(&o);
	if (!req)
		return CTL_EXIT_USAGE;
	if (conn_open(&c, o.path, o.timeout_ms, why, sizeof(why))) {
		json_object_put(req);
		fprintf(stderr, "ternctl: %s\n", why);
		return CTL_EXIT_USAGE;
	}
	rc = conn_request(&c, req, &reply, why, sizeof(why));
	json_object_put(req);
	conn_close(&c);
	if (rc) {
		fprintf(stderr, "ternctl: %s\n", why);
		return CTL_EXIT_USAGE;
	}
	code = ctl_reply(reply, &ret);
	if (code == CTL_EXIT_OK)
		show(&o, ret);
	json_object_put(reply);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "ternctl: writing the output: %s\n", strerror(errno));
		return CTL_EXIT_USAGE;
	}
	return code;
}
