package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// Times are stored as int64 UTC unix nanoseconds, which covers the years
// 1678 to 2262; anything outside is refused rather than silently wrapped.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func checkTime(name string, t time.Time) error {
	switch {
	case t.IsZero():
		return fmt.Errorf("%s is not set", name)
	case t.Before(minTime) || t.After(maxTime):
		return fmt.Errorf("%s %s is out of range (years 1678 to 2262)", name, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// validSerial reports whether s is lowercase hex without leading zeros, the
// one spelling of a serial the store accepts, so that one serial cannot be
// recorded twice under two spellings.
func validSerial(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	return isLowerHex(s)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func validateEntry(e audit.Entry) error {
	if err := checkTime("audit entry time", e.Time); err != nil {
		return err
	}
	if e.Action == "" {
		return errors.New("audit entry action is empty")
	}
	if e.Actor == "" {
		return errors.New("audit entry actor is empty")
	}
	return nil
}

func validateToken(t Token) error {
	switch {
	case t.ID == "":
		return errors.New("token ID is empty")
	case len(t.SecretHash) != sha256.Size:
		return fmt.Errorf("secret hash is %d bytes, want %d (SHA-256)", len(t.SecretHash), sha256.Size)
	case t.Identity == "":
		return errors.New("token identity is empty")
	case !t.RedeemedAt.IsZero() || t.Serial != "":
		return errors.New("a new token cannot be redeemed already")
	}
	if err := checkTime("created at", t.CreatedAt); err != nil {
		return err
	}
	if err := checkTime("expires at", t.ExpiresAt); err != nil {
		return err
	}
	if !t.ExpiresAt.After(t.CreatedAt) {
		return fmt.Errorf("expires at %s is not after created at %s",
			t.ExpiresAt.UTC().Format(time.RFC3339Nano), t.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func validateIssuance(is Issuance) error {
	c := is.Cert
	switch {
	case !validSerial(c.Serial):
		return fmt.Errorf("serial %q is not lowercase hex without leading zeros", c.Serial)
	case c.Identity == "":
		return errors.New("certificate identity is empty")
	case len(c.Fingerprint) != 2*sha256.Size || !isLowerHex(c.Fingerprint):
		return fmt.Errorf("fingerprint %q is not lowercase hex SHA-256", c.Fingerprint)
	case c.KeyType == "":
		return errors.New("certificate key type is empty")
	case len(c.DER) == 0:
		return errors.New("certificate DER is empty")
	case c.Issuer == "" || !isLowerHex(c.Issuer):
		return fmt.Errorf("issuer %q is not a lowercase hex key ID", c.Issuer)
	case c.TokenID != is.TokenID && is.TokenID != "":
		return fmt.Errorf("certificate token ID %q is not the redeemed token %q", c.TokenID, is.TokenID)
	}
	switch c.Obtained {
	case ObtainedInit, ObtainedEnroll, ObtainedRenew, ObtainedServer, ObtainedBootstrap:
	default:
		return fmt.Errorf("obtained %q is not one of %s, %s, %s, %s, %s", c.Obtained,
			ObtainedInit, ObtainedEnroll, ObtainedRenew, ObtainedServer, ObtainedBootstrap)
	}
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"not before", c.NotBefore}, {"not after", c.NotAfter}, {"issued at", c.IssuedAt}} {
		if err := checkTime(f.name, f.t); err != nil {
			return err
		}
	}
	if !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("not after %s is not after not before %s",
			c.NotAfter.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339))
	}
	switch {
	case is.TokenID == "" && (is.TokenSecretHash != nil || is.TokenIdentity != ""):
		return errors.New("token secret hash or identity given without a token ID")
	case is.TokenSecretHash != nil && len(is.TokenSecretHash) != sha256.Size:
		return fmt.Errorf("token secret hash is %d bytes, want %d (SHA-256)", len(is.TokenSecretHash), sha256.Size)
	case is.RenewedFingerprint != "" && c.RenewedFrom == "":
		return errors.New("renewed fingerprint given without the renewed serial")
	case is.RenewedFingerprint != "" && (len(is.RenewedFingerprint) != 2*sha256.Size || !isLowerHex(is.RenewedFingerprint)):
		return fmt.Errorf("renewed fingerprint %q is not lowercase hex SHA-256", is.RenewedFingerprint)
	}
	if is.TokenID != "" || is.RenewedFingerprint != "" {
		if err := checkTime("now", is.Now); err != nil {
			return err
		}
	}
	return validateEntry(is.Audit)
}

// validateRevoke checks req and names the operation for errors.
func validateRevoke(req RevokeRequest) (what string, err error) {
	n := 0
	for _, v := range []string{req.Serial, req.Identity, req.IdentityPrefix} {
		if v != "" {
			n++
		}
	}
	switch {
	case req.Serial != "":
		what = "revoke " + req.Serial
	case req.Identity != "":
		what = "revoke identity " + req.Identity
	default:
		what = "revoke identity prefix " + req.IdentityPrefix
	}
	if n != 1 {
		return "revoke", errors.New("exactly one of serial, identity and identity prefix must be set")
	}
	// RFC 5280 CRLReason: 0 to 10, 7 is unused.
	if req.Reason < 0 || req.Reason > 10 || req.Reason == 7 {
		return what, fmt.Errorf("reason code %d is not an RFC 5280 CRLReason", req.Reason)
	}
	if req.By == "" {
		return what, errors.New("revoked by is empty")
	}
	if err := checkTime("now", req.Now); err != nil {
		return what, err
	}
	return what, nil
}
