/* The embedded browser library, served at ZeqE2EClientScriptPath. */
#ifndef ZEQ_CLIENT_H
#define ZEQ_CLIENT_H

#include "zeq_private.h"

void zeq_client_register_hooks(apr_pool_t *p);

#endif
