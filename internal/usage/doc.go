// Package usage is the gateway's side of usage reporting: a [Table] that
// counts every access-log entry with an identity per identity,
// certificate, route and UTC day (requests by status class, bytes, last
// seen time and source host), notices a certificate used from more source
// hosts at once than a threshold, and a [Shipper] that sends the counts to
// the server every few seconds as a wire.UsageReport.
//
// Memory is bounded: at most MaxEntries counters accumulate between two
// reports, plus the one report waiting for the server's answer; requests
// past the bound are counted as dropped and reported as such. Recording
// never blocks on the network: it takes a mutex around a map update. A
// report that was not acknowledged is kept and sent again, with the same
// ID, until it is (the server records an ID once), while new requests
// accumulate in the next one.
//
// It is not the access log (internal/accesslog) nor the server's storage
// of usage (internal/store).
package usage
