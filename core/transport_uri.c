/* SPDX-License-Identifier: MIT */
/*
 * Which transport serves a URI: rdma: goes to rdma/, everything else to
 * tcp/, whose parser knows tcp: and unix: and names the schemes it expected.
 */
#include <string.h>

#include "core_priv.h"
#include "rdma/rdma.h"
#include "tcp/tcp.h"
#include "util/hostport.h"

int transport_for_uri(const char *uri, const struct tern_transport_ops **ret_ops,
		      const char **ret_addr, struct tern_error *err)
{
	struct hostport a;
	const char *why, *colon;

	if (uri && !strncmp(uri, "rdma:", 5)) {
		why = hostport_split(uri + 5, &a);
		if (why)
			return tern_error_set(err, -EINVAL,
					      "URI \"%s\": %s (expected rdma:HOST:PORT)", uri, why);
		*ret_ops = &rdma_transport_ops;
		*ret_addr = uri + 5;
		return 0;
	}
	colon = uri ? strchr(uri, ':') : NULL;
	if (colon && strncmp(uri, "tcp:", 4) && strncmp(uri, "unix:", 5))
		return tern_error_set(
		    err, -EPROTONOSUPPORT,
		    "URI \"%s\": unknown transport \"%.*s\" (expected tcp, unix or "
		    "rdma)",
		    uri, (int)MIN((size_t)(colon - uri), 32), uri);
	return tcp_transport_for_uri(uri, ret_ops, ret_addr, err);
}
