package auditexport

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/syslog"
	"github.com/certgate/certgate/internal/wire"
)

// Formats of [Format].
const (
	FormatJSON = "json"
	FormatCEF  = "cef"
)

// Format renders r as one line (with its newline) in format: "json" (the
// record as GET /v1/audit gives it) or "cef" (ArcSight Common Event
// Format; version is the device version).
func Format(format string, r wire.AuditRecord, version string) ([]byte, error) {
	switch format {
	case FormatJSON:
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("auditexport: %w", err)
		}
		return append(b, '\n'), nil
	case FormatCEF:
		return append([]byte(CEF(r, version)), '\n'), nil
	}
	return nil, fmt.Errorf("auditexport: format %q is not json or cef", format)
}

// CEF is r as one CEF:0 event: signature ID and name the action, rt the
// time in milliseconds, suser the actor, externalId the seq, cs1 the
// subject, cs2 the record's hash, msg the detail.
func CEF(r wire.AuditRecord, version string) string {
	ext := []string{
		"rt=" + strconv.FormatInt(r.Time.UnixMilli(), 10),
		"externalId=" + strconv.FormatInt(r.Seq, 10),
		"suser=" + cefValue(r.Actor),
		"act=" + cefValue(r.Action),
		"cs1Label=subject", "cs1=" + cefValue(r.Subject),
		"cs2Label=hash", "cs2=" + r.Hash,
	}
	if r.Detail != "" {
		ext = append(ext, "msg="+cefValue(r.Detail))
	}
	return fmt.Sprintf("CEF:0|certgate|certgate|%s|%s|%s|%d|%s",
		cefHeader(version), cefHeader(r.Action), cefHeader(r.Action), severity(r.Action), strings.Join(ext, " "))
}

// severity is CEF's 0-10: changes of who may do what weigh more than
// issuance.
func severity(action string) int {
	switch action {
	case audit.ActionRoleGrant, audit.ActionRoleRevoke, audit.ActionAuditKey, audit.ActionCARevoke, audit.ActionCARotate:
		return 7
	case audit.ActionRevoke, audit.ActionSharingSuspected, audit.ActionTokenCreate:
		return 5
	}
	return 3
}

// cefHeader escapes a header field: backslash and pipe.
func cefHeader(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, "\n", " ", "\r", " ").Replace(s)
}

// cefValue escapes an extension value: backslash, equals sign, newlines.
func cefValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `=`, `\=`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// sdID is the structured-data ID of the audit fields (32473 is the
// example enterprise number RFC 5612 reserves for documentation; a
// private SD-ID needs one).
const sdID = "certgate-audit@32473"

// Message is r as an RFC 5424 message: facility authpriv, MSGID the
// action, structured data seq, actor, subject and hash, MSG the CEF line.
func Message(r wire.AuditRecord, hostname, version string) syslog.Message {
	return syslog.Message{
		Facility: syslog.FacilityAuthPriv, Severity: syslog.SeverityInfo + 0, Time: r.Time,
		Hostname: syslog.CleanName(hostname, syslog.MaxHostname), AppName: "certgate-audit",
		MsgID: syslog.CleanName(r.Action, syslog.MaxMsgID),
		StructuredData: []syslog.SDElement{{ID: sdID, Params: []syslog.SDParam{
			{Name: "seq", Value: strconv.FormatInt(r.Seq, 10)}, {Name: "actor", Value: r.Actor},
			{Name: "subject", Value: r.Subject}, {Name: "hash", Value: r.Hash},
		}}},
		Msg: []byte(CEF(r, version)),
	}
}
