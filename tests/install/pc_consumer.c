/* SPDX-License-Identifier: MIT */
/*
 * A VMM in miniature, built by tests/install/install-test.sh against the
 * installed tree only (<tern/tern.h> and `pkg-config --cflags --libs tern`),
 * never against the source tree: it proves that the installed headers, the
 * library and tern.pc are enough. It makes a session and frees it.
 */
#include <stdio.h>
#include <string.h>

#include <tern/kvm.h>
#include <tern/tern.h>

static int consumer_pause(void *opaque, struct tern_error *err)
{
	return 0;
}

static void consumer_resume(void *opaque)
{
}

int main(void)
{
	const struct tern_vmm_ops ops = {.pause = consumer_pause, .resume = consumer_resume};
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	int ret;

	ret = tern_session_new(&ops, NULL, &s, &err);
	if (ret < 0 || !s) {
		fprintf(stderr, "pc_consumer: tern_session_new: %d %s\n", ret, err.msg);
		return 1;
	}
	if (strcmp(tern_status_name(TERN_STATUS_COMPLETED), "completed")) {
		fprintf(stderr, "pc_consumer: tern_status_name: %s\n",
			tern_status_name(TERN_STATUS_COMPLETED));
		tern_session_free(s);
		return 1;
	}
	tern_session_free(s);
	printf("pc_consumer: a session made and freed through the installed libtern\n");
	return 0;
}
