// Package auditexport hands the audit log to a SIEM: records as JSON lines
// or ArcSight CEF ([Format]), and a [Shipper] that sends them to a syslog
// collector (RFC 5424 over TCP or TLS, internal/syslog) and remembers the
// last record delivered, so a restarted exporter resumes after it.
//
// What "resumable" means here: the state file names the last record the
// collector's connection took (or that went to the syslog spool at a
// clean stop). A clean stop and start sends each record once and loses
// none. After a crash the state may be behind what was sent: the records
// after it are sent again (never lost); each message carries its seq
// (structured data certgate-audit@32473 seq=...) so a collector can drop a
// repeat. Syslog over TCP has no acknowledgement, so nothing stronger can
// be promised.
//
// Client side: records come from the API (GET /v1/audit, an admin's or
// auditor's certificate), never from the store.
package auditexport
