#!/bin/sh
# Greet from a shell script: a sample script job (webhookd style).
# Parameters arrive as environment variables ($name); the request body as $1.
echo "hello, ${name:-world} from $(basename "$0")"
echo "this line goes to stderr" >&2
[ -n "$1" ] && echo "body: $1"
exit 0
