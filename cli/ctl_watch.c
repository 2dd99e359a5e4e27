/* SPDX-License-Identifier: MIT */
/*
 * `ternctl watch`: subscribe, then query every interval and redraw one
 * progress line; state events get lines of their own; at a final status,
 * the summary. On a terminal the line is redrawn in place (carriage return,
 * clear to end of line, cut to the terminal's width so that it never
 * wraps); into a pipe or file every update is a line of its own.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"

struct watch {
	bool json;
	bool tty;
	bool shown; /* a progress line is on the terminal, without its newline */
	char last[512];
	char final[16]; /* a state event's final status; "" while none came */
};

static void clear_line(struct watch *w)
{
	if (w->shown)
		fputs("\r\033[K", stdout);
	w->shown = false;
}

/* End the line on screen: what follows (an error, the summary) starts afresh. */
static void end_line(struct watch *w)
{
	if (w->shown)
		fputc('\n', stdout);
	w->shown = false;
	fflush(stdout);
}

static void draw(struct watch *w)
{
	struct winsize ws;
	int cols = 0;

	if (!w->tty) {
		printf("%s\n", w->last);
		fflush(stdout);
		return;
	}
	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws))
		cols = ws.ws_col;
	/* one column short: a line that fills the last column wraps on some terminals */
	printf("\r%.*s\033[K", cols > 1 ? cols - 1 : (int)sizeof(w->last), w->last);
	w->shown = true;
	fflush(stdout);
}

static void on_event(void *opaque, struct json_object *ev, const char *line)
{
	struct watch *w = opaque;
	const char *kind = ctl_str(ev, "event");

	/* kept for a server that ends with its migration (stop()) */
	if (!strcmp(kind, "state") && ctl_status_final(ctl_str(ev, "to")))
		snprintf(w->final, sizeof(w->final), "%s", ctl_str(ev, "to"));
	if (w->json) {
		printf("%s\n", line);
		fflush(stdout);
		return;
	}
	/* Round events: the progress line shows what they say. */
	if (!strcmp(kind, "state")) {
		clear_line(w);
		printf("state: %s -> %s\n", ctl_str(ev, "from"), ctl_str(ev, "to"));
	} else if (!strcmp(kind, "dropped")) {
		clear_line(w);
		printf("(%llu events dropped)\n", (unsigned long long)ctl_u64(ev, "count"));
	} else {
		return;
	}
	if (w->tty && w->last[0])
		draw(w);
	fflush(stdout);
}

/* A failed request or wait: the exit code, after saying why. */
static int stop(struct watch *w, int rc, const char *why)
{
	end_line(w);
	if (rc == -EINTR)
		return 128 + conn_interrupted();
	/*
	 * A VMM may stop its server as its migration ends (tern-vm exits after
	 * a completion): the state event told how it ended, so that is the
	 * answer, though the summary's query came too late.
	 */
	if (rc == -ECONNRESET && w->final[0]) {
		if (!w->json)
			printf("migration %s; the server closed before the summary\n", w->final);
		fflush(stdout);
		return strcmp(w->final, "completed") ? CTL_EXIT_ERROR : CTL_EXIT_OK;
	}
	fprintf(stderr, "ternctl: %s\n", why);
	return CTL_EXIT_USAGE;
}

int ctl_watch(struct conn *c, bool json, int interval_ms)
{
	struct watch w = {.json = json, .tty = !json && isatty(STDOUT_FILENO)};
	struct json_object *reply = NULL, *req, *st;
	char why[512];
	int rc, code;

	c->on_event = on_event;
	c->opaque = &w;
	conn_catch_signals();

	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("subscribe"));
	rc = conn_request(c, req, &reply, why, sizeof(why));
	json_object_put(req);
	if (rc)
		return stop(&w, rc, why);
	code = ctl_reply(reply, &st);
	json_object_put(reply);
	if (code)
		return code;

	for (;;) {
		const char *status;

		req = json_object_new_object();
		json_object_object_add(req, "cmd", json_object_new_string("query"));
		rc = conn_request(c, req, &reply, why, sizeof(why));
		json_object_put(req);
		if (rc)
			return stop(&w, rc, why);
		code = ctl_reply(reply, &st);
		if (code) {
			json_object_put(reply);
			end_line(&w);
			return code;
		}
		status = ctl_str(st, "status");
		if (json) {
			ctl_print_json(stdout, st);
			fflush(stdout);
		} else {
			ctl_progress_line(st, w.last, sizeof(w.last));
			draw(&w);
		}
		if (ctl_status_final(status)) {
			code = strcmp(status, "completed") ? CTL_EXIT_ERROR : CTL_EXIT_OK;
			end_line(&w);
			if (!json)
				ctl_show_summary(stdout, st);
			json_object_put(reply);
			fflush(stdout);
			return code;
		}
		json_object_put(reply);
		rc = conn_wait(c, interval_ms, why, sizeof(why));
		if (rc)
			return stop(&w, rc, why);
	}
}
