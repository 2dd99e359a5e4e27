/* SPDX-License-Identifier: MIT */
/*
 * Device sections. The VMM registers each device's state under (name,
 * instance) with a version and the oldest version its loader still reads.
 * At switchover the source saves each into a buffer and sends it as one
 * SECTION_FULL frame:
 *
 *   id u32 | name (u16 length + bytes) | instance u32 | version u32 |
 *   payload length u32 | payload | footer: id u32 again
 *
 * The footer repeating the id is a cheap desync detector. The destination
 * refuses a section it does not know, a version outside what its loader
 * accepts, and a loader that leaves bytes unread.
 */
#include <stdlib.h>

#include "core_priv.h"

TERN_EXPORT int tern_section_register(struct tern_session *s, const char *name, uint32_t instance,
				      uint32_t version, uint32_t min_version,
				      const struct tern_section_ops *ops, void *opaque,
				      struct tern_error *err)
{
	struct section *sec;
	uint32_t i;

	if (s->started)
		return tern_error_set(err, -EBUSY, "section '%s': register before the migration",
				      name ? name : "");
	if (!name || !*name || strlen(name) > 255)
		return tern_error_set(err, -EINVAL, "section name must be 1..255 bytes");
	if (!ops || !ops->save || !ops->load)
		return tern_error_set(err, -EINVAL, "section '%s': save and load are required",
				      name);
	if (!version || min_version > version || !min_version)
		return tern_error_set(err, -EINVAL,
				      "section '%s': versions must satisfy 1 <= min_version (%u) "
				      "<= version (%u)",
				      name, min_version, version);
	for (i = 0; i < s->nsections; i++)
		if (!strcmp(s->sections[i]->name, name) && s->sections[i]->instance == instance)
			return tern_error_set(err, -EEXIST,
					      "section '%s' instance %u is registered already",
					      name, instance);
	if (s->nsections == MAX_SECTIONS)
		return tern_error_set(err, -ENOSPC, "more than %u sections", MAX_SECTIONS);
	sec = calloc(1, sizeof(*sec));
	if (!sec)
		return tern_error_set(err, -ENOMEM, "out of memory");
	strcpy(sec->name, name);
	sec->instance = instance;
	sec->version = version;
	sec->min_version = min_version;
	sec->ops = *ops;
	sec->opaque = opaque;
	s->sections[s->nsections++] = sec;
	return 0;
}

TERN_EXPORT int tern_section_put(struct tern_section_writer *w, const void *data, size_t len)
{
	if (w->buf.len + len > SECTION_MAX_PAYLOAD)
		return -EMSGSIZE;
	buf_put(&w->buf, data, len);
	return w->buf.oom ? -ENOMEM : 0;
}

TERN_EXPORT int tern_section_put_u32(struct tern_section_writer *w, uint32_t v)
{
	uint8_t t[4];

	put_be32(t, v);
	return tern_section_put(w, t, 4);
}

TERN_EXPORT int tern_section_put_u64(struct tern_section_writer *w, uint64_t v)
{
	uint8_t t[8];

	put_be64(t, v);
	return tern_section_put(w, t, 8);
}

TERN_EXPORT int tern_section_get(struct tern_section_reader *r, void *data, size_t len)
{
	const uint8_t *p;

	if (len > rd_left(&r->rd))
		return -EPROTO;
	p = rd_bytes(&r->rd, len);
	if (len)
		memcpy(data, p, len);
	return 0;
}

TERN_EXPORT int tern_section_get_u32(struct tern_section_reader *r, uint32_t *ret_v)
{
	uint8_t t[4];
	int ret = tern_section_get(r, t, 4);

	if (!ret)
		*ret_v = get_be32(t);
	return ret;
}

TERN_EXPORT int tern_section_get_u64(struct tern_section_reader *r, uint64_t *ret_v)
{
	uint8_t t[8];
	int ret = tern_section_get(r, t, 8);

	if (!ret)
		*ret_v = get_be64(t);
	return ret;
}

TERN_EXPORT size_t tern_section_remaining(const struct tern_section_reader *r)
{
	return rd_left(&r->rd);
}

uint64_t sections_size_estimate(struct tern_session *s)
{
	uint64_t bytes = 0;
	uint32_t i;

	for (i = 0; i < s->nsections; i++) {
		const struct section *sec = s->sections[i];
		size_t n = sec->ops.size ? sec->ops.size(sec->opaque) : 0;

		/* the frame around the payload: as sections_save_all() builds it */
		bytes += CTL_HDR_SIZE + 5 * 4 + strlen(sec->name) + MIN(n, SECTION_MAX_PAYLOAD);
	}
	return bytes;
}

int sections_save_all(struct tern_session *s, struct tern_conn *ctl, uint64_t *ret_bytes,
		      struct tern_error *err)
{
	struct tern_section_writer w;
	struct buf frame;
	uint64_t bytes = 0;
	uint32_t i;
	int ret = 0;

	buf_init(&w.buf);
	buf_init(&frame);
	for (i = 0; i < s->nsections; i++) {
		const struct section *sec = s->sections[i];

		buf_reset(&w.buf);
		ret = sec->ops.save(sec->opaque, &w, err);
		if (ret) {
			if (err && err->code)
				tern_error_prefix(err, "saving section '%s' instance %u", sec->name,
						  sec->instance);
			else
				tern_error_set(err, ret, "saving section '%s' instance %u failed",
					       sec->name, sec->instance);
			break;
		}
		if (w.buf.oom) {
			ret =
			    tern_error_set(err, -ENOMEM, "section '%s': out of memory", sec->name);
			break;
		}
		buf_reset(&frame);
		buf_put_u32(&frame, i);
		buf_put_str(&frame, sec->name);
		buf_put_u32(&frame, sec->instance);
		buf_put_u32(&frame, sec->version);
		buf_put_u32(&frame, (uint32_t)w.buf.len);
		buf_put(&frame, w.buf.data, w.buf.len);
		buf_put_u32(&frame, i);
		if (frame.oom) {
			ret =
			    tern_error_set(err, -ENOMEM, "section '%s': out of memory", sec->name);
			break;
		}
		ret = ctl_send(ctl, CTL_SECTION_FULL, frame.data, frame.len);
		if (ret) {
			tern_error_set(err, ret, "sending section '%s': %s", sec->name,
				       strerror(-ret));
			break;
		}
		bytes += CTL_HDR_SIZE + frame.len;
	}
	buf_fini(&w.buf);
	buf_fini(&frame);
	*ret_bytes = bytes;
	return ret;
}

int section_load(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err)
{
	struct tern_section_reader reader;
	const struct section *sec = NULL;
	uint32_t id, instance, version, plen, footer, i;
	const uint8_t *payload;
	char name[256];
	struct rd r;
	int ret;

	rd_init(&r, p, len);
	id = rd_u32(&r);
	rd_str(&r, name, sizeof(name));
	instance = rd_u32(&r);
	version = rd_u32(&r);
	plen = rd_u32(&r);
	if (r.bad)
		return tern_error_set(err, -EPROTO, "section frame: truncated header");
	payload = rd_bytes(&r, plen);
	footer = rd_u32(&r);
	if (r.bad)
		return tern_error_set(err, -EPROTO,
				      "section '%s': payload of %u bytes overruns its frame", name,
				      plen);
	if (footer != id)
		return tern_error_set(err, -EPROTO,
				      "section '%s': footer %u does not match id %u (stream out "
				      "of sync)",
				      name, footer, id);
	if (rd_left(&r))
		return tern_error_set(err, -EPROTO, "section '%s': %zu trailing bytes", name,
				      rd_left(&r));
	for (i = 0; i < s->nsections; i++) {
		if (!strcmp(s->sections[i]->name, name) && s->sections[i]->instance == instance) {
			sec = s->sections[i];
			break;
		}
	}
	if (!sec)
		return tern_error_set(err, -ENOENT, "unknown section '%s' instance %u", name,
				      instance);
	if (version > sec->version || version < sec->min_version)
		return tern_error_set(err, -EPROTONOSUPPORT,
				      "section '%s' instance %u: version %u, this destination "
				      "loads %u..%u",
				      name, instance, version, sec->min_version, sec->version);
	rd_init(&reader.rd, payload, plen);
	ret = sec->ops.load(sec->opaque, &reader, version, err);
	if (ret) {
		if (err && err->code)
			return tern_error_prefix(err, "loading section '%s' instance %u", name,
						 instance);
		return tern_error_set(err, ret, "loading section '%s' instance %u failed", name,
				      instance);
	}
	if (rd_left(&reader.rd))
		return tern_error_set(
		    err, -EPROTO, "section '%s' instance %u: loader left %zu of %u bytes unread",
		    name, instance, rd_left(&reader.rd), plen);
	return 0;
}
