/*
 * NflogReader: packets the kernel sends to an nfnetlink_log group (the nft
 * `log group N` statement), read on a thread of their own and handed to JS in
 * batches through a threadsafe function, so the event loop never blocks on the
 * socket and no tool is run per packet.
 *
 *   new NflogReader(group: number, netns: string | undefined, callback)
 *     callback(records: Record[], lost: number) on the JS thread, where
 *     Record = { prefix, family: 4|6, protocol, saddr, daddr, sport, dport,
 *                indev, outdev, length }
 *     and lost counts packets the reader could not deliver (socket overrun,
 *     JS queue full) since the previous call.
 *   reader.close(): stops the thread and closes the socket (idempotent).
 *
 * The thread enters `netns` (the node's network namespace) before opening the
 * NETLINK_NETFILTER socket, so the socket belongs to that namespace whichever
 * thread reads it; the JS thread never changes namespace. The constructor waits
 * for the thread to report whether the socket was opened and the group bound
 * * (EPERM when another socket of that namespace holds the group).
 *
 * The kernel copies only the first COPY_RANGE bytes of each packet (IP header,
 * extension headers, L4 ports) and queues up to QTHRESH packets or QTIMEOUT
 * (1/100 s) before sending a datagram, so a burst costs a few wake-ups.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nflog.h"

#define COPY_RANGE 128
#define QTHRESH 64
#define QTIMEOUT 5
#define RCVBUF (4 << 20)
#define RECV_SIZE (256 << 10)
#define MAX_BATCH 512
#define PREFIX_MAX 128

typedef struct {
	char prefix[PREFIX_MAX];
	uint8_t family; /* 4 or 6; 0 when the payload is not IP */
	uint8_t protocol;
	uint8_t saddr[16];
	uint8_t daddr[16];
	int32_t sport, dport; /* -1 when the protocol has none or the packet is a later fragment */
	uint32_t indev, outdev;
	uint32_t length;
} record;

typedef struct {
	size_t count;
	uint64_t lost;
	record items[];
} batch;

typedef struct {
	int group;
	char *netns;
	int sock;
	int wake; /* eventfd: close() writes it to stop the thread */
	pthread_t thread;
	int started;
	napi_threadsafe_function tsfn;
	/* start-up handshake */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready;     /* 1: result below is set */
	int start_err; /* errno of the failed step, 0 on success */
	char start_msg[256];
	uint64_t lost; /* thread only */
	int closed;
} reader;

#define CHECK(env, call)                                                       \
	do {                                                                   \
		if ((call) != napi_ok) {                                       \
			const napi_extended_error_info *info_;                 \
			napi_get_last_error_info((env), &info_);               \
			napi_throw_error((env), NULL,                          \
					 info_ && info_->error_message ?        \
						 info_->error_message :         \
						 "nflog: N-API call failed");   \
			return NULL;                                           \
		}                                                              \
	} while (0)

/* ---- netlink configuration ------------------------------------------------ */

static void put_attr(char *buf, size_t *off, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)(buf + *off);

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy(buf + *off + NLA_HDRLEN, data, len);
	*off += NLA_ALIGN(a->nla_len);
}

/* Sends one NFULNL_MSG_CONFIG for `group` and waits for its ACK; returns 0 or an errno. */
static int config(int sock, uint16_t group, uint8_t family, uint16_t attr, const void *data, uint16_t len)
{
	char buf[256] __attribute__((aligned(4)));
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	struct nfgenmsg *g;
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*g));
	static uint32_t seq = 1;
	char reply[1024] __attribute__((aligned(4)));
	ssize_t n;

	memset(buf, 0, sizeof(buf));
	put_attr(buf, &off, attr, data, len);
	nh->nlmsg_len = off;
	nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
	nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nh->nlmsg_seq = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
	g = (struct nfgenmsg *)(buf + NLMSG_HDRLEN);
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	g->res_id = htons(group);
	if (send(sock, buf, off, 0) < 0)
		return errno;
	for (;;) {
		n = recv(sock, reply, sizeof(reply), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		for (struct nlmsghdr *r = (struct nlmsghdr *)reply; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_type == NLMSG_ERROR && r->nlmsg_seq == nh->nlmsg_seq) {
				struct nlmsgerr *e = NLMSG_DATA(r);
				return -e->error;
			}
		}
	}
}

static int open_socket(reader *r)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK };
	int sock, size = RCVBUF, err;
	struct nfulnl_msg_config_cmd bind_cmd = { .command = NFULNL_CFG_CMD_BIND };
	struct nfulnl_msg_config_mode mode;
	uint32_t qthresh = htonl(QTHRESH), timeout = htonl(QTIMEOUT);

	sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (sock < 0) {
		snprintf(r->start_msg, sizeof(r->start_msg), "socket(NETLINK_NETFILTER): %s", strerror(errno));
		return errno;
	}
	if (bind(sock, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		err = errno;
		snprintf(r->start_msg, sizeof(r->start_msg), "bind netlink socket: %s", strerror(err));
		close(sock);
		return err;
	}
	/* Beyond rmem_max needs CAP_NET_ADMIN (FORCE); fall back to the plain option. */
	if (setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0)
		setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	err = config(sock, (uint16_t)r->group, AF_UNSPEC, NFULA_CFG_CMD, &bind_cmd, sizeof(bind_cmd));
	if (err != 0) {
		snprintf(r->start_msg, sizeof(r->start_msg), "bind nflog group %d: %s%s", r->group, strerror(err),
			 err == EPERM ? " (another socket of this network namespace reads that group)" : "");
		close(sock);
		return err;
	}
	memset(&mode, 0, sizeof(mode));
	mode.copy_range = htonl(COPY_RANGE);
	mode.copy_mode = NFULNL_COPY_PACKET;
	err = config(sock, (uint16_t)r->group, AF_UNSPEC, NFULA_CFG_MODE, &mode, sizeof(mode));
	if (err == 0)
		err = config(sock, (uint16_t)r->group, AF_UNSPEC, NFULA_CFG_QTHRESH, &qthresh, sizeof(qthresh));
	if (err == 0)
		err = config(sock, (uint16_t)r->group, AF_UNSPEC, NFULA_CFG_TIMEOUT, &timeout, sizeof(timeout));
	if (err != 0) {
		snprintf(r->start_msg, sizeof(r->start_msg), "configure nflog group %d: %s", r->group, strerror(err));
		close(sock);
		return err;
	}
	r->sock = sock;
	return 0;
}

/* ---- packet parsing -------------------------------------------------------- */

static void parse_ports(record *rec, const uint8_t *l4, size_t len)
{
	if ((rec->protocol == IPPROTO_TCP || rec->protocol == IPPROTO_UDP || rec->protocol == IPPROTO_SCTP) && len >= 4) {
		rec->sport = (l4[0] << 8) | l4[1];
		rec->dport = (l4[2] << 8) | l4[3];
	}
}

static void parse_payload(record *rec, const uint8_t *p, size_t len)
{
	if (len < 1)
		return;
	if ((p[0] >> 4) == 4 && len >= 20) {
		size_t ihl = (size_t)(p[0] & 0x0f) * 4;
		uint16_t frag = (uint16_t)((p[6] << 8) | p[7]);

		rec->family = 4;
		rec->protocol = p[9];
		memcpy(rec->saddr, p + 12, 4);
		memcpy(rec->daddr, p + 16, 4);
		if ((frag & 0x1fff) == 0 && ihl >= 20 && len > ihl)
			parse_ports(rec, p + ihl, len - ihl);
	} else if ((p[0] >> 4) == 6 && len >= 40) {
		uint8_t next = p[6];
		size_t off = 40;

		rec->family = 6;
		memcpy(rec->saddr, p + 8, 16);
		memcpy(rec->daddr, p + 24, 16);
		/* Extension headers: hop-by-hop, routing, destination options, fragment. */
		for (int i = 0; i < 8; i++) {
			if (next == 0 || next == 43 || next == 60) {
				if (len < off + 8)
					break;
				next = p[off];
				off += ((size_t)p[off + 1] + 1) * 8;
			} else if (next == 44) {
				if (len < off + 8)
					break;
				uint16_t fo = (uint16_t)((p[off + 2] << 8) | p[off + 3]);
				next = p[off];
				off += 8;
				if ((fo & 0xfff8) != 0) {
					rec->protocol = next;
					return; /* a later fragment: no ports */
				}
			} else
				break;
		}
		rec->protocol = next;
		if (len > off)
			parse_ports(rec, p + off, len - off);
	}
}

/* One NFULNL_MSG_PACKET into `rec`. */
static void parse_packet(record *rec, const struct nlmsghdr *nh)
{
	const char *base = (const char *)NLMSG_DATA(nh) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	const char *end = (const char *)nh + nh->nlmsg_len;

	memset(rec, 0, sizeof(*rec));
	rec->sport = rec->dport = -1;
	while (base + NLA_HDRLEN <= end) {
		const struct nlattr *a = (const struct nlattr *)base;
		const uint8_t *data = (const uint8_t *)base + NLA_HDRLEN;
		size_t dlen;

		if (a->nla_len < NLA_HDRLEN || base + a->nla_len > end)
			break;
		dlen = a->nla_len - NLA_HDRLEN;
		switch (a->nla_type & NLA_TYPE_MASK) {
		case NFULA_PREFIX: {
			size_t n = strnlen((const char *)data, dlen);
			if (n >= PREFIX_MAX)
				n = PREFIX_MAX - 1;
			memcpy(rec->prefix, data, n);
			rec->prefix[n] = '\0';
			break;
		}
		case NFULA_IFINDEX_INDEV:
			if (dlen >= 4)
				rec->indev = ntohl(*(const uint32_t *)data);
			break;
		case NFULA_IFINDEX_OUTDEV:
			if (dlen >= 4)
				rec->outdev = ntohl(*(const uint32_t *)data);
			break;
		case NFULA_PAYLOAD:
			parse_payload(rec, data, dlen);
			if (rec->family == 4 && dlen >= 4)
				rec->length = (uint32_t)((data[2] << 8) | data[3]);
			else if (rec->family == 6 && dlen >= 6)
				rec->length = (uint32_t)((data[4] << 8) | data[5]) + 40;
			break;
		default:
			break;
		}
		base += NLA_ALIGN(a->nla_len);
	}
}

/* ---- the reader thread ----------------------------------------------------- */

static void deliver(reader *r, batch *b)
{
	b->lost = r->lost;
	if (napi_call_threadsafe_function(r->tsfn, b, napi_tsfn_nonblocking) == napi_ok) {
		r->lost = 0;
		return;
	}
	/* Queue full (JS is behind) or closing: these packets are lost, and said so in the next batch. */
	r->lost += b->count;
	free(b);
}

static void *run(void *arg)
{
	reader *r = arg;
	int err = 0;
	char *buf = NULL;

	if (r->netns != NULL) {
		int fd = open(r->netns, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			err = errno;
			snprintf(r->start_msg, sizeof(r->start_msg), "enter network namespace %s: %s", r->netns, strerror(err));
		}
		if (fd >= 0)
			close(fd);
	}
	if (err == 0)
		err = open_socket(r);
	if (err == 0 && (buf = malloc(RECV_SIZE)) == NULL) {
		err = ENOMEM;
		snprintf(r->start_msg, sizeof(r->start_msg), "out of memory");
	}
	pthread_mutex_lock(&r->mu);
	r->start_err = err;
	r->ready = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (err != 0)
		return NULL;

	for (;;) {
		struct pollfd fds[2] = { { .fd = r->sock, .events = POLLIN }, { .fd = r->wake, .events = POLLIN } };
		ssize_t n;
		batch *b = NULL;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[1].revents != 0)
			break;
		n = recv(r->sock, buf, RECV_SIZE, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS)
				r->lost++; /* the kernel dropped some; how many is unknown: counted as one */
			continue;
		}
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET))
				continue;
			if (b == NULL) {
				b = malloc(sizeof(batch) + MAX_BATCH * sizeof(record));
				if (b == NULL) {
					r->lost++;
					continue;
				}
				b->count = 0;
			}
			parse_packet(&b->items[b->count++], nh);
			if (b->count == MAX_BATCH) {
				deliver(r, b);
				b = NULL;
			}
		}
		if (b != NULL)
			deliver(r, b);
	}
	free(buf);
	return NULL;
}

/* ---- JS side ------------------------------------------------------------------ */

static napi_value address(napi_env env, int family, const uint8_t *a)
{
	char text[INET6_ADDRSTRLEN];
	napi_value v;

	if (inet_ntop(family == 4 ? AF_INET : AF_INET6, a, text, sizeof(text)) == NULL)
		text[0] = '\0';
	if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v) != napi_ok)
		return NULL;
	return v;
}

static void set_int(napi_env env, napi_value obj, const char *name, int64_t n)
{
	napi_value v;

	if (napi_create_int64(env, n, &v) == napi_ok)
		napi_set_named_property(env, obj, name, v);
}

static void call_js(napi_env env, napi_value callback, void *context, void *data)
{
	batch *b = data;
	napi_value records, undefined, argv[2];

	(void)context;
	if (env == NULL || b == NULL) {
		free(b);
		return;
	}
	if (napi_create_array_with_length(env, b->count, &records) != napi_ok)
		goto out;
	for (size_t i = 0; i < b->count; i++) {
		const record *rec = &b->items[i];
		napi_value obj, v;

		if (napi_create_object(env, &obj) != napi_ok)
			goto out;
		if (napi_create_string_utf8(env, rec->prefix, NAPI_AUTO_LENGTH, &v) == napi_ok)
			napi_set_named_property(env, obj, "prefix", v);
		set_int(env, obj, "family", rec->family);
		set_int(env, obj, "protocol", rec->protocol);
		if (rec->family != 0) {
			napi_set_named_property(env, obj, "saddr", address(env, rec->family, rec->saddr));
			napi_set_named_property(env, obj, "daddr", address(env, rec->family, rec->daddr));
		}
		set_int(env, obj, "sport", rec->sport);
		set_int(env, obj, "dport", rec->dport);
		set_int(env, obj, "indev", rec->indev);
		set_int(env, obj, "outdev", rec->outdev);
		set_int(env, obj, "length", rec->length);
		napi_set_element(env, records, (uint32_t)i, obj);
	}
	argv[0] = records;
	napi_create_int64(env, (int64_t)b->lost, &argv[1]);
	napi_get_undefined(env, &undefined);
	napi_call_function(env, undefined, callback, 2, argv, NULL);
out:
	free(b);
}

static void stop(reader *r)
{
	uint64_t one = 1;

	if (r->closed)
		return;
	r->closed = 1;
	if (r->started) {
		if (write(r->wake, &one, sizeof(one)) < 0) {
			/* eventfd writes only fail on overflow: the thread is woken anyway */
		}
		pthread_join(r->thread, NULL);
		r->started = 0;
	}
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	if (r->wake >= 0)
		close(r->wake);
	r->wake = -1;
	if (r->tsfn != NULL) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
		r->tsfn = NULL;
	}
}

static void finalize(napi_env env, void *data, void *hint)
{
	reader *r = data;

	(void)env;
	(void)hint;
	stop(r);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->netns);
	free(r);
}

static napi_value throw_errno(napi_env env, int err, const char *msg)
{
	napi_value code, message, error, errno_v;

	napi_create_string_utf8(env, "NFLOG", NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
	napi_create_error(env, code, message, &error);
	napi_create_int32(env, err, &errno_v);
	napi_set_named_property(env, error, "errno", errno_v);
	napi_throw(env, error);
	return NULL;
}

static napi_value reader_new(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3], self, name;
	napi_valuetype t;
	int32_t group;
	reader *r;
	int err;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc < 3 || napi_get_value_int32(env, argv[0], &group) != napi_ok || group < 0 || group > 65535) {
		napi_throw_type_error(env, NULL, "NflogReader(group: 0..65535, netns, callback)");
		return NULL;
	}
	CHECK(env, napi_typeof(env, argv[2], &t));
	if (t != napi_function) {
		napi_throw_type_error(env, NULL, "NflogReader: callback must be a function");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return throw_errno(env, ENOMEM, "out of memory");
	r->group = group;
	r->sock = -1;
	r->wake = -1;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	CHECK(env, napi_typeof(env, argv[1], &t));
	if (t == napi_string) {
		size_t len;
		CHECK(env, napi_get_value_string_utf8(env, argv[1], NULL, 0, &len));
		r->netns = malloc(len + 1);
		if (r->netns == NULL) {
			free(r);
			return throw_errno(env, ENOMEM, "out of memory");
		}
		CHECK(env, napi_get_value_string_utf8(env, argv[1], r->netns, len + 1, &len));
	}
	if (napi_wrap(env, self, r, finalize, NULL, NULL) != napi_ok) {
		free(r->netns);
		free(r);
		napi_throw_error(env, NULL, "nflog: wrap failed");
		return NULL;
	}
	r->wake = eventfd(0, EFD_CLOEXEC);
	if (r->wake < 0)
		return throw_errno(env, errno, "eventfd failed");
	CHECK(env, napi_create_string_utf8(env, "nflog", NAPI_AUTO_LENGTH, &name));
	/* Up to 64 batches waiting for JS; beyond that the thread counts them lost. */
	CHECK(env, napi_create_threadsafe_function(env, argv[2], NULL, name, 64, 1, NULL, NULL, NULL, call_js, &r->tsfn));
	err = pthread_create(&r->thread, NULL, run, r);
	if (err != 0) {
		stop(r);
		return throw_errno(env, err, "cannot start the nflog thread");
	}
	r->started = 1;
	pthread_mutex_lock(&r->mu);
	while (!r->ready)
		pthread_cond_wait(&r->cv, &r->mu);
	err = r->start_err;
	pthread_mutex_unlock(&r->mu);
	if (err != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", r->start_msg);
		stop(r);
		return throw_errno(env, err, msg);
	}
	/* The reader keeps the process alive only through the caller's reference: unref the tsfn. */
	napi_unref_threadsafe_function(env, r->tsfn);
	return self;
}

static napi_value reader_close(napi_env env, napi_callback_info info)
{
	napi_value self;
	reader *r;

	CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
	CHECK(env, napi_unwrap(env, self, (void **)&r));
	stop(r);
	return NULL;
}

int nflog_register(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "close", NULL, reader_close, NULL, NULL, NULL, napi_default_method, NULL },
	};
	napi_value cls;

	if (napi_define_class(env, "NflogReader", NAPI_AUTO_LENGTH, reader_new, NULL, 1, methods, &cls) != napi_ok)
		return -1;
	return napi_set_named_property(env, exports, "NflogReader", cls) == napi_ok ? 0 : -1;
}
