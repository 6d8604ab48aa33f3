/*
 * nftctx: a libnftables context bound to one network namespace, guarded by a
 * mutex. Plain C, no Node-API: the Node binding (addon.c) is the only caller.
 *
 * Threading: nftx_open and nftx_close run on the JS thread; nftx_exec may run
 * on any thread and serializes on the context's mutex.
 */
#ifndef NFTCTX_H
#define NFTCTX_H

#include <pthread.h>
#include <stddef.h>

struct nft_ctx;

typedef enum {
	NFTX_RUN = 0,   /* apply the batch (one netlink transaction) */
	NFTX_CHECK = 1, /* dry run: NFT_CTX_DRY_RUN, nothing is committed */
	NFTX_LIST = 2,  /* run with JSON output on, return the output */
	NFTX_LIST_TERSE = 3, /* as NFTX_LIST with terse output: sets and maps without their elements */
} nftx_mode;

typedef struct {
	pthread_mutex_t mu;
	struct nft_ctx *nft; /* NULL once closed */
} nftx_ctx;

typedef struct {
	int rc;       /* 0: success; -1: nft failed; -2: the context was closed */
	char *out;    /* malloc'd copy of the output buffer, or NULL when empty */
	char *err;    /* malloc'd copy of the error buffer, or NULL when empty */
	int err_no;   /* errno that nft reported in its message (0: none found) */
} nftx_result;

/* Result of nftx_open. */
enum {
	NFTX_OPEN_OK = 0,
	NFTX_OPEN_NETNS = 1,       /* the netns file could not be opened or entered */
	NFTX_OPEN_NFT = 2,         /* nft_ctx_new or buffering failed */
	NFTX_OPEN_NO_RESTORE = 3,  /* could not return to the original netns: fatal */
	NFTX_OPEN_NETLINK = 4,     /* no NETLINK_NETFILTER socket could be opened */
};

/*
 * Creates the nft context while the calling thread is inside the network
 * namespace of the file `netns` (NULL: the thread's own), then moves the
 * thread back. On failure, writes a message to errbuf and the errno to
 * *err_no.
 *
 * nft_ctx_new calls exit() when it cannot open its NETLINK_NETFILTER socket,
 * so nftx_open opens one itself first, in the target namespace, and returns
 * NFTX_OPEN_NETLINK instead of creating the context when that fails.
 */
int nftx_open(nftx_ctx *c, const char *netns, char *errbuf, size_t errlen, int *err_no);

/* Runs one batch under the mutex. Always fills *r; free it with nftx_result_clear. */
void nftx_exec(nftx_ctx *c, nftx_mode mode, const char *cmd, nftx_result *r);

/* Frees the nft context (waits for a running nftx_exec). Idempotent. */
void nftx_close(nftx_ctx *c);

/* Frees the mutex. The context must be closed and unused. */
void nftx_destroy(nftx_ctx *c);

void nftx_result_clear(nftx_result *r);

/* Number of nft contexts created and not yet freed, process-wide. */
long nftx_live_count(void);

#endif
