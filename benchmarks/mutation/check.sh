#!/usr/bin/env bash
# Run the given tests against ONE mutant of an earlier run.sh run, with the repository's
# current tests (e.g. tests written to kill it, or tests outside the run's selection).
#
#   benchmarks/mutation/check.sh <module.py> <mutant name> <test path>...
#
# Prints "killed" (the tests failed) or "survived" (they passed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
module=$1 mutant=$2; shift 2
work=${MUTATION_DIR:-/tmp/luser-mutation}/$(echo "$module" | tr '/.' '__')
rm -rf "$work/mutants/tests" && cp -r "$repo/tests" "$work/mutants/tests"
cd "$work/mutants"
export LUSER_TEST_DATABASE_URL=${LUSER_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}
if MUTANT_UNDER_TEST=$mutant timeout 600 "$repo/.venv/bin/python" -m pytest -x -q -p no:cacheprovider "$@" >/dev/null 2>&1
then echo "survived $mutant"; else echo "killed $mutant"; fi
