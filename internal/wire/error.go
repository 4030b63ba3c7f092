package wire

import "encoding/json"

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is what an error answer says: a code for programs and a
// message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes. A client branches on these, never on the message.
const (
	CodeBadRequest      = "bad_request"         // malformed query or body
	CodeTooLarge        = "too_large"           // body or CSR over the limit
	CodeUnauthenticated = "unauthenticated"     // no client certificate
	CodeForbidden       = "forbidden"           // this identity may not do this
	CodeNotFound        = "not_found"           // no such endpoint or record
	CodeUnavailable     = "unavailable"         // the store is down or the request timed out; nothing changed
	CodeInternal        = "internal"            // a bug; the server log has the cause
	CodeBadIdentity     = "bad_identity"        // an identity that does not parse or is out of the trust domain
	CodeBadTTL          = "bad_ttl"             // a token lifetime that is not allowed
	CodeBadToken        = "bad_token"           // a token that does not parse, or for another CA
	CodeTokenInvalid    = "token_invalid"       // a token the server does not know
	CodeTokenUsed       = "token_used"          // a token already redeemed
	CodeTokenExpired    = "token_expired"       // a token past its expiry
	CodeBadCSR          = "bad_csr"             // a CSR that does not parse, verify or fit the policy
	CodeSameKey         = "same_key"            // a renewal for the current key
	CodeRevoked         = "revoked"             // the client certificate is revoked: enroll again
	CodeExpired         = "expired"             // the client certificate has expired: enroll again
	CodeUnknownCert     = "unknown_certificate" // the client certificate is not one this CA issued
	CodeBadSerial       = "bad_serial"          // a serial that is not hexadecimal
	CodeBadReason       = "bad_reason"          // a revocation reason that RFC 5280 does not name
	CodeRoleRequired    = "role_required"       // a token for an identity that holds a role, without naming the role
	CodeBadRole         = "bad_role"            // a role grant that is malformed, or a role the identity does not hold
	CodeConflict        = "conflict"            // the change exists already, or would leave no admin
)

// DecodeError reads an error answer's body. ok is false when body is not
// the envelope (a proxy's page, a truncated answer, an empty code).
func DecodeError(body []byte) (d ErrorDetail, ok bool) {
	var e ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return ErrorDetail{}, false
	}
	return e.Error, true
}
