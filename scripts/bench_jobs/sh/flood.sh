#!/bin/sh
# Print $mb megabytes of 100-byte lines as fast as the pipe takes them.
yes "$(printf '%099d' 0)" | head -c "$((${mb:-1} * 1000000))"
