/* What every glue part of mod_zeq_e2e shares (not installed): the httpd
 * headers, the module record, the log tags. Each part declares its own
 * interface in its own header (zeq_config.h, zeq_gate.h, ...). */
#ifndef ZEQ_PRIVATE_H
#define ZEQ_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"
#include "apr_proc_mutex.h"

#include "mod_zeq_e2e.h"

extern module AP_MODULE_DECLARE_DATA zeq_e2e_module;

/* The glue file declares the module with AP_DECLARE_MODULE, which does this
 * itself. */
#ifndef ZEQ_MODULE_GLUE
APLOG_USE_MODULE(zeq_e2e);
#endif

/* The module's own log tags: ZEQLOG(10001) -> "ZEQ10001: ". The numbers are
 * grouped by part: 1xxxx config, 2xxxx session, 3xxxx handshake,
 * 4xxxx request side, 5xxxx response side, 6xxxx WebSocket, 7xxxx gate. */
#define ZEQLOG(n) "ZEQ" #n ": "

/* The default mechanism of the module's global mutexes (zeq-e2e-cache,
 * zeq-e2e-replay, zeq-e2e-unused; httpd's Mutex directive chooses another):
 * flock where there is one. APR's default on Linux, one robust
 * process-shared pthread mutex with priority inheritance, takes every
 * waiting thread of every process into the kernel; behind flock, the
 * threads of one process wait on a thread mutex of their own and one of
 * them on the lock, which the kernel releases when its holder dies. Not
 * fcntl: its deadlock detection sees processes, not threads, and refuses
 * (EDEADLK) a thread of one process waiting for one of these locks while
 * another thread of it holds a second. */
#if APR_HAS_FLOCK_SERIALIZE
#define ZEQ_LOCK_MECH APR_LOCK_FLOCK
#else
#define ZEQ_LOCK_MECH APR_LOCK_DEFAULT
#endif

#endif
