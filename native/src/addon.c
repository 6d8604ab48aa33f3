/*
 * Node-API binding for nftctx. The JS wrapper (index.js) is the public API;
 * this file exports one class and one diagnostic function:
 *
 *   new NativeContext(netns: string | undefined)
 *   ctx.execSync(mode: number, cmd: string): string | undefined  (throws)
 *   ctx.exec(mode: number, cmd: string): Promise<string | undefined>
 *   ctx.close(): void
 *   liveContexts(): number
 *   injectFailures(create: number, queue: number): void   (tests only)
 *
 * Errors thrown or rejected here are plain Errors with `code`, `nftMessage`
 * and `errno` properties; index.js turns them into NftError.
 *
 * Async jobs follow the baton pattern: exec() copies the JS string into a C
 * job on the JS thread, job_execute() runs on the libuv pool and touches only
 * the job and the mutex-guarded nft context, job_complete() runs back on the
 * JS thread and settles the promise. Jobs of one context form a FIFO queue and
 * only its head is handed to the pool, so jobs run in call order and a burst
 * of calls occupies one pool thread, not all of them.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nftctx.h"
#include "nflog.h"

typedef struct job job;

typedef struct {
	nftx_ctx core;
	job *head, *tail;  /* queued async jobs; head is the one on the pool */
	napi_ref keepalive; /* strong ref on the JS object while jobs are queued */
	int closed;         /* close() was called: no new calls are accepted */
} handle;

static void job_execute(napi_env env, void *data);
static void job_complete(napi_env env, napi_status status, void *data);

struct job {
	handle *h;
	nftx_mode mode;
	char *cmd;
	nftx_result res;
	napi_async_work work;
	napi_deferred deferred;
	job *next;
};

/*
 * Test hook (injectFailures): the next N napi_create_async_work or
 * napi_queue_async_work calls fail as if Node-API had refused them, so that
 * the tests can prove those paths settle the promise and keep the queue
 * moving. JS thread only.
 */
static unsigned int inject_create_failures;
static unsigned int inject_queue_failures;

static napi_status create_work(napi_env env, napi_value name, job *j)
{
	if (inject_create_failures > 0) {
		inject_create_failures--;
		return napi_generic_failure;
	}
	return napi_create_async_work(env, NULL, name, job_execute, job_complete, j, &j->work);
}

static napi_status queue_work(napi_env env, job *j)
{
	if (inject_queue_failures > 0) {
		inject_queue_failures--;
		return napi_generic_failure;
	}
	return napi_queue_async_work(env, j->work);
}

#define CHECK(env, call)                                                    \
	do {                                                                \
		if ((call) != napi_ok) {                                    \
			throw_last_error(env, #call);                       \
			return NULL;                                        \
		}                                                           \
	} while (0)

static void throw_last_error(napi_env env, const char *what)
{
	const napi_extended_error_info *info = NULL;
	bool pending = false;

	napi_is_exception_pending(env, &pending);
	if (pending)
		return;
	napi_get_last_error_info(env, &info);
	char msg[256];
	snprintf(msg, sizeof(msg), "nftables-napi: %s failed: %s", what,
		 info && info->error_message ? info->error_message : "unknown error");
	napi_throw_error(env, NULL, msg);
}

static napi_value make_error(napi_env env, const char *code, const char *message,
			     const char *nft_message, int err_no)
{
	napi_value msg, err, v;

	if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
	    napi_create_error(env, NULL, msg, &err) != napi_ok)
		return NULL;
	if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &v) == napi_ok)
		napi_set_named_property(env, err, "code", v);
	if (napi_create_string_utf8(env, nft_message ? nft_message : "", NAPI_AUTO_LENGTH, &v) == napi_ok)
		napi_set_named_property(env, err, "nftMessage", v);
	if (err_no != 0 && napi_create_int32(env, err_no, &v) == napi_ok)
		napi_set_named_property(env, err, "errno", v);
	return err;
}

/* An NFT_INTERNAL error for a Node-API call that failed with `status`. */
static napi_value status_error(napi_env env, const char *what, napi_status status)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "nftables-napi: %s failed (napi_status %d); the command was not run",
		 what, (int)status);
	return make_error(env, "NFT_INTERNAL", msg, "", 0);
}

/* Rejects a job that never reached the pool and frees it. */
static void reject_unstarted(napi_env env, job *j, napi_value err)
{
	napi_value undef;

	if (err == NULL) {
		/* Building the error threw (out of memory): reject with that. */
		if (napi_get_and_clear_last_exception(env, &err) != napi_ok)
			err = NULL;
		if (err == NULL && napi_get_undefined(env, &undef) == napi_ok)
			err = undef;
	}
	napi_reject_deferred(env, j->deferred, err);
	if (j->work != NULL)
		napi_delete_async_work(env, j->work);
	free(j->cmd);
	free(j);
}

/* Turns a finished result into a value (the output, or undefined) or an error. */
static napi_value settle_value(napi_env env, const nftx_result *r, bool *failed)
{
	napi_value v = NULL;

	*failed = r->rc != 0;
	if (r->rc == -2)
		return make_error(env, "NFT_CONTEXT_CLOSED", "the nft context is closed", "", 0);
	if (r->rc != 0)
		return make_error(env, "NFT_COMMAND_FAILED",
				  r->err ? r->err : "nft command failed", r->err, r->err_no);
	if (r->out != NULL) {
		if (napi_create_string_utf8(env, r->out, NAPI_AUTO_LENGTH, &v) != napi_ok)
			return NULL;
	} else {
		napi_get_undefined(env, &v);
	}
	return v;
}

/* Copies a JS string into a malloc'd C string; NULL with an exception on failure. */
static char *get_string(napi_env env, napi_value v, const char *what)
{
	napi_valuetype t;
	size_t len = 0;
	char *s;

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s must be a string", what);
		napi_throw_type_error(env, NULL, msg);
		return NULL;
	}
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
		throw_last_error(env, "napi_get_value_string_utf8");
		return NULL;
	}
	s = malloc(len + 1);
	if (s == NULL) {
		napi_throw_error(env, NULL, "nftables-napi: out of memory");
		return NULL;
	}
	if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
		free(s);
		throw_last_error(env, "napi_get_value_string_utf8");
		return NULL;
	}
	return s;
}

static bool get_mode(napi_env env, napi_value v, nftx_mode *mode)
{
	int32_t m = -1;

	if (napi_get_value_int32(env, v, &m) != napi_ok || m < NFTX_RUN || m > NFTX_LIST_TERSE) {
		napi_throw_type_error(env, NULL, "mode must be 0, 1, 2 or 3");
		return false;
	}
	*mode = (nftx_mode)m;
	return true;
}

static void handle_finalize(napi_env env, void *data, void *hint)
{
	handle *h = data;

	(void)env;
	(void)hint;
	/*
	 * Queued jobs hold a strong reference, so the object is collected only
	 * when the queue is empty. The exception is environment teardown with
	 * work in flight: a job may still be using the context, so leak it.
	 */
	if (h->head != NULL)
		return;
	nftx_close(&h->core);
	nftx_destroy(&h->core);
	free(h);
}

static napi_value ctx_new(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], self, target;
	napi_valuetype t = napi_undefined;
	char *netns = NULL;
	char errbuf[512];
	int err_no = 0, rc;
	handle *h;

	CHECK(env, napi_get_new_target(env, info, &target));
	if (target == NULL) {
		napi_throw_type_error(env, NULL, "NativeContext must be called with new");
		return NULL;
	}
	CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (argc >= 1)
		CHECK(env, napi_typeof(env, argv[0], &t));
	if (t != napi_undefined && t != napi_null) {
		netns = get_string(env, argv[0], "netns");
		if (netns == NULL)
			return NULL;
	}

	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		free(netns);
		napi_throw_error(env, NULL, "nftables-napi: out of memory");
		return NULL;
	}
	rc = nftx_open(&h->core, netns, errbuf, sizeof(errbuf), &err_no);
	free(netns);
	if (rc == NFTX_OPEN_NO_RESTORE) {
		/* The JS thread is stuck in another netns: nothing it does is safe. */
		napi_fatal_error("nftables-napi", NAPI_AUTO_LENGTH, errbuf, NAPI_AUTO_LENGTH);
	}
	if (rc != NFTX_OPEN_OK) {
		free(h);
		const char *code = rc == NFTX_OPEN_NETNS     ? "NFT_NETNS"
				   : rc == NFTX_OPEN_NETLINK ? "NFT_NETLINK"
							     : "NFT_COMMAND_FAILED";
		napi_value err = make_error(env, code, errbuf, errbuf, err_no);
		if (err != NULL)
			napi_throw(env, err);
		return NULL;
	}
	if (napi_wrap(env, self, h, handle_finalize, NULL, NULL) != napi_ok) {
		nftx_close(&h->core);
		nftx_destroy(&h->core);
		free(h);
		throw_last_error(env, "napi_wrap");
		return NULL;
	}
	return self;
}

static handle *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv)
{
	napi_value self;
	void *data = NULL;

	if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok ||
	    napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
		napi_throw_type_error(env, NULL, "not a NativeContext");
		return NULL;
	}
	return data;
}

static napi_value ctx_exec_sync(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], result;
	nftx_mode mode;
	nftx_result r;
	handle *h;
	char *cmd;
	bool failed;

	h = unwrap(env, info, &argc, argv);
	if (h == NULL)
		return NULL;
	if (argc < 2) {
		napi_throw_type_error(env, NULL, "execSync(mode, cmd) needs two arguments");
		return NULL;
	}
	if (!get_mode(env, argv[0], &mode))
		return NULL;
	if (h->closed) {
		napi_value err = make_error(env, "NFT_CONTEXT_CLOSED", "the nft context is closed", "", 0);
		if (err != NULL)
			napi_throw(env, err);
		return NULL;
	}
	cmd = get_string(env, argv[1], "batch");
	if (cmd == NULL)
		return NULL;

	/* Waits on the mutex if a pool thread is running this context's job. */
	nftx_exec(&h->core, mode, cmd, &r);
	free(cmd);
	result = settle_value(env, &r, &failed);
	nftx_result_clear(&r);
	if (result == NULL)
		return NULL;
	if (failed) {
		napi_throw(env, result);
		return NULL;
	}
	return result;
}

static void job_execute(napi_env env, void *data)
{
	job *j = data;

	(void)env; /* no Node-API calls off the JS thread */
	nftx_exec(&j->h->core, j->mode, j->cmd, &j->res);
}

/* The queue is empty: drop the self-reference, and free the context if close() was deferred. */
static void queue_drained(napi_env env, handle *h)
{
	h->tail = NULL;
	if (h->keepalive != NULL) {
		napi_delete_reference(env, h->keepalive);
		h->keepalive = NULL;
	}
	if (h->closed)
		nftx_close(&h->core);
}

/*
 * Hands the queue's head to the pool. A head that Node-API refuses is
 * rejected and dropped, and the next one is tried, so a failure never leaves
 * the queue stuck behind a job that will never run.
 */
static void start_head(napi_env env, handle *h)
{
	while (h->head != NULL) {
		job *j = h->head;
		napi_status st = queue_work(env, j);

		if (st == napi_ok)
			return;
		h->head = j->next;
		reject_unstarted(env, j, status_error(env, "napi_queue_async_work", st));
	}
	queue_drained(env, h);
}

static void job_complete(napi_env env, napi_status status, void *data)
{
	job *j = data;
	handle *h = j->h;
	napi_value value;
	bool failed = true;

	if (status == napi_cancelled) {
		value = make_error(env, "NFT_CONTEXT_CLOSED", "the job was cancelled", "", 0);
	} else {
		value = settle_value(env, &j->res, &failed);
	}
	if (value == NULL) {
		/* Building the value threw (out of memory): reject with that. */
		napi_get_and_clear_last_exception(env, &value);
		failed = true;
	}
	/* Settled before the next job starts (or is rejected): promises settle in call order. */
	if (failed)
		napi_reject_deferred(env, j->deferred, value);
	else
		napi_resolve_deferred(env, j->deferred, value);

	/* Pop this job and hand the next one to the pool. */
	h->head = j->next;
	napi_delete_async_work(env, j->work);
	nftx_result_clear(&j->res);
	free(j->cmd);
	free(j);
	start_head(env, h);
}

static napi_value ctx_exec(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], self, promise, name;
	napi_status st;
	nftx_mode mode;
	handle *h;
	job *j;
	void *data = NULL;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
	if (napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
		napi_throw_type_error(env, NULL, "not a NativeContext");
		return NULL;
	}
	h = data;
	if (argc < 2) {
		napi_throw_type_error(env, NULL, "exec(mode, cmd) needs two arguments");
		return NULL;
	}
	if (!get_mode(env, argv[0], &mode))
		return NULL;

	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		napi_throw_error(env, NULL, "nftables-napi: out of memory");
		return NULL;
	}
	j->h = h;
	j->mode = mode;
	if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
		free(j);
		throw_last_error(env, "napi_create_promise");
		return NULL;
	}
	/* From here on every failure rejects the promise: the caller always gets it back. */
	if (h->closed) {
		reject_unstarted(env, j, make_error(env, "NFT_CONTEXT_CLOSED", "the nft context is closed", "", 0));
		return promise;
	}
	j->cmd = get_string(env, argv[1], "batch");
	if (j->cmd == NULL) {
		reject_unstarted(env, j, NULL);
		return promise;
	}
	st = napi_create_string_utf8(env, "nftables-napi:exec", NAPI_AUTO_LENGTH, &name);
	if (st == napi_ok)
		st = create_work(env, name, j);
	if (st != napi_ok) {
		reject_unstarted(env, j, status_error(env, "napi_create_async_work", st));
		return promise;
	}

	if (h->tail != NULL) {
		h->tail->next = j;
		h->tail = j;
		return promise;
	}
	/* First queued job: keep the object (and so the context) alive until the queue drains. */
	if (h->keepalive == NULL) {
		st = napi_create_reference(env, self, 1, &h->keepalive);
		if (st != napi_ok) {
			h->keepalive = NULL;
			reject_unstarted(env, j, status_error(env, "napi_create_reference", st));
			return promise;
		}
	}
	h->head = h->tail = j;
	start_head(env, h);
	return promise;
}

static napi_value ctx_close(napi_env env, napi_callback_info info)
{
	size_t argc = 0;
	handle *h = unwrap(env, info, &argc, NULL);

	if (h == NULL)
		return NULL;
	h->closed = 1;
	/* With jobs queued, the last job_complete frees the context. */
	if (h->head == NULL)
		nftx_close(&h->core);
	return NULL;
}

static napi_value live_contexts(napi_env env, napi_callback_info info)
{
	napi_value v;

	(void)info;
	CHECK(env, napi_create_int64(env, nftx_live_count(), &v));
	return v;
}

static napi_value inject_failures(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	uint32_t create = 0, queue = 0;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2 || napi_get_value_uint32(env, argv[0], &create) != napi_ok ||
	    napi_get_value_uint32(env, argv[1], &queue) != napi_ok) {
		napi_throw_type_error(env, NULL, "injectFailures(create, queue) needs two counts");
		return NULL;
	}
	inject_create_failures = create;
	inject_queue_failures = queue;
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor methods[] = {
		{ "execSync", NULL, ctx_exec_sync, NULL, NULL, NULL, napi_default_method, NULL },
		{ "exec", NULL, ctx_exec, NULL, NULL, NULL, napi_default_method, NULL },
		{ "close", NULL, ctx_close, NULL, NULL, NULL, napi_default_method, NULL },
	};
	napi_value cls, fn;

	CHECK(env, napi_define_class(env, "NativeContext", NAPI_AUTO_LENGTH, ctx_new, NULL,
				     sizeof(methods) / sizeof(methods[0]), methods, &cls));
	CHECK(env, napi_set_named_property(env, exports, "NativeContext", cls));
	CHECK(env, napi_create_function(env, "liveContexts", NAPI_AUTO_LENGTH, live_contexts, NULL, &fn));
	CHECK(env, napi_set_named_property(env, exports, "liveContexts", fn));
	CHECK(env, napi_create_function(env, "injectFailures", NAPI_AUTO_LENGTH, inject_failures, NULL, &fn));
	CHECK(env, napi_set_named_property(env, exports, "injectFailures", fn));
	if (nflog_register(env, exports) != 0)
		return NULL;
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
