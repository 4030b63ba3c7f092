// Package wire is the certgate server's /v1 API as it travels between the
// server and its clients: the JSON bodies of every request and answer, the
// error envelope with the codes clients branch on, and the paths. The
// server (internal/server) encodes these types, and every client (apiclient,
// enroll, the agent, the gateway's revocation puller and feed follower, the
// load generator, certgatetls) decodes them; none of them imports the
// server.
//
// # Errors
//
// Every error answer of the API is an [ErrorBody]:
//
//	{"error":{"code":"token_used","message":"token was already used"}}
//
// The code is stable and meant for programs ([CodeRevoked] and the other
// Code constants); the message is for people and may change.
//
// # Not here
//
// No behaviour: no HTTP client, no handler, no validation beyond decoding
// the error envelope. The change feed's line format is in internal/feed; it
// carries the same [Revoked] entries as [Revocations].
//
// This package imports only the standard library, so a client that speaks
// the API links nothing of the server, the CA or the store.
package wire
