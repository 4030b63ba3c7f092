// The github.com/globalsign/est client, kept out of certgate's module: it is
// only a peer certgate's EST server is tested against (internal/server
// TestESTGlobalsignClient builds and runs this program), and it pins
// github.com/google/go-tpm v0.3.2 whose tpm2 package is the legacy API,
// which certgate's own go-tpm v0.9.8 (the direct API) replaced. This
// module depends on nothing of certgate's, so the two never meet in one
// build.
module github.com/certgate/certgate/internal/est/estinterop

go 1.26.8

require github.com/globalsign/est v1.0.6

require (
	github.com/go-chi/chi v4.1.2+incompatible // indirect
	github.com/google/go-tpm v0.3.2 // indirect
	go.mozilla.org/pkcs7 v0.0.0-20200128120323-432b2356ecb1 // indirect
	golang.org/x/sys v0.0.0-20210220050731-9a76102bfb43 // indirect
	golang.org/x/time v0.0.0-20210220033141-f8bda1e9f3ba // indirect
)
