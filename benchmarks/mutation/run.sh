#!/usr/bin/env bash
# Run mutmut over ONE module with a small, fast test selection (see docs/mutation.md).
#
#   benchmarks/mutation/run.sh <module.py> <test path>... [-- <mutant name>...]
#
# mutmut 3 is configured only through setup.cfg / pyproject.toml, and it writes a
# mutants/ tree next to them. To keep the repository untouched, this script copies the
# working tree (tracked + untracked, not ignored files) to a scratch directory, writes a
# [mutmut] section there and runs mutmut in that copy. The source files in the repository
# are never mutated. Results stay in $MUTATION_DIR/<module> for `mutmut results/show`.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
module=$1; shift
tests=(); while [[ $# -gt 0 && $1 != -- ]]; do tests+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
mutants=("$@")   # optional: re-run only these mutants (e.g. after adding a test)

work=${MUTATION_DIR:-/tmp/luser-mutation}/$(echo "$module" | tr '/.' '__')
mkdir -p "$work"
# Fresh copy of the sources and tests; mutmut's own cache (mutants/) survives so that a
# re-run only re-tests what changed.
(cd "$repo" && git ls-files -co --exclude-standard -z | grep -zv '^benchmarks/' \
  | xargs -0 tar -cf - ) | tar -xf - -C "$work"

{
  echo "[mutmut]"
  echo "source_paths ="
  for p in luser_common luser_config luser_db app; do echo "    $p"; done
  echo "also_copy ="
  for p in app/migrations app/config; do echo "    $p"; done
  echo "only_mutate = $module"
  echo "pytest_add_cli_args_test_selection ="
  for t in "${tests[@]}"; do echo "    $t"; done
  echo "pytest_add_cli_args ="
  for a in -x -q -p no:cacheprovider; do echo "    $a"; done
} > "$work/setup.cfg"

cd "$work"
export LUSER_TEST_DATABASE_URL=${LUSER_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}
"$repo/.venv/bin/mutmut" run --max-children "${MUTMUT_CHILDREN:-1}" "${mutants[@]}"
"$repo/.venv/bin/mutmut" results --all true > results.txt || "$repo/.venv/bin/mutmut" results > results.txt
echo "results: $work/results.txt"
