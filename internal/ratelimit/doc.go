// Package ratelimit is the gateway's per-identity request rate limit on a
// route: a token bucket (golang.org/x/time/rate) per identity, with the
// route's default limit or the first override whose identity pattern
// matches, in a table of bounded size however many identities call.
//
// The table is split in shards, each with its own lock and at most
// MaxIdentities/shards buckets. A new identity in a full shard takes the
// place of a bucket that has refilled completely (forgetting it changes
// nothing: a new bucket starts full) among a few looked at; if none has,
// of one of those anyway, which lets that identity start again with a
// full burst. So memory is bounded and the limit is exact as long as the
// identities calling within a refill time fit in the table.
//
// It is not the authorization of a route (internal/authz), nor the
// refusal's wire format (internal/gateway).
package ratelimit
