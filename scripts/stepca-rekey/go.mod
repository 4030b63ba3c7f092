// A module of its own so that this load generator for scripts/bench-stepca.sh
// (not in CI) is no package of certgate: standard library only.
module github.com/certgate/certgate/scripts/stepca-rekey

go 1.26.8
