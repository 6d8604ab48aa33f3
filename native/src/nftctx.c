#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "nftctx.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nftables/libnftables.h>

static long live_count;

/*
 * libnftables 1.0.6 keeps some state per process, not per context: the
 * interface cache (iface.c: a static list, filled and released without a
 * lock; nft_ctx_free releases it) and one-time initialisation in nft_ctx_new.
 * So calls into the library are serialized process-wide by this lock, taken
 * inside a context's own mutex (lock order: nftx_ctx.mu, then lib_mu).
 */
static pthread_mutex_t lib_mu = PTHREAD_MUTEX_INITIALIZER;

long nftx_live_count(void)
{
	return __atomic_load_n(&live_count, __ATOMIC_RELAXED);
}

/* Frees the context's nft_ctx, if any; the caller holds c->mu or owns c alone. */
static void free_nft(nftx_ctx *c)
{
	if (c->nft == NULL)
		return;
	pthread_mutex_lock(&lib_mu); /* nft_ctx_free touches libnftables' global cache */
	nft_ctx_free(c->nft);
	pthread_mutex_unlock(&lib_mu);
	c->nft = NULL;
	__atomic_sub_fetch(&live_count, 1, __ATOMIC_RELAXED);
}

/*
 * libnftables 1.0.6 opens its NETLINK_NETFILTER socket in nft_ctx_new
 * (nft_mnl_socket_open) and, if socket() or fcntl() fails, prints to stderr
 * and calls exit(3): the whole process would end without a word. It is the
 * only netfilter socket the library opens for a context (runs reuse it), so
 * opening one the same way just before nft_ctx_new turns those failures
 * (EMFILE/ENFILE when out of descriptors, ENOMEM/ENOBUFS, EPROTONOSUPPORT
 * without nf_tables, EACCES from a security module) into an error. The probe
 * socket is closed right before nft_ctx_new, so another thread of the process
 * taking the last free descriptor in between can still make it exit; that
 * window is a few instructions wide. Returns 0, or -1 with errno set.
 */
static int probe_netfilter_socket(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int nftx_open(nftx_ctx *c, const char *netns, char *errbuf, size_t errlen, int *err_no)
{
	int self_fd = -1, target_fd = -1;
	int rc = NFTX_OPEN_OK;

	*err_no = 0;
	c->nft = NULL;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		*err_no = errno;
		snprintf(errbuf, errlen, "pthread_mutex_init failed");
		return NFTX_OPEN_NFT;
	}

	if (netns != NULL) {
		/* The thread's own netns, to come back to. */
		self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self_fd < 0) {
			*err_no = errno;
			snprintf(errbuf, errlen, "cannot open /proc/thread-self/ns/net: %s",
				 strerror(*err_no));
			rc = NFTX_OPEN_NETNS;
			goto out;
		}
		target_fd = open(netns, O_RDONLY | O_CLOEXEC);
		if (target_fd < 0) {
			*err_no = errno;
			snprintf(errbuf, errlen, "cannot open network namespace %s: %s",
				 netns, strerror(*err_no));
			rc = NFTX_OPEN_NETNS;
			goto out;
		}
		/* EINVAL here means the file is not a network namespace. */
		if (setns(target_fd, CLONE_NEWNET) != 0) {
			*err_no = errno;
			snprintf(errbuf, errlen, "cannot enter network namespace %s: %s",
				 netns, strerror(*err_no));
			rc = NFTX_OPEN_NETNS;
			goto out;
		}
	}

	/* libnftables opens its netlink socket here, in the current netns. */
	pthread_mutex_lock(&lib_mu);
	if (probe_netfilter_socket() != 0) {
		*err_no = errno;
		snprintf(errbuf, errlen,
			 "cannot open a netfilter netlink socket in %s%s: %s (libnftables would exit the "
			 "process, so no context was created; free file descriptors or memory, or load nf_tables)",
			 netns != NULL ? "network namespace " : "the process's network namespace",
			 netns != NULL ? netns : "", strerror(*err_no));
		rc = NFTX_OPEN_NETLINK;
	} else if ((c->nft = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL) {
		*err_no = errno;
		snprintf(errbuf, errlen, "nft_ctx_new failed");
		rc = NFTX_OPEN_NFT;
	} else if (nft_ctx_buffer_output(c->nft) != 0 || nft_ctx_buffer_error(c->nft) != 0) {
		*err_no = errno;
		snprintf(errbuf, errlen, "cannot buffer nft output");
		nft_ctx_free(c->nft);
		c->nft = NULL;
		rc = NFTX_OPEN_NFT;
	} else {
		__atomic_add_fetch(&live_count, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&lib_mu);

	if (netns != NULL && setns(self_fd, CLONE_NEWNET) != 0) {
		*err_no = errno;
		snprintf(errbuf, errlen,
			 "cannot return from network namespace %s to the original one: %s",
			 netns, strerror(*err_no));
		rc = NFTX_OPEN_NO_RESTORE;
	}

out:
	if (target_fd >= 0)
		close(target_fd);
	if (self_fd >= 0)
		close(self_fd);
	if (rc != NFTX_OPEN_OK && rc != NFTX_OPEN_NO_RESTORE) {
		free_nft(c);
		pthread_mutex_destroy(&c->mu);
	}
	return rc;
}

static char *dup_nonempty(const char *s)
{
	if (s == NULL || *s == '\0')
		return NULL;
	return strdup(s);
}

/*
 * nft reports kernel errors as "...: Could not process rule: <strerror>" at the
 * end of an "Error:" line. Finds the errno whose description ends such a line
 * (the longest one wins, so that one description that ends another does not
 * shadow it). Returns 0 when there is none.
 */
static int errno_from_message(const char *msg)
{
	const char *line = msg;

	while (line != NULL && *line != '\0') {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		const char *mark = memmem(line, len, "Error: ", 7);

		if (mark != NULL) {
			int best = 0;
			size_t best_len = 0;

			for (int e = 1; e < 134; e++) {
				const char *d = strerrordesc_np(e);
				size_t dl;

				if (d == NULL)
					continue;
				dl = strlen(d);
				if (dl + 2 > len || dl <= best_len)
					continue;
				if (memcmp(line + len - dl, d, dl) == 0 &&
				    memcmp(line + len - dl - 2, ": ", 2) == 0) {
					best = e;
					best_len = dl;
				}
			}
			if (best != 0)
				return best;
		}
		line = eol ? eol + 1 : NULL;
	}
	return 0;
}

/* True when the batch has a command on some line after the first. */
static bool is_multiline(const char *cmd)
{
	const char *nl = strchr(cmd, '\n');

	if (nl == NULL)
		return false;
	for (const char *p = nl + 1; *p != '\0'; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return true;
	}
	return false;
}

/*
 * Runs a batch of several lines from a memfd, as `nft -f FILE` would.
 * libnftables 1.0.6 reports errors in a buffer without a line number and
 * always echoes the buffer's first line; from a file it prints
 * "FILE:LINE:COL-COL: Error: ..." and echoes the right line. Rewrites FILE
 * to "<batch>" in the error text. Returns -1 and sets *sys_err if the memfd
 * could not be made.
 */
static int run_from_memfd(struct nft_ctx *nft, const char *cmd, int *sys_err)
{
	size_t len = strlen(cmd), off = 0;
	char path[64];
	int fd, rc;

	fd = memfd_create("nft-batch", MFD_CLOEXEC);
	if (fd < 0) {
		*sys_err = errno;
		return -1;
	}
	while (off < len) {
		ssize_t n = write(fd, cmd + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			*sys_err = errno;
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = nft_run_cmd_from_filename(nft, path);
	close(fd);
	return rc;
}

/* Replaces every "/proc/self/fd/N:" prefix that nft wrote with "<batch>:". */
static char *rename_location(char *err)
{
	static const char from[] = "/proc/self/fd/";
	static const char to[] = "<batch>";
	char *p = err, *q = err;

	if (err == NULL)
		return NULL;
	/* The replacement is never longer than the text it replaces: edit in place. */
	while (*p != '\0') {
		if (strncmp(p, from, sizeof(from) - 1) == 0) {
			const char *d = p + sizeof(from) - 1;

			while (*d >= '0' && *d <= '9')
				d++;
			if (*d == ':' && d > p + sizeof(from) - 1) {
				memcpy(q, to, sizeof(to) - 1);
				q += sizeof(to) - 1;
				p = (char *)d;
				continue;
			}
		}
		*q++ = *p++;
	}
	*q = '\0';
	return err;
}

void nftx_exec(nftx_ctx *c, nftx_mode mode, const char *cmd, nftx_result *r)
{
	bool from_file = is_multiline(cmd);
	int sys_err = 0;
	unsigned int flags;

	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&c->mu);
	if (c->nft == NULL) {
		pthread_mutex_unlock(&c->mu);
		r->rc = -2;
		return;
	}

	pthread_mutex_lock(&lib_mu);
	flags = nft_ctx_output_get_flags(c->nft);
	/*
	 * Terse: libnftables (1.0.1 and later) then leaves set elements out of
	 * its cache too, so the kernel never sends them: a listing of rules and
	 * counters costs what the chains hold, not what the sets hold.
	 */
	if (mode == NFTX_LIST || mode == NFTX_LIST_TERSE)
		nft_ctx_output_set_flags(c->nft, flags | NFT_CTX_OUTPUT_JSON |
					 (mode == NFTX_LIST_TERSE ? NFT_CTX_OUTPUT_TERSE : 0));
	if (mode == NFTX_CHECK)
		nft_ctx_set_dry_run(c->nft, true);

	if (from_file)
		r->rc = run_from_memfd(c->nft, cmd, &sys_err) == 0 ? 0 : -1;
	else
		r->rc = nft_run_cmd_from_buffer(c->nft, cmd) == 0 ? 0 : -1;

	/* Reading a buffer also rewinds it for the next command: read both. */
	r->out = dup_nonempty(nft_ctx_get_output_buffer(c->nft));
	r->err = dup_nonempty(nft_ctx_get_error_buffer(c->nft));

	if (mode == NFTX_LIST || mode == NFTX_LIST_TERSE)
		nft_ctx_output_set_flags(c->nft, flags);
	if (mode == NFTX_CHECK)
		nft_ctx_set_dry_run(c->nft, false);
	pthread_mutex_unlock(&lib_mu);
	pthread_mutex_unlock(&c->mu);

	if (from_file)
		r->err = rename_location(r->err);
	if (r->rc != 0 && r->err == NULL && sys_err != 0) {
		char msg[128];

		snprintf(msg, sizeof(msg), "Error: cannot pass the batch to nft: %s", strerror(sys_err));
		r->err = strdup(msg);
		r->err_no = sys_err;
	} else if (r->rc != 0 && r->err != NULL) {
		r->err_no = errno_from_message(r->err);
	}
}

void nftx_close(nftx_ctx *c)
{
	pthread_mutex_lock(&c->mu);
	free_nft(c);
	pthread_mutex_unlock(&c->mu);
}

void nftx_destroy(nftx_ctx *c)
{
	pthread_mutex_destroy(&c->mu);
}

void nftx_result_clear(nftx_result *r)
{
	free(r->out);
	free(r->err);
	r->out = NULL;
	r->err = NULL;
}
