#!/bin/sh
# Print one line longer than the 64 KiB cut with the secret across the cut, then one with
# a two-byte character across it.
# runner-secret: token
head -c 65530 /dev/zero | tr '\0' x
printf '%s' "$token"
head -c 100 /dev/zero | tr '\0' y
echo
head -c 65535 /dev/zero | tr '\0' z
printf 'é and the rest\n'
