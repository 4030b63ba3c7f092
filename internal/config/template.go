package config

import (
	"bytes"
	"fmt"
	"strconv"
	"text/template"
)

// serverTemplate writes every setting with its value and a comment, so an
// operator sees what can be set without reading the source.
var serverTemplate = template.Must(template.New("certgate.yaml").Funcs(template.FuncMap{"q": strconv.Quote}).Parse(`# certgate CA and server configuration, written by "certgate init".
# Every setting is listed with its current value. Unknown fields are errors.
# Relative paths are relative to this file's directory.

# SPIFFE trust domain: every identity is spiffe://{{.TrustDomain}}/...
trust_domain: {{.TrustDomain}}

# Where certificates, revocations, tokens, events and the audit log live:
# sqlite://relative/or/absolute/path.db or postgres://user@host:5432/db
store: {{.Store}}

ca:
  # Key type of the CA keys: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096
  key_type: {{.CA.KeyType}}
  # The first root and intermediate, as "certgate init" made them. After
  # that the store records every CA certificate and its state ("certgate ca
  # status"); these are read only to adopt an installation made before.
  root_cert: {{.CA.RootCert}}
  # Encrypted PKCS#8 (the passphrase comes from CERTGATE_PASSPHRASE or
  # --passphrase-file), or an RFC 7512 pkcs11: URI of a key in a token.
  root_key: {{q .CA.RootKey}}
  intermediate_cert: {{.CA.IntermediateCert}}
  intermediate_key: {{q .CA.IntermediateKey}}
  # Trust bundle (the roots) handed to clients and gateways; rewritten by
  # "certgate ca" commands when the roots change.
  bundle: {{.CA.Bundle}}
  rotation:
    # Rotate the intermediate by itself at this fraction of its life
    # (false: only "certgate ca rotate-intermediate" does).
    auto: {{.CA.Rotation.Auto}}
    at: {{.CA.Rotation.At}}
    # How long a new intermediate is published (bundle endpoint, feed)
    # before it signs.
    publish_ahead: {{.CA.Rotation.PublishAhead}}
    # Lives of new intermediates and roots.
    intermediate_lifetime: {{.CA.Rotation.IntermediateLifetime}}
    root_lifetime: {{.CA.Rotation.RootLifetime}}
    # Warn (ca status, the server's log) about CAs expiring sooner.
    warn_before: {{.CA.Rotation.WarnBefore}}
    # How often the server looks whether a rotation step is due.
    check_interval: {{.CA.Rotation.CheckInterval}}

profiles:
  # Lifetime of client certificates (capped at the intermediate's expiry).
  client_lifetime: {{.Profiles.ClientLifetime}}
  # Lifetime of the server's own serving certificate.
  server_lifetime: {{.Profiles.ServerLifetime}}

server:
  # Address the HTTPS API listens on.
  listen: {{.Listen.Listen}}
  # URL clients use to reach it (written into enrollment tokens).
  url: {{.Listen.URL}}
  # DNS names and IP addresses in the server's certificate.
  hostnames:{{range .Listen.Hostnames}}
    - "{{.}}"{{end}}
  # Largest request body accepted, in bytes.
  max_body_bytes: {{.Listen.MaxBodyBytes}}
  read_header_timeout: {{.Listen.ReadHeaderTimeout}}
  read_timeout: {{.Listen.ReadTimeout}}
  idle_timeout: {{.Listen.IdleTimeout}}
  # Optional plain-HTTP listener serving only GET /crl and GET/POST /ocsp
  # (both are signed; many verifiers fetch them over HTTP only). "" = off.
  status_listen: {{q .Listen.StatusListen}}
  # Base of the CRL and OCSP URLs in every certificate ("" = url above;
  # http://STATUS_LISTEN when status_listen is set and this is empty).
  status_url: {{q .Listen.StatusURL}}
  # Prometheus /metrics of the server (certgate_ca_expiry_timestamp_seconds,
  # ...). "" = off.
  metrics_listen: {{q .Listen.MetricsListen}}

tokens:
  # TTL of an enrollment token when "certgate token create" names none.
  default_ttl: {{.Tokens.DefaultTTL}}
  # Longest TTL an admin may ask for.
  max_ttl: {{.Tokens.MaxTTL}}
  # Longest TTL of a token for an identity that holds a role (admin,
  # auditor, gateway, issuer); such a token needs --role to be minted.
  max_privileged_ttl: {{.Tokens.MaxPrivilegedTTL}}

revocation:
  # How often an idle change feed tells gateways it is alive.
  feed_heartbeat: {{.Revocation.FeedHeartbeat}}
  # nextUpdate - thisUpdate of the CRL at /crl (rebuilt on every revocation).
  crl_validity: {{.Revocation.CRLValidity}}
  # Validity of OCSP responses at /ocsp.
  ocsp_validity: {{.Revocation.OCSPValidity}}
  # Lifetime of the delegated OCSP signing certificate (renewed at 2/3).
  ocsp_signer_lifetime: {{.Revocation.OCSPSignerLifetime}}

log:
  # Least severe level the server logs: debug, info, warn or error.
  level: {{.Log.Level}}

est:
  # EST (RFC 7030) under /.well-known/est/ on the listener above: cacerts,
  # csrattrs, simpleenroll with an enrollment token as the HTTP Basic
  # password, simplereenroll with the current certificate. bootstrap lists
  # the CAs whose device certificates may also simpleenroll, as
  # spiffe://TRUST_DOMAIN + identity_prefix + the certificate's subject
  # serial number (or common name), e.g.
  #   - name: acme
  #     bundle: acme-devices.pem
  #     identity_prefix: /device/
  bootstrap:{{if not .EST.Bootstrap}} []{{end}}
{{- range .EST.Bootstrap}}
    - name: {{printf "%q" .Name}}
      bundle: {{printf "%q" .Bundle}}
      identity_prefix: {{printf "%q" .IdentityPrefix}}
{{- end}}

# What a SIGHUP to "certgate server" applies without a restart: log.level,
# profiles.client_lifetime, profiles.server_lifetime and server.hostnames
# (a new serving certificate). It names every other changed setting as
# needing a restart and keeps running with the old value.

audit:
  # The audit log's signed checkpoints (docs/security.md): the Ed25519 key
  # that signs them, encrypted with the passphrase like the CA keys and
  # never in the store (made by init, or by the first start of an older
  # installation), and its public half for "certgate audit verify".
  key: {{.Audit.Key}}
  public_key: {{.Audit.PublicKey}}
  # The checkpoints' origin line and key name ("" = TRUST_DOMAIN/certgate/audit).
  name: {{q .Audit.Name}}
  # Every checkpoint is appended here (and logged, and served at
  # GET /v1/audit/checkpoint); keep a copy off this host.
  checkpoints: {{.Audit.Checkpoints}}
  # Sign at least every this many records, and the head at least this
  # often when the log grew (and on shutdown).
  checkpoint_every: {{.Audit.CheckpointEvery}}
  checkpoint_interval: {{.Audit.CheckpointInterval}}

admin:
  # The admin client certificate the CLI authenticates with.
  cert: {{.Admin.Cert}}
  key: {{.Admin.Key}}
  bundle: {{.Admin.Bundle}}
`))

// Render writes c as a complete, commented certgate.yaml.
func (c Server) Render() ([]byte, error) {
	var b bytes.Buffer
	if err := serverTemplate.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("config: render: %w", err)
	}
	return b.Bytes(), nil
}
