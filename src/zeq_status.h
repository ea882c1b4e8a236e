/* The module's section of mod_status (/server-status, and ?auto for
 * machines), as mod_ssl shows its session cache: the store and its state,
 * and the counters of zeq_stats. */
#ifndef ZEQ_STATUS_H
#define ZEQ_STATUS_H

#include "zeq_private.h"

void zeq_status_register_hooks(apr_pool_t *p);

#endif
