#!/usr/bin/env bash
# Bazel's --workspace_status_command (.bazelrc): the commit the build is of,
# for `imaged --version` and `imagectl --version` (plugin/version.h), or
# "unknown" outside a git checkout. Uncommitted changes are not marked: the
# value must not change while a run edits the tree (CI merges fuzz inputs),
# or every binary would be linked again.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null) || commit=unknown
echo "STABLE_IMAGED_COMMIT $commit"
