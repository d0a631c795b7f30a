/*
 * malloc_trim for the bridge (services/malloc-trim.ts): glibc keeps memory that the process
 * allocated and freed (start-up, the Temporal core, V8's compiler, SQLite) in its arenas, in
 * pieces too fragmented for free() to return; malloc_trim(0) hands every free page back to the
 * kernel. A Node-API module with one function, `trim()` → whether any memory was released.
 * Built by scripts/setup.sh with the C compiler and the running node's headers.
 */
#include <node_api.h>
#include <stdbool.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#ifdef __GLIBC__
  released = malloc_trim(0) != 0;
#endif
  napi_value result;
  napi_get_boolean(env, released, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  return exports;
}
