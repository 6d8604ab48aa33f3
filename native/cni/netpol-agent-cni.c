/* netpol-agent-cni: a chained CNI plugin (spec 1.0, STATUS of 1.1) that holds a pod's start until the
 * local netpol-agent has committed the pod's rules to the kernel.
 *
 * ADD: the pod's addresses come from prevResult.ips (the main plugin's result), its namespace/name from
 * CNI_ARGS. One JSON line goes to the agent's unix socket and the plugin waits, bounded by timeoutMs, for
 * one JSON line back; on {"result":"ok"} it prints prevResult unchanged. When the agent is absent, slow
 * or answers an error, failurePolicy decides: "fail-closed" (default) fails ADD (code 11, so the
 * runtime retries the sandbox) and the pod does not start unprotected; "fail-open" lets the pod start
 * and says so on stderr (the runtime's log).
 * DEL tells the agent the addresses are gone and never fails because of the agent. CHECK validates the
 * configuration and prevResult. STATUS asks the agent whether it is ready (failure policy as for ADD).
 *
 * Static, no run-time dependency: it runs on the host, where no Node.js may exist. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define DEFAULT_SOCKET "/run/netpol-agent/cni.sock"
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_TIMEOUT_MS 300000
#define MAX_INPUT (4 << 20)
#define MAX_ANSWER 65536
#define MAX_IPS 16

/* Error codes of the CNI specification, and ours (100 and up are the plugin's own). */
enum {
    CNI_ERR_INCOMPATIBLE_VERSION = 1,
    CNI_ERR_INVALID_ENV = 4,
    CNI_ERR_IO = 5,
    CNI_ERR_DECODE = 6,
    CNI_ERR_INVALID_CONFIG = 7,
    CNI_ERR_TRY_AGAIN = 11,
    CNI_ERR_PLUGIN_NOT_AVAILABLE = 50,
    ERR_AGENT_REFUSED = 100,
};

static const char *const SUPPORTED_VERSIONS[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
#define N_VERSIONS (sizeof SUPPORTED_VERSIONS / sizeof SUPPORTED_VERSIONS[0])

static const char *cni_version = "1.0.0";

/* ---- output ------------------------------------------------------------------------------------- */

struct buf {
    char *data;
    size_t len, cap;
};

static void buf_put(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            fputs("netpol-agent-cni: out of memory\n", stderr);
            exit(1);
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/* A JSON string literal. */
static void buf_json(struct buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            buf_put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            buf_put(b, esc, 6);
        } else {
            buf_put(b, (const char *)c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* Prints a CNI error on stdout (where the runtime reads it) and returns the exit status. */
static int cni_error(int code, const char *details, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct buf b = { 0 };
    buf_str(&b, "{\"cniVersion\":");
    buf_json(&b, cni_version);
    buf_str(&b, ",\"code\":");
    char num[16];
    snprintf(num, sizeof num, "%d", code);
    buf_str(&b, num);
    buf_str(&b, ",\"msg\":");
    buf_json(&b, msg);
    if (details != NULL && *details) {
        buf_str(&b, ",\"details\":");
        buf_json(&b, details);
    }
    buf_str(&b, "}\n");
    fputs(b.data, stdout);
    free(b.data);
    return 1;
}

/* ---- input -------------------------------------------------------------------------------------- */

static char *read_stdin(size_t *len) {
    struct buf b = { 0 };
    char chunk[8192];
    buf_put(&b, "", 0);
    for (;;) {
        ssize_t n = read(0, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(b.data);
            return NULL;
        }
        if (n == 0) break;
        if (b.len + (size_t)n > MAX_INPUT) {
            free(b.data);
            errno = EFBIG;
            return NULL;
        }
        buf_put(&b, chunk, (size_t)n);
    }
    *len = b.len;
    return b.data;
}

/* The value of KEY in CNI_ARGS ("K1=V1;K2=V2"), copied into out; 0 when absent. */
static int cni_arg(const char *args, const char *key, char *out, size_t outlen) {
    size_t klen = strlen(key);
    for (const char *p = args; p != NULL && *p;) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = n - klen - 1;
            if (vlen >= outlen) vlen = outlen - 1;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

struct config {
    const char *socket_path;
    long timeout_ms;
    int fail_open;
    const struct json_node *prev_result;
    const char *ips[MAX_IPS];
    int n_ips;
};

static int version_supported(const char *v) {
    for (size_t i = 0; i < N_VERSIONS; i++)
        if (strcmp(v, SUPPORTED_VERSIONS[i]) == 0) return 1;
    return 0;
}

/* Reads the plugin's settings from the network configuration; returns 0 or the exit status of the
 * error it printed. */
static int read_config(const struct json_node *root, struct config *cfg, int need_prev_result) {
    memset(cfg, 0, sizeof *cfg);
    cfg->socket_path = DEFAULT_SOCKET;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    const struct json_node *n;
    if ((n = json_get(root, "socketPath")) != NULL) {
        if (json_string(n) == NULL || *json_string(n) == '\0') return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "socketPath must be a non-empty string");
        cfg->socket_path = json_string(n);
        if (strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return cni_error(CNI_ERR_INVALID_CONFIG, cfg->socket_path, "socketPath is longer than a unix socket path may be");
    }
    if ((n = json_get(root, "timeoutMs")) != NULL) {
        char *end;
        long v = n->type == JSON_NUMBER ? strtol(n->start, &end, 10) : -1;
        if (n->type != JSON_NUMBER || end != n->start + n->len || v < 1 || v > MAX_TIMEOUT_MS)
            return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "timeoutMs must be an integer from 1 to %d", MAX_TIMEOUT_MS);
        cfg->timeout_ms = v;
    }
    if ((n = json_get(root, "failurePolicy")) != NULL) {
        const char *s = json_string(n);
        if (s != NULL && strcmp(s, "fail-open") == 0) cfg->fail_open = 1;
        else if (s == NULL || strcmp(s, "fail-closed") != 0)
            return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "failurePolicy must be \"fail-closed\" or \"fail-open\"");
    }
    cfg->prev_result = json_get(root, "prevResult");
    if (cfg->prev_result == NULL || cfg->prev_result->type == JSON_NULL) {
        cfg->prev_result = NULL;
        if (need_prev_result)
            return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "no prevResult: netpol-agent-cni is a chained plugin and must come after the plugin that assigns the pod's addresses");
        return 0;
    }
    if (cfg->prev_result->type != JSON_OBJECT) return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "prevResult must be an object");
    const struct json_node *ips = json_get(cfg->prev_result, "ips");
    if (ips != NULL && ips->type != JSON_ARRAY) return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "prevResult.ips must be an array");
    for (const struct json_node *ip = ips ? ips->child : NULL; ip != NULL; ip = ip->next) {
        const char *address = json_string(json_get(ip, "address"));
        if (address == NULL) return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "prevResult.ips[%d].address must be a string", cfg->n_ips);
        if (cfg->n_ips == MAX_IPS) return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "prevResult has more than %d addresses", MAX_IPS);
        cfg->ips[cfg->n_ips++] = address;
    }
    if (need_prev_result && cfg->n_ips == 0)
        return cni_error(CNI_ERR_INVALID_CONFIG, NULL, "prevResult has no ips: the plugin before netpol-agent-cni assigned the pod no address");
    return 0;
}

/* ---- the agent ---------------------------------------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one request line and reads one answer line before the deadline. Returns 0 with the answer in
 * *answer, or -1 with the reason in why. */
static int ask_agent(const char *path, const char *request, long timeout_ms, char **answer, char *why, size_t whylen) {
    long long deadline = now_ms() + timeout_ms;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS && errno != EAGAIN) {
        snprintf(why, whylen, "cannot connect to the agent at %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t sent = 0, total = strlen(request);
    struct buf in = { 0 };
    buf_put(&in, "", 0);
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            snprintf(why, whylen, "the agent at %s did not answer within %ld ms", path, timeout_ms);
            goto fail;
        }
        struct pollfd pfd = { .fd = fd, .events = sent < total ? POLLOUT : POLLIN };
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(why, whylen, "poll: %s", strerror(errno));
            goto fail;
        }
        if (r == 0) continue;
        if (sent < total) {
            ssize_t n = send(fd, request + sent, total - sent, MSG_NOSIGNAL);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n < 0) {
                snprintf(why, whylen, "cannot send to the agent at %s: %s", path, strerror(errno));
                goto fail;
            }
            sent += (size_t)n;
            continue;
        }
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n < 0) {
            snprintf(why, whylen, "cannot read from the agent at %s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0) {
            snprintf(why, whylen, "the agent at %s closed the connection without answering", path);
            goto fail;
        }
        buf_put(&in, chunk, (size_t)n);
        char *nl = memchr(in.data, '\n', in.len);
        if (nl != NULL) {
            *nl = '\0';
            close(fd);
            *answer = in.data;
            return 0;
        }
        if (in.len > MAX_ANSWER) {
            snprintf(why, whylen, "the agent's answer is longer than %d bytes", MAX_ANSWER);
            goto fail;
        }
    }
fail:
    free(in.data);
    close(fd);
    return -1;
}

/* Asks the agent and reads its verdict. Returns 0 (ok), 1 (the agent is unavailable: no answer, a
 * timeout, an unreadable answer) or 2 (the agent refused, reason in why). */
static int agent_verdict(const struct config *cfg, const char *request, char *why, size_t whylen) {
    char *answer = NULL;
    if (ask_agent(cfg->socket_path, request, cfg->timeout_ms, &answer, why, whylen) < 0) return 1;
    char err[256];
    struct json_node *doc = json_parse(answer, strlen(answer), err, sizeof err);
    int verdict = 1;
    const char *result = json_string(json_get(doc, "result"));
    if (doc == NULL || result == NULL) {
        snprintf(why, whylen, "unreadable answer from the agent: %s", doc == NULL ? err : "no \"result\"");
    } else if (strcmp(result, "ok") == 0) {
        verdict = 0;
    } else {
        const char *message = json_string(json_get(doc, "message"));
        snprintf(why, whylen, "%s", message != NULL ? message : "the agent refused without a message");
        verdict = 2;
    }
    json_free(doc);
    free(answer);
    return verdict;
}

static void request_head(struct buf *b, const char *op, const char *container_id, const char *args) {
    char ns[256] = "", name[256] = "", uid[128] = "";
    cni_arg(args, "K8S_POD_NAMESPACE", ns, sizeof ns);
    cni_arg(args, "K8S_POD_NAME", name, sizeof name);
    cni_arg(args, "K8S_POD_UID", uid, sizeof uid);
    buf_str(b, "{\"op\":");
    buf_json(b, op);
    buf_str(b, ",\"namespace\":");
    buf_json(b, ns);
    buf_str(b, ",\"name\":");
    buf_json(b, name);
    buf_str(b, ",\"uid\":");
    buf_json(b, uid);
    buf_str(b, ",\"containerId\":");
    buf_json(b, container_id);
}

static void request_ips(struct buf *b, const struct config *cfg) {
    buf_str(b, ",\"ips\":[");
    for (int i = 0; i < cfg->n_ips; i++) {
        if (i > 0) buf_str(b, ",");
        buf_json(b, cfg->ips[i]);
    }
    char tail[64];
    snprintf(tail, sizeof tail, "],\"timeoutMs\":%ld}\n", cfg->timeout_ms);
    buf_str(b, tail);
}

/* ---- commands ----------------------------------------------------------------------------------- */

static int cmd_add(const struct config *cfg, const char *container_id, const char *args) {
    char ns[256], name[256];
    if (!cni_arg(args, "K8S_POD_NAMESPACE", ns, sizeof ns) || !cni_arg(args, "K8S_POD_NAME", name, sizeof name))
        return cni_error(CNI_ERR_INVALID_ENV, NULL, "CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)");
    struct buf req = { 0 };
    request_head(&req, "add", container_id, args);
    request_ips(&req, cfg);
    char why[512];
    int verdict = agent_verdict(cfg, req.data, why, sizeof why);
    free(req.data);
    if (verdict != 0 && !cfg->fail_open) {
        if (verdict == 1)
            return cni_error(CNI_ERR_TRY_AGAIN, why, "pod %s/%s: netpol-agent did not confirm its network policy rules (failurePolicy fail-closed); the pod starts once the agent runs", ns, name);
        return cni_error(ERR_AGENT_REFUSED, why, "pod %s/%s: netpol-agent could not enforce its network policy rules", ns, name);
    }
    if (verdict != 0)
        fprintf(stderr, "netpol-agent-cni: pod %s/%s starts without confirmed network policy rules (failurePolicy fail-open): %s\n", ns, name, why);
    fwrite(cfg->prev_result->start, 1, cfg->prev_result->len, stdout);
    fputc('\n', stdout);
    return 0;
}

static int cmd_del(const struct config *cfg, const char *container_id, const char *args) {
    struct buf req = { 0 };
    request_head(&req, "del", container_id, args);
    request_ips(&req, cfg);
    char why[512];
    if (agent_verdict(cfg, req.data, why, sizeof why) != 0)
        fprintf(stderr, "netpol-agent-cni: DEL of container %s: %s (ignored: the agent drops the addresses when the API reports the pod gone)\n", container_id, why);
    free(req.data);
    return 0;
}

static int cmd_status(const struct config *cfg) {
    char why[512];
    if (agent_verdict(cfg, "{\"op\":\"status\"}\n", why, sizeof why) == 0 || cfg->fail_open) return 0;
    return cni_error(CNI_ERR_PLUGIN_NOT_AVAILABLE, why, "netpol-agent is not ready to confirm network policy rules (failurePolicy fail-closed)");
}

static int cmd_version(void) {
    struct buf b = { 0 };
    buf_str(&b, "{\"cniVersion\":");
    buf_json(&b, cni_version);
    buf_str(&b, ",\"supportedVersions\":[");
    for (size_t i = 0; i < N_VERSIONS; i++) {
        if (i > 0) buf_str(&b, ",");
        buf_json(&b, SUPPORTED_VERSIONS[i]);
    }
    buf_str(&b, "]}\n");
    fputs(b.data, stdout);
    free(b.data);
    return 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *command = getenv("CNI_COMMAND");
    if (command == NULL || *command == '\0') {
        fputs("netpol-agent-cni: a CNI plugin, run by the container runtime with CNI_COMMAND set; chain it after the\n"
              "plugin that assigns pod addresses in the node's conflist (see the netpol-agent README).\n", stderr);
        return cni_error(CNI_ERR_INVALID_ENV, NULL, "CNI_COMMAND is not set");
    }
    int is_version = strcmp(command, "VERSION") == 0;
    size_t len = 0;
    char *input = read_stdin(&len);
    if (input == NULL) return cni_error(CNI_ERR_IO, NULL, "cannot read the network configuration from stdin: %s", strerror(errno));
    char err[256];
    struct json_node *root = json_parse(input, len, err, sizeof err);
    if (root == NULL) {
        if (is_version && len == 0) return cmd_version();
        return cni_error(CNI_ERR_DECODE, err, "the network configuration on stdin is not valid JSON");
    }
    if (root->type != JSON_OBJECT) return cni_error(CNI_ERR_DECODE, NULL, "the network configuration must be a JSON object");
    const struct json_node *version = json_get(root, "cniVersion");
    if (version != NULL) {
        if (json_string(version) == NULL) return cni_error(CNI_ERR_DECODE, NULL, "cniVersion must be a string");
        if (!version_supported(json_string(version)))
            return cni_error(CNI_ERR_INCOMPATIBLE_VERSION, json_string(version), "unsupported cniVersion %s (supported: 0.3.0 to 1.1.0)", json_string(version));
        cni_version = json_string(version);
    }
    if (is_version) return cmd_version();

    const char *container_id = getenv("CNI_CONTAINERID");
    const char *args = getenv("CNI_ARGS");
    if (args == NULL) args = "";
    int add = strcmp(command, "ADD") == 0, del = strcmp(command, "DEL") == 0, check = strcmp(command, "CHECK") == 0;
    if (strcmp(command, "GC") == 0) return 0; /* the plugin keeps no state of its own to collect */
    if (!add && !del && !check && strcmp(command, "STATUS") != 0)
        return cni_error(CNI_ERR_INVALID_ENV, command, "unknown CNI_COMMAND %s (ADD, DEL, CHECK, STATUS, VERSION, GC)", command);
    if ((add || del || check) && (container_id == NULL || *container_id == '\0'))
        return cni_error(CNI_ERR_INVALID_ENV, NULL, "CNI_CONTAINERID is not set");
    struct config cfg;
    int status = read_config(root, &cfg, add || check);
    if (status != 0) return status;
    if (add) return cmd_add(&cfg, container_id, args);
    if (del) return cmd_del(&cfg, container_id, args);
    if (check) return 0; /* configuration and prevResult are valid; the agent keeps the rules in place */
    return cmd_status(&cfg);
}
