package gateway

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/certgate/certgate/internal/testca"
)

// h2Response is what rawH2 got back.
type h2Response struct {
	status int
	header http.Header
	body   []byte
	reset  http2.ErrCode // RST_STREAM code, if the stream was reset
}

// rawH2 sends one request over a fresh HTTP/2 connection with exactly the
// pseudo-headers and header fields given, bypassing the checks Go's
// client does (a :path that is not a clean URL, names with underscores),
// and reads the response. fields are name, value pairs, sent in order.
func (e *env) rawH2(leaf *testca.Leaf, method, authority, path string, fields ...string) (*h2Response, error) {
	tc := e.tlsConfig(leaf)
	tc.NextProtos = []string{"h2"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.addr(), tc)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		return nil, err
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for i := 0; i+1 < len(fields); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return nil, err
	}
	resp := &h2Response{header: http.Header{}}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("reading frames: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			for _, hf := range f.RegularFields() {
				resp.header.Add(hf.Name, hf.Value)
			}
			resp.status, _ = strconv.Atoi(f.PseudoValue("status"))
			if f.StreamEnded() {
				return resp, nil
			}
		case *http2.DataFrame:
			resp.body = append(resp.body, f.Data()...)
			if f.StreamEnded() {
				return resp, nil
			}
		case *http2.RSTStreamFrame:
			resp.reset = f.ErrCode
			return resp, nil
		case *http2.GoAwayFrame:
			return nil, fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
	}
}
