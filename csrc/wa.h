/*
 * wa.h - internal declarations shared by the C core's areas.
 *
 * Each area (crypto.c, webhook.c, json.c) registers its functions into the
 * module table with wa_<area>_open(L).  Only luaopen_whatsapp_core (core.c)
 * is exported from the shared object.
 */
#ifndef WA_H
#define WA_H

#include "compat.h"
#include <stddef.h>

#define WA_VERSION "0.1.0"

/* Registrars: each takes the module table at the top of the stack. */
WA_HIDDEN void wa_crypto_open(lua_State *L);
WA_HIDDEN void wa_webhook_open(lua_State *L);

#endif /* WA_H */
