#!/bin/sh
# Declared parameters, for the fuzzer: forms and JSON bodies meet them.
# runner-param: name required pattern=^[a-z][a-z0-9-]{0,14}$ -- a name
# runner-param: size choices=small,large default=small
# runner-param: token secret
echo "name=$name size=$size"
