package gateway

import (
	"strconv"

	"github.com/certgate/certgate/internal/ratelimit"
)

// reasonRateLimited is the access log's reason for a 429.
const reasonRateLimited = "rate_limited"

// retryAfterSeconds is Retry-After for d: whole seconds, at least one
// (the header has no fractions; rounding down would invite a retry that
// is refused again).
func retryAfterSeconds(d ratelimit.Decision) int {
	s := int((d.RetryAfter + 999_999_999) / 1_000_000_000)
	return max(s, 1)
}

// appendRateLimitHeaders appends the header lines of a 429: Retry-After,
// and RateLimit-Limit (the burst an identity may send at once) and
// RateLimit-Remaining (none left) as in the IETF RateLimit header fields
// draft.
func appendRateLimitHeaders(b []byte, d ratelimit.Decision) []byte {
	b = append(b, "Retry-After: "...)
	b = strconv.AppendInt(b, int64(retryAfterSeconds(d)), 10)
	b = append(b, "\r\nRateLimit-Limit: "...)
	b = strconv.AppendInt(b, int64(d.Limit.Burst), 10)
	b = append(b, "\r\nRateLimit-Remaining: 0\r\n"...)
	return b
}

// rateLimitedJSON is the body of a 429.
func rateLimitedJSON(d ratelimit.Decision) []byte {
	msg := "too many requests from this identity on this route (" + strconv.FormatFloat(d.Limit.RPS, 'g', -1, 64) +
		" a second, bursts of " + strconv.Itoa(d.Limit.Burst) + "); retry after " + strconv.Itoa(retryAfterSeconds(d)) + " s"
	return errorJSON("rate_limited", msg)
}
