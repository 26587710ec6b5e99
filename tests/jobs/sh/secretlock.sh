#!/bin/sh
# Hold a lock named after a secret (a careless header).
# runner-lock: site:{token}
# runner-secret: token
sleep "${seconds:-0}"
echo working
