// Package tlsscan holds no code: its test runs testssl.sh and sslscan (from
// apt) against a real server and gateway and judges their findings. It is
// a test binary of its own because a scan takes minutes on a loaded
// machine, which would take internal/integration past go test's default
// time budget.
package tlsscan
