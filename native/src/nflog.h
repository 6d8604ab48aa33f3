/* NflogReader (nflog.c): an nfnetlink_log group read on a thread, delivered to JS in batches. */
#ifndef NFLOG_H
#define NFLOG_H

#include <node_api.h>

/* Defines the NflogReader class on `exports`; 0 on success, -1 with a pending JS exception. */
int nflog_register(napi_env env, napi_value exports);

#endif
