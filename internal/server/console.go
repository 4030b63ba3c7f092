package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/ca"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// The web console at /ui/: server-rendered html/template pages over the
// API's own mTLS listener, for a browser that presents the certificate of
// an identity holding the role admin or auditor (roles granted as data,
// as for the admin API). An auditor reads every page and is shown no write
// action; the write handlers check the role again, so a form kept from
// before a role was taken away, or forged, is refused. No JavaScript, no
// external asset; charts are inline SVG. Every page view and every action
// is audited with the browser's identity.

//go:embed ui/*.html
var uiFiles embed.FS

var uiTemplates = template.Must(template.New("ui").Funcs(template.FuncMap{
	"fmtTime": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}).ParseFS(uiFiles, "ui/*.html"))

// csrfCookie holds a random value per browser; a form's token is an HMAC
// of it, the viewer and the action under the server's key, so a page of
// another site can neither read nor make one. SameSite=Strict keeps the
// cookie off cross-site requests as a second line.
const csrfCookie = "certgate_csrf"

// uiStaleWindow and uiExpiringWindow are the console's flags.
const (
	uiStaleWindow    = 30 * 24 * time.Hour
	uiExpiringWindow = 7 * 24 * time.Hour
)

var uiFilters = []string{"all", "valid", "stale", "expiring", "sharing", "revoked"}

func (s *Server) consoleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui/{$}", s.uiPage(s.uiIdentities))
	mux.HandleFunc("GET /ui/identity", s.uiPage(s.uiIdentity))
	mux.HandleFunc("GET /ui/audit", s.uiPage(s.uiAudit))
	mux.HandleFunc("POST /ui/revoke", s.uiPage(s.uiRevoke))
	mux.HandleFunc("GET /ui/gateways", s.uiPage(s.uiGateways))
	mux.HandleFunc("GET /ui/legacy-keys", s.uiPage(s.uiLegacyKeys))
	mux.HandleFunc("GET /ui/tokens", s.uiPage(s.uiTokenForm))
	mux.HandleFunc("POST /ui/tokens", s.uiPage(s.uiMintToken))
	mux.HandleFunc("/ui/", s.uiPage(func(w http.ResponseWriter, r *http.Request, c Caller) error {
		return apiError(http.StatusNotFound, wire.CodeNotFound, "no such page", nil)
	}))
}

type uiHandler func(w http.ResponseWriter, r *http.Request, c Caller) error

// uiPage authenticates the browser's certificate as an admin's or an
// auditor's, sets the security headers and renders errors as a page.
func (s *Server) uiPage(h uiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		c, err := s.authorize(r, "use the console", readers)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			var e *Error
			if !errors.As(classify(err), &e) {
				s.o.Log.Error("console", "path", r.URL.Path, "err", err)
				e = apiError(http.StatusInternalServerError, wire.CodeInternal, "internal error", err)
			}
			s.render(w, e.Status, "message.html", c, map[string]any{"Title": http.StatusText(e.Status), "Message": e.Message})
		}
	}
}

// render writes a page for viewer c: the templates show write actions only
// when Admin is true.
func (s *Server) render(w http.ResponseWriter, status int, name string, c Caller, data map[string]any) {
	data["Viewer"] = c.ID.String()
	data["Admin"] = c.Roles.Admin
	data["Role"] = strings.Join(c.Roles.Names(), ", ")
	var b bytes.Buffer
	if err := uiTemplates.ExecuteTemplate(&b, name, data); err != nil {
		s.o.Log.Error("console: template", "name", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// csrfToken returns the form token for the viewer, setting the cookie it
// is bound to when the browser has none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, c Caller, action string) string {
	v := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 64 {
		v = ck.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b)
		v = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/ui/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return s.csrfMAC(v, c, action)
}

func (s *Server) csrfMAC(cookie string, c Caller, action string) string {
	m := hmac.New(sha256.New, s.csrfKey[:])
	fmt.Fprintf(m, "%s\x00%s\x00%s", cookie, c.ID.String(), action)
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses a POST without the cookie, with a token not made for
// it, this viewer and this action, or sent from another site.
func (s *Server) checkCSRF(r *http.Request, c Caller, action string) error {
	refuse := apiError(http.StatusForbidden, wire.CodeForbidden, "the form is stale or did not come from this console; reload the page and try again", nil)
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return refuse
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != 64 {
		return refuse
	}
	got := r.PostFormValue("csrf")
	if !hmac.Equal([]byte(got), []byte(s.csrfMAC(ck.Value, c, action))) {
		return refuse
	}
	return nil
}

// uiIdentities is the inventory: search, filter, flags.
func (s *Server) uiIdentities(w http.ResponseWriter, r *http.Request, c Caller) error {
	q, filter := strings.TrimSpace(r.URL.Query().Get("q")), r.URL.Query().Get("filter")
	if filter == "" {
		filter = "all"
	}
	if !contains(uiFilters, filter) {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("filter %q is not one of %s", filter, strings.Join(uiFilters, ", ")), nil)
	}
	now := s.o.Clock.Now()
	certs, err := s.o.Store.ListCertificates(r.Context(), store.CertFilter{Now: now})
	if err != nil {
		return err
	}
	seen, err := s.o.Store.IdentitiesSeen(r.Context())
	if err != nil {
		return err
	}
	if err := s.auditAdmin(r.Context(), c, "console: identities"); err != nil {
		return err
	}
	var out []wire.Identity
	for _, id := range Inventory(certs, seen, now, InventoryWindows{Stale: uiStaleWindow, Expiring: uiExpiringWindow}) {
		if q != "" && !strings.Contains(id.Identity, q) {
			continue
		}
		keep := true
		switch filter {
		case "valid":
			keep = id.Valid > 0
		case "stale":
			keep = id.Stale
		case "expiring":
			keep = id.Expiring
		case "sharing":
			keep = !id.SharingSuspected.IsZero()
		case "revoked":
			keep = id.Revoked > 0
		}
		if keep {
			out = append(out, id)
		}
	}
	s.render(w, http.StatusOK, "identities.html", c, map[string]any{
		"Title": "Identities", "Query": q, "Filter": filter, "Filters": uiFilters,
		"Identities": out, "StaleWindow": "30 days", "ExpiringWindow": "7 days",
	})
	return nil
}

// uiIdentity is one identity: its certificates (with a revoke form each),
// requests per day as an SVG chart, usage by route, its audit records.
func (s *Server) uiIdentity(w http.ResponseWriter, r *http.Request, c Caller) error {
	idText := r.URL.Query().Get("id")
	id, err := parseIn(idText, s.o.Authority.TrustDomain())
	if err != nil {
		return apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
	}
	now := s.o.Clock.Now()
	certs, err := s.o.Store.ListCertificates(r.Context(), store.CertFilter{Identity: id.String(), Now: now})
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return apiError(http.StatusNotFound, wire.CodeNotFound, "no certificate was issued for "+id.String(), nil)
	}
	seen, err := s.o.Store.IdentitiesSeen(r.Context())
	if err != nil {
		return err
	}
	certSeen, err := s.o.Store.CertificatesSeen(r.Context())
	if err != nil {
		return err
	}
	days, err := s.o.Store.UsageDays(r.Context(), id.String(), now.AddDate(0, 0, -30).UTC().Format(time.DateOnly))
	if err != nil {
		return err
	}
	recs, err := s.identityAudit(r.Context(), id.String(), certs)
	if err != nil {
		return err
	}
	if err := s.auditAdmin(r.Context(), c, "console: identity "+id.String()); err != nil {
		return err
	}
	inv := Inventory(certs, seen, now, InventoryWindows{Stale: uiStaleWindow, Expiring: uiExpiringWindow})
	wc := make([]wire.Certificate, len(certs))
	for i, cert := range certs {
		wc[i] = certJSON(cert, now)
		if sn, ok := certSeen[cert.Serial]; ok {
			wc[i].LastSeen, wc[i].LastSource = sn.LastSeen, sn.LastSource
		}
	}
	data := map[string]any{
		"Title": id.String(), "ID": id.String(), "Identity": inv[0], "Certs": wc,
		"Routes": byRoute(days), "Chart": dayChart(days, now), "Audit": recs,
	}
	if c.Roles.Admin { // an auditor gets no form and no token
		data["CSRF"] = s.csrfToken(w, r, c, "revoke")
	}
	s.render(w, http.StatusOK, "identity.html", c, data)
	return nil
}

// identityAudit returns the audit records about identity or its
// certificates (by subject or detail), newest last.
func (s *Server) identityAudit(ctx context.Context, id string, certs []store.Certificate) ([]audit.Record, error) {
	serials := map[string]bool{}
	for _, c := range certs {
		serials[c.Serial] = true
	}
	var out []audit.Record
	after := int64(0)
	for {
		recs, err := s.o.Store.AuditRecords(ctx, after, maxAuditPage)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if serials[r.Subject] || r.Subject == id || strings.Contains(r.Detail, `"`+id+`"`) {
				out = append(out, r)
			}
		}
		if len(recs) < maxAuditPage {
			return out, nil
		}
		after = recs[len(recs)-1].Seq
	}
}

// uiAudit is the audit log, verified from its first record.
func (s *Server) uiAudit(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := s.auditAdmin(r.Context(), c, "console: audit log"); err != nil {
		return err
	}
	var all []audit.Record
	var v audit.Verifier
	var verr error
	after := int64(0)
	for {
		recs, err := s.o.Store.AuditRecords(r.Context(), after, maxAuditPage)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if verr == nil {
				verr = v.Add(rec)
			}
		}
		all = append(all, recs...)
		if len(recs) < maxAuditPage {
			break
		}
		after = recs[len(recs)-1].Seq
	}
	// The newest first, the last 500 shown.
	sort.Slice(all, func(i, j int) bool { return all[i].Seq > all[j].Seq })
	if len(all) > 500 {
		all = all[:500]
	}
	s.render(w, http.StatusOK, "audit.html", c, map[string]any{
		"Title": "Audit log", "Records": all, "VerifyErr": verr, "Count": v.Count(), "Head": hex.EncodeToString(v.Head()),
	})
	return nil
}

// uiRevoke revokes one certificate from the identity page's form: POST
// only, with the form's CSRF token and the confirmation box ticked.
func (s *Server) uiRevoke(w http.ResponseWriter, r *http.Request, c Caller) error {
	// The role first: an auditor's post is refused the same way whatever
	// its form holds.
	if err := c.may("revoke certificates", adminOnly); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, "the form does not parse", nil)
	}
	if err := s.checkCSRF(r, c, "revoke"); err != nil {
		return err
	}
	if r.PostFormValue("confirm") != "yes" {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, "tick the box to confirm the revocation", nil)
	}
	serial := strings.ToLower(r.PostFormValue("serial"))
	if !isHexSerial(serial) || serial == "" {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, fmt.Sprintf("serial %q is not a serial", serial), nil)
	}
	reason, err := ca.ParseReason(r.PostFormValue("reason"))
	if err != nil {
		return apiError(http.StatusBadRequest, wire.CodeBadReason, err.Error(), nil)
	}
	revs, err := s.o.Authority.Revoke(r.Context(), store.RevokeRequest{Serial: serial, Reason: reason, By: c.ID.String(), Now: s.o.Clock.Now()})
	if errors.Is(err, store.ErrNotFound) {
		return apiError(http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no certificate with serial %s", serial), nil)
	}
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("%s was already revoked.", serial)
	if len(revs) > 0 {
		msg = fmt.Sprintf("Revoked %s (%s) by %s.", serial, ca.ReasonName(reason), c.ID)
		s.o.Log.Info("certificate revoked", "serial", serial, "reason", ca.ReasonName(reason), "by", c.ID.String(), "via", "console")
	}
	back := ""
	if id, err := parseIn(r.PostFormValue("identity"), s.o.Authority.TrustDomain()); err == nil {
		back = "/ui/identity?id=" + id.String()
	}
	s.render(w, http.StatusOK, "message.html", c, map[string]any{"Title": "Revoked", "Message": msg, "Back": back})
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// byRoute sums daily rows per route.
func byRoute(days []store.UsageRow) []store.UsageRow {
	idx := map[string]int{}
	var out []store.UsageRow
	for _, d := range days {
		i, ok := idx[d.Route]
		if !ok {
			i = len(out)
			idx[d.Route] = i
			out = append(out, store.UsageRow{Route: d.Route})
		}
		o := &out[i]
		for k, n := range d.Requests {
			o.Requests[k] += n
		}
		o.BytesIn += d.BytesIn
		o.BytesOut += d.BytesOut
		if d.LastSeen.After(o.LastSeen) {
			o.LastSeen = d.LastSeen
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out
}

// dayChart draws the requests of the last 14 days as an inline SVG bar
// chart (no script, no external asset).
func dayChart(days []store.UsageRow, now time.Time) template.HTML {
	const n, bw, h = 14, 24, 100
	per := map[string]int64{}
	var top int64 = 1
	for _, d := range days {
		per[d.Day] += d.Total()
		top = max(top, per[d.Day])
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="requests per day">`, n*bw, h+20)
	for i := range n {
		day := now.UTC().AddDate(0, 0, i-n+1).Format(time.DateOnly)
		v := per[day]
		bh := int(v * h / top)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#457b9d"><title>%s: %d</title></rect>`, i*bw+2, h-bh, bw-4, bh, day, v)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9">%s</text>`, i*bw+2, h+14, day[8:])
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from numbers and dates only
}

// uiGateways lists the gateways this replica serves: feed streams open,
// where they started, the event log's head now, and the age of their last
// usage report (a gateway reports every few seconds while it runs).
func (s *Server) uiGateways(w http.ResponseWriter, r *http.Request, c Caller) error {
	head, err := s.o.Store.LastPosition(r.Context())
	if err != nil {
		return err
	}
	if err := s.auditAdmin(r.Context(), c, "console: gateways"); err != nil {
		return err
	}
	now := s.o.Clock.Now()
	type row struct {
		gatewayView
		ReportAge    string
		Disconnected bool
	}
	var rows []row
	for _, g := range s.gateways.list() {
		rw := row{gatewayView: g, ReportAge: "never"}
		if !g.LastReport.IsZero() {
			rw.ReportAge = now.Sub(g.LastReport).Round(time.Second).String() + " ago"
		}
		// A gateway is connected while it holds a feed stream. Its usage
		// reports say nothing about that: it sends one only when requests
		// were counted, so an idle gateway's last report ages.
		rw.Disconnected = g.Streams == 0
		rows = append(rows, rw)
	}
	s.render(w, http.StatusOK, "gateways.html", c, map[string]any{"Title": "Gateways", "Gateways": rows, "Head": head})
	return nil
}

// uiTokenForm is the form that mints an enrollment token.
func (s *Server) uiTokenForm(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := c.may("mint enrollment tokens", adminOnly); err != nil {
		return err
	}
	s.render(w, http.StatusOK, "tokens.html", c, map[string]any{"Title": "Mint an enrollment token",
		"CSRF": s.csrfToken(w, r, c, "token"), "TrustDomain": s.o.Authority.TrustDomain()})
	return nil
}

// uiMintToken mints a one-time enrollment token for an identity of the
// trust domain (an admin may mint for any; audited token.create by the
// browser's identity) and shows it once.
func (s *Server) uiMintToken(w http.ResponseWriter, r *http.Request, c Caller) error {
	if err := c.may("mint enrollment tokens", adminOnly); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return apiError(http.StatusBadRequest, wire.CodeBadRequest, "the form does not parse", nil)
	}
	if err := s.checkCSRF(r, c, "token"); err != nil {
		return err
	}
	id, err := parseIn(strings.TrimSpace(r.PostFormValue("identity")), s.o.Authority.TrustDomain())
	if err != nil {
		return apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
	}
	var ttl time.Duration
	if v := r.PostFormValue("ttl"); v != "" {
		if ttl, err = time.ParseDuration(v); err != nil || ttl <= 0 {
			return apiError(http.StatusBadRequest, wire.CodeBadTTL, fmt.Sprintf("ttl %q is not a positive duration such as 15m", v), nil)
		}
	}
	t, err := s.o.Authority.CreateToken(r.Context(), c.ID.String(), id, ttl)
	switch {
	case errors.Is(err, ca.ErrIdentity):
		return apiError(http.StatusBadRequest, wire.CodeBadIdentity, err.Error(), nil)
	case err != nil && strings.Contains(err.Error(), "TTL"):
		return apiError(http.StatusBadRequest, wire.CodeBadTTL, err.Error(), nil)
	case err != nil:
		return err
	}
	s.o.Log.Info("token created", "token_id", t.ID, "identity", id.String(), "by", c.ID.String(), "expires_at", t.ExpiresAt, "via", "console")
	s.render(w, http.StatusCreated, "token.html", c, map[string]any{"Title": "Enrollment token",
		"Token": t.String(), "Identity": id.String(), "Expires": t.ExpiresAt})
	return nil
}
