/* SPDX-License-Identifier: MIT */
/*
 * Fake source and fake destination; see fake_peer.h. The frames are built
 * with core/'s own encoders (buf_put_*, ctl_send, mf_hdr_encode,
 * mf_hello_encode), so a well-formed frame here is exactly what a real peer
 * sends, and a malformed one differs only in the field a test breaks.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "compress/compress.h"
#include "tcp/tcp.h"

#include "fake_peer.h"

/* ---- shared ---------------------------------------------------------------- */

static int dial_fd(const char *uri, struct tern_error *err)
{
	int fd, ret;

	if (!strncmp(uri, "tcp:", 4)) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
		struct addrinfo *res;
		struct hostport a;

		ret = tcp_addr_parse(uri + 4, &a, err);
		if (ret)
			return ret;
		ret = getaddrinfo(a.host, a.port, &hints, &res);
		if (ret)
			return tern_error_set(err, -EADDRNOTAVAIL, "fake peer: resolve %s: %s", uri,
					      gai_strerror(ret));
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen)) {
			ret = -errno;
			close(fd);
			fd = ret;
		} else if (fd < 0) {
			fd = -errno;
		}
		freeaddrinfo(res);
	} else if (!strncmp(uri, "unix:", 5)) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		if (strlen(uri + 5) >= sizeof(sun.sun_path))
			return tern_error_set(err, -ENAMETOOLONG, "fake peer: %s: path too long",
					      uri);
		strcpy(sun.sun_path, uri + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
			ret = -errno;
			close(fd);
			fd = ret;
		} else if (fd < 0) {
			fd = -errno;
		}
	} else {
		return tern_error_set(err, -EINVAL, "fake peer: unsupported URI %s", uri);
	}
	if (fd < 0)
		return tern_error_set(err, fd, "fake peer: connect to %s: %s", uri, strerror(-fd));
	return fd;
}

int fp_dial(const char *uri, struct tern_conn **ret_conn, int *ret_fd, struct tern_error *err)
{
	struct timeval tv = {.tv_sec = FP_RECV_TIMEOUT_MS / 1000};
	int fd, ret;

	fd = dial_fd(uri, err);
	if (fd < 0)
		return fd;
	/* A fake peer never waits forever: the destination may hang by mistake. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))) {
		ret = -errno;
		close(fd);
		return tern_error_set(err, ret, "fake peer: socket timeouts: %s", strerror(-ret));
	}
	ret = tcp_conn_from_fd(fd, uri, ret_conn, err);
	if (ret)
		return ret;
	if (ret_fd)
		*ret_fd = fd;
	return 0;
}

int fp_hello_encode(struct buf *b, const uint8_t uuid[16], uint32_t page_size, uint32_t nchannels,
		    uint32_t codec, uint64_t caps, const struct fp_block *blocks, uint32_t nblocks)
{
	uint32_t i;

	buf_put(b, uuid, 16);
	buf_put_u32(b, page_size);
	buf_put_u32(b, nchannels);
	buf_put_u32(b, codec);
	buf_put_u32(b, 1); /* zlib level */
	buf_put_u32(b, 1); /* zstd level */
	buf_put_u64(b, caps);
	buf_put_u32(b, nblocks);
	for (i = 0; i < nblocks; i++) {
		buf_put_str(b, blocks[i].name);
		buf_put_u64(b, blocks[i].size);
	}
	return b->oom ? -ENOMEM : 0;
}

/* ---- fake source ------------------------------------------------------------ */

void fsrc_init(struct fake_src *fs, const char *uri, uint32_t nchannels)
{
	uint32_t i;

	memset(fs, 0, sizeof(*fs));
	snprintf(fs->uri, sizeof(fs->uri), "%s", uri);
	fs->ctl_fd = -1;
	fs->page_size = (uint32_t)getpagesize();
	fs->nchannels = nchannels;
	fs->method = TERN_CODEC_NONE;
	for (i = 0; i < FP_MAX_CHANNELS; i++)
		fs->round[i] = 1;
	if (tern_uuid_generate(fs->uuid))
		memset(fs->uuid, 0x5a, sizeof(fs->uuid));
}

int fsrc_connect(struct fake_src *fs, struct tern_error *err)
{
	return fp_dial(fs->uri, &fs->ctl, &fs->ctl_fd, err);
}

int fsrc_send_stream_hdr(struct fake_src *fs, uint32_t magic, uint32_t version)
{
	uint8_t h[CTL_STREAM_HDR_SIZE];

	put_be32(h, magic);
	put_be32(h + 4, version);
	return conn_send(fs->ctl, h, sizeof(h));
}

int fsrc_send_frame(struct fake_src *fs, uint16_t type, const void *p, size_t len)
{
	return ctl_send(fs->ctl, (enum ctl_type)type, p, len);
}

int fsrc_send_frame_raw(struct fake_src *fs, uint16_t type, uint16_t flags, uint32_t claimed_len,
			const void *p, size_t len)
{
	uint8_t h[CTL_HDR_SIZE];
	struct iovec iov[2] = {
	    {.iov_base = h, .iov_len = sizeof(h)},
	    {.iov_base = (void *)p, .iov_len = len},
	};

	put_be16(h, type);
	put_be16(h + 2, flags);
	put_be32(h + 4, claimed_len);
	return conn_send_iov(fs->ctl, iov, len ? 2 : 1);
}

int fsrc_send_hello(struct fake_src *fs, const struct fp_block *blocks, uint32_t nblocks)
{
	struct buf b;
	int ret;

	buf_init(&b);
	ret = fp_hello_encode(&b, fs->uuid, fs->page_size, fs->nchannels, fs->method, fs->caps,
			      blocks, nblocks);
	if (!ret)
		ret = fsrc_send_frame(fs, CTL_HELLO, b.data, b.len);
	buf_fini(&b);
	return ret;
}

int fsrc_recv_rp_hdr(struct fake_src *fs, struct tern_error *err)
{
	return ctl_recv_stream_hdr(fs->ctl, CTL_RP_MAGIC, "fake source: return path", err);
}

int fsrc_expect_ack(struct fake_src *fs, struct tern_error *err)
{
	uint16_t type;
	uint8_t *p;
	uint32_t len;
	int ret;

	ret = ctl_recv(fs->ctl, "fake source: return path", &type, &p, &len, err);
	if (ret)
		return ret;
	if (type == CTL_ERROR) {
		ctl_decode_error(p, len, "destination refused HELLO", err);
		ret = err && err->code ? err->code : -EPROTO;
	} else if (type != CTL_HELLO_ACK) {
		ret = tern_error_set(err, -EPROTO, "fake source: expected HELLO_ACK, got %s",
				     ctl_type_name(type));
	}
	free(p);
	return ret;
}

int fsrc_read_error(struct fake_src *fs, struct tern_error *peer_err, struct tern_error *err)
{
	uint16_t type;
	uint8_t *p;
	uint32_t len;
	int ret, i;

	/* Acks and reports may come first (HELLO_ACK, RAM_SYNC_ACK ...). */
	for (i = 0; i < FP_MAX_SKIPPED_FRAMES; i++) {
		ret = ctl_recv(fs->ctl, "fake source: return path", &type, &p, &len, err);
		if (ret)
			return ret;
		if (type == CTL_ERROR) {
			tern_error_clear(peer_err);
			ctl_decode_error(p, len, "destination", peer_err);
			free(p);
			return 0;
		}
		free(p);
	}
	return tern_error_set(err, -EPROTO, "fake source: no ERROR in %d return-path frames",
			      FP_MAX_SKIPPED_FRAMES);
}

int fsrc_handshake(struct fake_src *fs, const struct fp_block *blocks, uint32_t nblocks,
		   struct tern_error *err)
{
	int ret;

	ret = fsrc_connect(fs, err);
	if (ret)
		return ret;
	ret = fsrc_send_stream_hdr(fs, CTL_MAGIC, CTL_VERSION);
	if (!ret)
		ret = fsrc_send_hello(fs, blocks, nblocks);
	if (ret)
		return tern_error_set(err, ret, "fake source: sending HELLO: %s", strerror(-ret));
	ret = fsrc_recv_rp_hdr(fs, err);
	if (ret)
		return ret;
	return fsrc_expect_ack(fs, err);
}

int fsrc_open_channel(struct fake_src *fs, uint32_t i, const uint8_t uuid[16],
		      struct tern_error *err)
{
	uint8_t hello[MF_HELLO_SIZE];
	int ret;

	if (i >= FP_MAX_CHANNELS || fs->chan[i])
		return tern_error_set(err, -EINVAL, "fake source: channel %u", i);
	ret = fp_dial(fs->uri, &fs->chan[i], NULL, err);
	if (ret)
		return ret;
	mf_hello_encode(hello, uuid, i, fs->nchannels + fs->urgent);
	ret = conn_send(fs->chan[i], hello, sizeof(hello));
	if (ret)
		return tern_error_set(err, ret, "fake source: channel %u hello: %s", i,
				      strerror(-ret));
	return 0;
}

int fsrc_open_channels(struct fake_src *fs, struct tern_error *err)
{
	uint32_t i;
	int ret;

	for (i = 0; i < fs->nchannels + fs->urgent; i++) {
		ret = fsrc_open_channel(fs, i, fs->uuid, err);
		if (ret)
			return ret;
	}
	return 0;
}

int fsrc_send_pkt_hdr(struct fake_src *fs, uint32_t chan, const struct mf_packet_hdr *h)
{
	uint8_t b[MF_HDR_SIZE];

	mf_hdr_encode(b, h);
	return conn_send(fs->chan[chan], b, sizeof(b));
}

int fsrc_send_pages(struct fake_src *fs, uint32_t chan, uint32_t block, const uint64_t *offsets,
		    uint32_t nnormal, uint32_t nzero, const void *payload)
{
	uint32_t n = nnormal + nzero, i;
	struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = fs->pkt_flags,
	    .seq = fs->seq[chan],
	    .round = fs->round[chan],
	    .block = block,
	    .normal = nnormal,
	    .zero = nzero,
	    .codec = TERN_CODEC_NONE,
	    .payload_len = nnormal * fs->page_size,
	};
	struct iovec iov[2];
	uint8_t *b;
	int ret;

	b = malloc(MF_HDR_SIZE + 8 * (size_t)n);
	if (!b)
		return -ENOMEM;
	mf_hdr_encode(b, &h);
	for (i = 0; i < n; i++)
		put_be64(b + MF_HDR_SIZE + 8 * (size_t)i, offsets[i]);
	iov[0] = (struct iovec){.iov_base = b, .iov_len = MF_HDR_SIZE + 8 * (size_t)n};
	iov[1] =
	    (struct iovec){.iov_base = (void *)payload, .iov_len = (size_t)nnormal * fs->page_size};
	ret = conn_send_iov(fs->chan[chan], iov, nnormal ? 2 : 1);
	free(b);
	if (!ret)
		fs->seq[chan]++;
	return ret;
}

int fsrc_send_encoded(struct fake_src *fs, uint32_t chan, uint32_t block, const uint64_t *offsets,
		      uint32_t nnormal, uint32_t codec, const void *payload, uint32_t payload_len)
{
	struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .seq = fs->seq[chan],
	    .round = fs->round[chan],
	    .block = block,
	    .normal = nnormal,
	    .codec = codec,
	    .payload_len = payload_len,
	};
	struct iovec iov[2];
	uint8_t *b;
	uint32_t i;
	int ret;

	b = malloc(MF_HDR_SIZE + 8 * (size_t)nnormal);
	if (!b)
		return -ENOMEM;
	mf_hdr_encode(b, &h);
	for (i = 0; i < nnormal; i++)
		put_be64(b + MF_HDR_SIZE + 8 * (size_t)i, offsets[i]);
	iov[0] = (struct iovec){.iov_base = b, .iov_len = MF_HDR_SIZE + 8 * (size_t)nnormal};
	iov[1] = (struct iovec){.iov_base = (void *)payload, .iov_len = payload_len};
	ret = conn_send_iov(fs->chan[chan], iov, payload_len ? 2 : 1);
	free(b);
	if (!ret)
		fs->seq[chan]++;
	return ret;
}

int fsrc_send_sync(struct fake_src *fs, uint32_t chan, bool last)
{
	struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = MF_FLAG_SYNC | (last ? MF_FLAG_LAST : 0),
	    .seq = fs->seq[chan],
	    .round = fs->round[chan],
	    .codec = TERN_CODEC_NONE,
	};
	int ret;

	ret = fsrc_send_pkt_hdr(fs, chan, &h);
	if (!ret) {
		fs->seq[chan]++;
		fs->round[chan]++;
	}
	return ret;
}

int fsrc_ram_sync(struct fake_src *fs, uint64_t round)
{
	uint8_t p[8];

	put_be64(p, round);
	return fsrc_send_frame(fs, CTL_RAM_SYNC, p, sizeof(p));
}

int fsrc_section(struct fake_src *fs, uint32_t id, const char *name, uint32_t instance,
		 uint32_t version, const void *payload, uint32_t plen)
{
	struct buf b;
	int ret;

	buf_init(&b);
	buf_put_u32(&b, id);
	buf_put_str(&b, name);
	buf_put_u32(&b, instance);
	buf_put_u32(&b, version);
	buf_put_u32(&b, plen);
	buf_put(&b, payload, plen);
	buf_put_u32(&b, id);
	ret = b.oom ? -ENOMEM : fsrc_send_frame(fs, CTL_SECTION_FULL, b.data, b.len);
	buf_fini(&b);
	return ret;
}

void fsrc_close_channel(struct fake_src *fs, uint32_t i)
{
	conn_close(fs->chan[i]);
	fs->chan[i] = NULL;
}

void fsrc_shutdown_ctl_write(struct fake_src *fs)
{
	if (fs->ctl_fd >= 0)
		shutdown(fs->ctl_fd, SHUT_WR);
}

void fsrc_close_ctl(struct fake_src *fs)
{
	conn_close(fs->ctl);
	fs->ctl = NULL;
	fs->ctl_fd = -1;
}

void fsrc_close(struct fake_src *fs)
{
	uint32_t i;

	for (i = 0; i < FP_MAX_CHANNELS; i++)
		fsrc_close_channel(fs, i);
	fsrc_close_ctl(fs);
}

/* ---- fake destination ------------------------------------------------------- */

static bool fdst_stopping(struct fake_dst *d)
{
	bool stop;

	pthread_mutex_lock(&d->lock);
	stop = d->stop;
	pthread_mutex_unlock(&d->lock);
	return stop;
}

static void fdst_wait_stop(struct fake_dst *d)
{
	pthread_mutex_lock(&d->lock);
	while (!d->stop)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

/* Close every connection now (the source sees EOF / a reset). */
static void fdst_close_all(struct fake_dst *d)
{
	struct tern_conn *conns[TERN_MAX_CHANNELS + 1];
	uint32_t i, n = 0;

	pthread_mutex_lock(&d->lock);
	conns[n++] = d->ctl;
	d->ctl = NULL;
	for (i = 0; i < TERN_MAX_CHANNELS; i++) {
		if (d->chan[i])
			conns[n++] = d->chan[i];
		d->chan[i] = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	for (i = 0; i < n; i++)
		conn_close(conns[i]);
}

static int fdst_accept(struct fake_dst *d, struct tern_conn **ret, struct tern_error *err)
{
	if (fdst_stopping(d))
		return -ECANCELED;
	return d->l->ops->accept(d->l, FP_RECV_TIMEOUT_MS, ret, err);
}

/* Join the channels and read @read_per_channel bytes after each hello. */
static int fdst_read_round(struct fake_dst *d, struct tern_error *err)
{
	static uint8_t scratch[64 << 10];
	uint32_t i;
	int ret;

	for (i = 0; i < d->nchannels; i++) {
		struct tern_conn *c;

		ret = fdst_accept(d, &c, err);
		if (ret)
			return ret;
		pthread_mutex_lock(&d->lock);
		d->chan[i] = c;
		pthread_mutex_unlock(&d->lock);
	}
	for (i = 0; i < d->nchannels; i++) {
		uint64_t left = d->read_per_channel;

		ret = conn_recv(d->chan[i], scratch, MF_HELLO_SIZE);
		while (!ret && left) {
			size_t n = MIN(left, sizeof(scratch));

			ret = conn_recv(d->chan[i], scratch, n);
			left -= n;
			if (!ret) {
				pthread_mutex_lock(&d->lock);
				d->bytes_read += n;
				pthread_mutex_unlock(&d->lock);
			}
		}
		if (ret)
			return tern_error_set(err, ret, "fake destination: reading channel %u: %s",
					      i, strerror(-ret));
	}
	return 0;
}

static void *fdst_thread(void *arg)
{
	struct fake_dst *d = arg;
	struct tern_error err = {0};
	struct tern_conn *c;
	uint16_t type;
	uint8_t *p = NULL;
	uint32_t len, nch = 0;
	int ret;

	ret = fdst_accept(d, &c, &err);
	if (ret)
		goto out;
	pthread_mutex_lock(&d->lock);
	d->ctl = c;
	pthread_mutex_unlock(&d->lock);
	ret = ctl_recv_stream_hdr(c, CTL_MAGIC, "fake destination", &err);
	if (!ret)
		ret = ctl_recv(c, "fake destination", &type, &p, &len, &err);
	if (ret)
		goto out;
	if (type != CTL_HELLO || len < 24)
		ret = tern_error_set(&err, -EPROTO, "fake destination: expected HELLO, got %s",
				     ctl_type_name(type));
	else
		nch = get_be32(p + 20);
	free(p);
	if (ret)
		goto out;
	pthread_mutex_lock(&d->lock);
	d->hello_seen = true;
	d->nchannels = nch;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (nch > TERN_MAX_CHANNELS) {
		ret = tern_error_set(&err, -EPROTO, "fake destination: %u channels", nch);
		goto out;
	}

	switch (d->mode) {
	case FDST_HANG:
		break;
	case FDST_REPLY_ERROR:
		ret = ctl_send_stream_hdr(c, CTL_RP_MAGIC);
		if (!ret)
			ret = ctl_send_error(c, -EBUSY, FDST_ERROR_MSG);
		break;
	case FDST_CLOSE_IN_ROUND:
		ret = ctl_send_stream_hdr(c, CTL_RP_MAGIC);
		if (!ret)
			ret = ctl_send(c, CTL_HELLO_ACK, NULL, 0);
		if (!ret)
			ret = fdst_read_round(d, &err);
		if (!ret) {
			fdst_close_all(d);
			pthread_mutex_lock(&d->lock);
			d->closed = true;
			pthread_cond_broadcast(&d->cond);
			pthread_mutex_unlock(&d->lock);
		}
		break;
	default:
		ret = -EINVAL;
	}
	if (ret)
		tern_error_set(&err, ret, "fake destination: %s", strerror(-ret));
	else
		fdst_wait_stop(d);
out:
	pthread_mutex_lock(&d->lock);
	d->ret = ret;
	if (err.code)
		tern_error_set(&d->err, err.code, "%s", err.msg);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int fdst_start(struct fake_dst *d, const char *listen_uri, enum fdst_mode mode,
	       struct tern_error *err)
{
	const struct tern_transport_ops *tp;
	const char *addr;
	int ret;

	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->read_per_channel = FDST_READ_PER_CHANNEL;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	ret = tcp_transport_for_uri(listen_uri, &tp, &addr, err);
	if (!ret)
		ret = tp->listen(addr, &d->l, err);
	if (ret)
		return ret;
	ret = d->l->ops->uri(d->l, d->uri, sizeof(d->uri));
	if (!ret)
		ret = -pthread_create(&d->thread, NULL, fdst_thread, d);
	if (ret) {
		d->l->ops->close(d->l);
		d->l = NULL;
		return tern_error_set(err, ret, "fake destination: start: %s", strerror(-ret));
	}
	d->thread_started = true;
	return 0;
}

static bool fdst_wait_flag(struct fake_dst *d, bool *flag, int timeout_ms)
{
	struct timespec ts;
	bool v;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&d->lock);
	while (!*flag && !d->ret && rc == 0)
		rc = pthread_cond_timedwait(&d->cond, &d->lock, &ts);
	v = *flag;
	pthread_mutex_unlock(&d->lock);
	return v;
}

bool fdst_wait_hello(struct fake_dst *d, int timeout_ms)
{
	return fdst_wait_flag(d, &d->hello_seen, timeout_ms);
}

bool fdst_wait_closed(struct fake_dst *d, int timeout_ms)
{
	return fdst_wait_flag(d, &d->closed, timeout_ms);
}

int fdst_stop(struct fake_dst *d, struct tern_error *err)
{
	uint32_t i;
	int ret;

	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_broadcast(&d->cond);
	conn_shutdown(d->ctl);
	for (i = 0; i < TERN_MAX_CHANNELS; i++)
		conn_shutdown(d->chan[i]);
	if (d->l)
		d->l->ops->shutdown(d->l);
	pthread_mutex_unlock(&d->lock);
	if (d->thread_started)
		pthread_join(d->thread, NULL);
	d->thread_started = false;
	fdst_close_all(d);
	if (d->l)
		d->l->ops->close(d->l);
	d->l = NULL;
	ret = d->ret;
	if (ret)
		tern_error_set(err, d->err.code ? d->err.code : ret, "%s", d->err.msg);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	return ret;
}
