#!/bin/sh
# A fragment, not a script: defines hash_stdin for the scripts that say
# "# include: lib_hash_stdin.sh" (host_scripts puts this text where that line stands).
#
# hash_stdin: print the SHA-256 of stdin, the digest as the first field. openssl uses the
# CPU's SHA instructions (5x coreutils' sha256sum on our machines); sha256sum where there
# is no openssl.

# (called by the scripts that include it, never here)
# shellcheck disable=SC2329
hash_stdin() {
  if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi
}
