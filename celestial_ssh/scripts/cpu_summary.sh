#!/bin/sh
# Print the number of CPUs, then the first line of each kind in /proc/cpuinfo that names
# the CPU's model or its features (doctor reads them).
#
# cpu_summary.sh
#
# x86 says "model name" and "flags"; arm64 says "Features" (and sometimes "Hardware");
# s390x and ppc64 say "cpu model" or "cpu". A line repeats for every CPU: only the first
# of each kind is printed.

printf 'processors\t: %s\n' "$(grep -c '^processor' /proc/cpuinfo)"
awk -F: '/^(model name|Hardware|cpu model|cpu|flags|Features)[[:space:]]*:/ {
  key = $1; sub(/[[:space:]]+$/, "", key); if (!(key in seen)) { seen[key] = 1; print } }' /proc/cpuinfo
