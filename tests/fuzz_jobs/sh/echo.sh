#!/bin/sh
# Echo what it got (fuzz target).
echo "a=${a:-} b=${b:-} body=${1:-}"
