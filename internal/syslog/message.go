package syslog

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Facility and Severity make a message's PRI (RFC 5424 section 6.2.1).
type (
	Facility int
	Severity int
)

// Facilities certgate uses.
const (
	FacilityUser     Facility = 1
	FacilityAuth     Facility = 4
	FacilityAuthPriv Facility = 10
	FacilityLocal0   Facility = 16
	FacilityLocal7   Facility = 23
)

// Severities.
const (
	SeverityEmergency Severity = iota
	SeverityAlert
	SeverityCritical
	SeverityError
	SeverityWarning
	SeverityNotice
	SeverityInfo
	SeverityDebug
)

// Field length limits of RFC 5424 section 6.
const (
	MaxHostname = 255
	MaxAppName  = 48
	MaxProcID   = 128
	MaxMsgID    = 32
	MaxSDName   = 32
)

// Message is one RFC 5424 message. Empty header fields are sent as the
// NILVALUE "-". Msg is sent as MSG-ANY (no BOM), as is.
type Message struct {
	Facility       Facility
	Severity       Severity
	Time           time.Time // zero: NILVALUE
	Hostname       string
	AppName        string
	ProcID         string
	MsgID          string
	StructuredData []SDElement
	Msg            []byte
}

// SDElement is one structured-data element: [ID name="value" ...].
type SDElement struct {
	ID     string
	Params []SDParam
}

// SDParam is one SD-PARAM. Its value may hold any UTF-8; Append escapes
// '"', '\' and ']' and replaces invalid UTF-8 with U+FFFD.
type SDParam struct {
	Name, Value string
}

// ErrInvalid is wrapped by every error of Append and Parse.
var ErrInvalid = errors.New("syslog: invalid message")

// timeLayout is RFC 5424's TIMESTAMP: RFC 3339 with at most 6 fraction
// digits; UTC keeps it short and comparable.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Append appends m in RFC 5424 form to b. A header field holding anything
// but printable US-ASCII (33..126), or longer than its limit, and a
// structured-data name that is not a valid SD-NAME, are errors (use
// [CleanName] to make a valid field from arbitrary text).
func (m *Message) Append(b []byte) ([]byte, error) {
	if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 {
		return b, fmt.Errorf("%w: facility %d or severity %d out of range", ErrInvalid, m.Facility, m.Severity)
	}
	for _, f := range [...]struct {
		name, v string
		max     int
	}{{"hostname", m.Hostname, MaxHostname}, {"app-name", m.AppName, MaxAppName}, {"procid", m.ProcID, MaxProcID}, {"msgid", m.MsgID, MaxMsgID}} {
		if err := checkName(f.v, f.max, false); err != nil {
			return b, fmt.Errorf("%w: %s: %v", ErrInvalid, f.name, err)
		}
	}
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(int(m.Facility)*8+int(m.Severity)), 10)
	b = append(b, ">1 "...)
	if m.Time.IsZero() {
		b = append(b, '-')
	} else {
		b = m.Time.UTC().AppendFormat(b, timeLayout)
	}
	b = appendNil(append(b, ' '), m.Hostname)
	b = appendNil(append(b, ' '), m.AppName)
	b = appendNil(append(b, ' '), m.ProcID)
	b = appendNil(append(b, ' '), m.MsgID)
	b = append(b, ' ')
	if len(m.StructuredData) == 0 {
		b = append(b, '-')
	}
	for i := range m.StructuredData {
		e := &m.StructuredData[i]
		if err := checkName(e.ID, MaxSDName, true); err != nil || e.ID == "" {
			return b, fmt.Errorf("%w: SD-ID %q: %v", ErrInvalid, e.ID, err)
		}
		b = append(b, '[')
		b = append(b, e.ID...)
		for _, p := range e.Params {
			if err := checkName(p.Name, MaxSDName, true); err != nil || p.Name == "" {
				return b, fmt.Errorf("%w: PARAM-NAME %q: %v", ErrInvalid, p.Name, err)
			}
			b = append(b, ' ')
			b = append(b, p.Name...)
			b = append(b, '=', '"')
			b = appendParamValue(b, p.Value)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if len(m.Msg) > 0 {
		b = append(b, ' ')
		b = append(b, m.Msg...)
	}
	return b, nil
}

func appendNil(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// checkName checks a header field or SD-NAME: PRINTUSASCII, at most max
// bytes; an SD-NAME also excludes '=', ']' and '"'. "-" alone is the
// NILVALUE and not a valid header value.
func checkName(s string, max int, sd bool) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if s == "-" && !sd {
		return errors.New(`"-" is the NILVALUE`)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || (sd && (c == '=' || c == ']' || c == '"')) {
			return fmt.Errorf("byte 0x%02x at %d is not allowed", c, i)
		}
	}
	return nil
}

// CleanName makes a valid header field from s: bytes outside printable
// US-ASCII become '_', and it is cut to max bytes. "" and "-" stay "" (the
// NILVALUE).
func CleanName(s string, max int) string {
	if s == "-" {
		return ""
	}
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < 33 || b[j] > 126 {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return s
}

// appendParamValue escapes a PARAM-VALUE (RFC 5424 section 6.3.3): '"',
// '\' and ']' get a backslash; invalid UTF-8 becomes U+FFFD so the value
// stays UTF-8 as the RFC requires.
func appendParamValue(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c == ']' {
				b = append(b, '\\')
			}
			b = append(b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
