#!/usr/bin/env bash
# Where build scripts keep what they fetch and build outside the clone. Sourced, not run.
#
#   armorclaw_cache_base    prints the cache's base directory:
#                           $ARMORCLAW_CACHE_DIR when set; else /var/cache/armorclaw as root,
#                           ${XDG_CACHE_HOME:-~/.cache}/armorclaw otherwise.
#
# Each script keeps its own subdirectory of it, named after what it holds and its versions.

armorclaw_cache_base() {
  if [[ -n "${ARMORCLAW_CACHE_DIR:-}" ]]; then
    printf '%s\n' "$ARMORCLAW_CACHE_DIR"
  elif [[ $(id -u) -eq 0 ]]; then
    printf '%s\n' /var/cache/armorclaw
  else
    printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/armorclaw"
  fi
}
