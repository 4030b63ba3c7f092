package ca

import (
	"fmt"
	"strconv"
	"strings"
)

// RFC 5280 section 5.3.1 CRLReason codes certgate accepts. certificateHold
// (6) and removeFromCRL (8) are not offered: a certgate revocation is final.
var reasons = []struct {
	code int
	name string
}{
	{0, "unspecified"},
	{1, "keyCompromise"},
	{2, "cACompromise"},
	{3, "affiliationChanged"},
	{4, "superseded"},
	{5, "cessationOfOperation"},
	{9, "privilegeWithdrawn"},
	{10, "aACompromise"},
}

// ParseReason accepts a reason by RFC 5280 name (case-insensitive) or code.
// The empty string is "unspecified".
func ParseReason(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	for _, r := range reasons {
		if strings.EqualFold(s, r.name) || s == strconv.Itoa(r.code) {
			return r.code, nil
		}
	}
	names := make([]string, len(reasons))
	for i, r := range reasons {
		names[i] = r.name
	}
	return 0, fmt.Errorf("ca: unknown revocation reason %q (want one of %s)", s, strings.Join(names, ", "))
}

// ReasonName returns the RFC 5280 name of a reason code.
func ReasonName(code int) string {
	for _, r := range reasons {
		if r.code == code {
			return r.name
		}
	}
	return "reason" + strconv.Itoa(code)
}
