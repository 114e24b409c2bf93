/* The Redis store's Lua scripts (the .lua files of common/dedup/lua), compiled in by
 * cmake/embed_lua.cmake. Each is NUL-terminated; _len excludes the NUL. */
#ifndef TW_DEDUP_LUA_H
#define TW_DEDUP_LUA_H

#include <stddef.h>

extern const char dedup_lua_batch[];
extern const size_t dedup_lua_batch_len;
extern const char dedup_lua_cluster[];
extern const size_t dedup_lua_cluster_len;

#endif
