"""The built-in jobs: Azure resource groups, VMs and the identity the runner acts as.

Shipped in the wheel as ``runner.builtin_jobs``; the catalogue finds them by folder, one
job per file (this file, like every ``_``-named one, is no job).
"""
