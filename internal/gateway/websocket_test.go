package gateway

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A minimal RFC 6455 echo server and client, enough to prove the gateway
// tunnels an upgraded connection both ways.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

func serveWebSocketEcho(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("Sec-WebSocket-Key") == "" {
		http.Error(w, "not a websocket request", http.StatusBadRequest)
		return
	}
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(r.Header.Get("Sec-WebSocket-Key")))
	brw.Flush()
	for {
		op, payload, err := wsRead(brw.Reader)
		if err != nil {
			return
		}
		wsWrite(brw.Writer, op, payload, false)
		brw.Flush()
		if op == 8 {
			return
		}
	}
}

func wsRead(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	op = h[0] & 0x0f
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, errors.New("frame too large")
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(br, mask[:]); err != nil {
			return 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return op, payload, nil
}

func wsWrite(w io.Writer, op byte, payload []byte, mask bool) error {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch {
	case len(payload) < 126:
		b = append(b, m|byte(len(payload)))
	case len(payload) < 1<<16:
		b = append(b, m|126, byte(len(payload)>>8), byte(len(payload)))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	}
	p := append([]byte(nil), payload...)
	if mask {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	_, err := w.Write(append(b, p...))
	return err
}

func TestWebSocketEcho(t *testing.T) {
	e := newEnv(t)
	leaf := e.ca.Issue(t, withSvc("ws"))
	c := e.dial(leaf)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: api\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("upgrade response %s %v", resp.Status, resp.Header)
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 70000), "bye"} {
		if err := wsWrite(c, 1, []byte(msg), true); err != nil {
			t.Fatal(err)
		}
		op, got, err := wsRead(br)
		if err != nil || op != 1 || string(got) != msg {
			t.Fatalf("echo of %d bytes: op %d, %d bytes, %v", len(msg), op, len(got), err)
		}
	}
	wsWrite(c, 8, nil, true)
	if op, _, err := wsRead(br); err != nil || op != 8 {
		t.Fatalf("close echo: op %d, %v", op, err)
	}
	l := e.waitLog(func(m map[string]any) bool { return m["path"] == "/ws" })
	if l["status"] != float64(101) || l["bytes_in"].(float64) < 70000 || l["bytes_out"].(float64) < 70000 {
		t.Fatalf("log entry %v", l)
	}
	_ = time.Second
}
