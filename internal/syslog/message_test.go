package syslog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2026, 12, 5, 13, 4, 5, 123456789, time.UTC)

func TestAppendExact(t *testing.T) {
	m := Message{
		Facility: FacilityLocal0, Severity: SeverityInfo, Time: t0, Hostname: "gw1.example.org", AppName: "certgate",
		ProcID: "42", MsgID: "access",
		StructuredData: []SDElement{{ID: "certgate@53595", Params: []SDParam{{"schema", "1"}, {"v", `a"b\c]d` + "\xff" + "é"}}}},
		Msg:            []byte(`{"x":1}`),
	}
	got, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `<134>1 2026-12-05T13:04:05.123456Z gw1.example.org certgate 42 access [certgate@53595 schema="1" v="a\"b\\c\]d` + "\uFFFDé" + `"] {"x":1}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	back, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.StructuredData[0].Params[1].Value != `a"b\c]d`+"\uFFFDé" || string(back.Msg) != `{"x":1}` || !back.Time.Equal(t0.Truncate(time.Microsecond)) {
		t.Fatalf("round trip = %+v", back)
	}
	nils, _ := (&Message{Severity: SeverityError}).Append(nil)
	if string(nils) != "<3>1 - - - - - -" {
		t.Fatalf("all nil = %q", nils)
	}
}

func TestAppendRefusesBadFields(t *testing.T) {
	for name, c := range map[string]struct {
		m    Message
		want string
	}{
		"space in hostname":   {Message{Hostname: "a b"}, "syslog: invalid message: hostname: byte 0x20 at 1 is not allowed"},
		"hostname too long":   {Message{Hostname: strings.Repeat("h", 256)}, "syslog: invalid message: hostname: longer than 255 bytes"},
		"app-name too long":   {Message{AppName: strings.Repeat("a", 49)}, "syslog: invalid message: app-name: longer than 48 bytes"},
		"non-ASCII procid":    {Message{ProcID: "é"}, "syslog: invalid message: procid: byte 0xc3 at 0 is not allowed"},
		"msgid too long":      {Message{MsgID: strings.Repeat("m", 33)}, "syslog: invalid message: msgid: longer than 32 bytes"},
		"NILVALUE as a value": {Message{AppName: "-"}, `syslog: invalid message: app-name: "-" is the NILVALUE`},
		"= in SD-ID":          {Message{StructuredData: []SDElement{{ID: "a=b"}}}, `syslog: invalid message: SD-ID "a=b": byte 0x3d at 1 is not allowed`},
		"empty PARAM-NAME":    {Message{StructuredData: []SDElement{{ID: "x@1", Params: []SDParam{{"", "v"}}}}}, `syslog: invalid message: PARAM-NAME "": <nil>`},
		"] in PARAM-NAME":     {Message{StructuredData: []SDElement{{ID: "x@1", Params: []SDParam{{"a]", "v"}}}}}, `syslog: invalid message: PARAM-NAME "a]": byte 0x5d at 1 is not allowed`},
		"severity":            {Message{Severity: 8}, "syslog: invalid message: facility 0 or severity 8 out of range"},
		"facility":            {Message{Facility: 24}, "syslog: invalid message: facility 24 or severity 0 out of range"},
	} {
		_, err := c.m.Append(nil)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error = %v, want %s", name, err, c.want)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{"gw 1\x00é": "gw_1___", "-": "", "": "", strings.Repeat("x", 300): strings.Repeat("x", 255)} {
		if got := CleanName(in, MaxHostname); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "syslog: invalid message: at byte 0: missing '<'"},
		{"<192>1 - - - - - -", "syslog: invalid message: at byte 4: bad PRI"},
		{"<01>1 - - - - - -", "syslog: invalid message: at byte 3: bad PRI"},
		{"<1>2 - - - - - -", "syslog: invalid message: at byte 3: version is not 1"},
		{"<1>1 2026-12-05T13:04:05.1234567Z - - - - -", `syslog: invalid message: at byte 34: TIMESTAMP "2026-12-05T13:04:05.1234567Z" has 7 fraction digits, not 1 to 6`},
		{"<1>1 yesterday - - - - -", `syslog: invalid message: at byte 15: bad TIMESTAMP "yesterday"`},
		{"<1>1 - - - - - [a b=\"x]\"]", "syslog: invalid message: at byte 22: bad PARAM-VALUE"},
		{"<1>1 - - - - - [a", "syslog: invalid message: at byte 17: unterminated SD-ELEMENT"},
		{"<1>1 - - - - - x", "syslog: invalid message: at byte 15: bad STRUCTURED-DATA"},
		{"<1>1 - - - - -x", "syslog: invalid message: at byte 15: bad header field"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%q) = %v, want %s", c.in, err, c.want)
		}
	}
}

func TestFrames(t *testing.T) {
	var b []byte
	b = AppendFrame(b, []byte("<1>1 - - - - - - a"))
	b = AppendFrame(b, []byte("<1>1 - - - - - - b c"))
	if string(b) != "18 <1>1 - - - - - - a20 <1>1 - - - - - - b c" {
		t.Fatalf("frames = %q", b)
	}
	r := bufio.NewReader(bytes.NewReader(b))
	for _, want := range []string{"<1>1 - - - - - - a", "<1>1 - - - - - - b c"} {
		got, err := ReadFrame(r, 100)
		if err != nil || string(got) != want {
			t.Fatalf("ReadFrame = %q, %v", got, err)
		}
	}
	if _, err := ReadFrame(r, 100); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
	for in, want := range map[string]string{
		"5 abc":        "unexpected EOF",
		"12":           "unexpected EOF",
		"05 abc":       "syslog: invalid message: bad MSG-LEN byte 0x30",
		"x":            "syslog: invalid message: bad MSG-LEN byte 0x78",
		"101 ":         "syslog: invalid message: frame of 101 bytes is over 100",
		" 1":           "syslog: invalid message: bad MSG-LEN byte 0x20",
		"99999999999 ": "syslog: invalid message: bad MSG-LEN byte 0x39",
	} {
		_, err := ReadFrame(bufio.NewReader(strings.NewReader(in)), 100)
		if err == nil || err.Error() != want {
			t.Errorf("ReadFrame(%q) = %v, want %s", in, err, want)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	m := Message{Facility: FacilityLocal0, Severity: SeverityInfo, Time: t0, Hostname: "h", AppName: "a", MsgID: "access",
		StructuredData: []SDElement{{ID: "x@1", Params: []SDParam{{"k", "v"}}}}, Msg: []byte("hello")}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf, _ = m.Append(buf[:0]) }); n != 0 {
		t.Fatalf("Append allocates %v times", n)
	}
}

// FuzzMessage: whatever goes into a message's fields (cleaned where the
// RFC limits them) comes back out of Parse the same.
func FuzzMessage(f *testing.F) {
	f.Add("host", "app", "id", "p", `v"]\`, []byte("msg"), uint8(134))
	f.Add("", "", "", "", "", []byte{}, uint8(0))
	f.Add("-", "\x00", "é", "a=b", "\xff", []byte(" leading"), uint8(191))
	f.Fuzz(func(t *testing.T, host, app, msgid, pname, pval string, msg []byte, pri uint8) {
		m := Message{
			Facility: Facility(pri % 192 / 8), Severity: Severity(pri % 8), Time: t0,
			Hostname: CleanName(host, MaxHostname), AppName: CleanName(app, MaxAppName), MsgID: CleanName(msgid, MaxMsgID),
			Msg: msg,
		}
		if name := strings.Map(func(r rune) rune {
			if r < 33 || r > 126 || r == '=' || r == ']' || r == '"' {
				return -1
			}
			return r
		}, pname); name != "" && len(name) <= MaxSDName {
			m.StructuredData = []SDElement{{ID: "x@1", Params: []SDParam{{name, pval}}}}
		}
		b, err := m.Append(nil)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%q): %v", b, err)
		}
		if len(msg) == 0 {
			msg = nil
		}
		wantSD := m.StructuredData
		if len(wantSD) > 0 {
			wantSD = []SDElement{{ID: "x@1", Params: []SDParam{{wantSD[0].Params[0].Name, perByteValid(pval)}}}}
		}
		if back.Facility != m.Facility || back.Severity != m.Severity || back.Hostname != m.Hostname || back.AppName != m.AppName ||
			back.MsgID != m.MsgID || !bytes.Equal(back.Msg, msg) || !reflect.DeepEqual(back.StructuredData, wantSD) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", b, back, m)
		}
	})
}

// FuzzParse: no input panics Parse or ReadFrame, and what Parse accepts
// writes back to something Parse reads the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`<134>1 2026-12-05T13:04:05.123456Z h a - m [x@1 k="v\]"] body`))
	f.Add([]byte("<0>1 - - - - - -"))
	f.Add([]byte("12 <1>1 - - - - - -"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadFrame(bufio.NewReader(bytes.NewReader(b)), 1<<16)
		frameEnd(b)
		m, err := Parse(b)
		if err != nil {
			return
		}
		out, err := m.Append(nil)
		if err != nil {
			return // Parse is lenient where Append is strict (e.g. "-" alone is not re-encodable)
		}
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		out2, _ := m2.Append(nil)
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable: %q then %q", out, out2)
		}
	})
}

// perByteValid replaces each invalid byte with U+FFFD, as Append does
// (strings.ToValidUTF8 replaces a run with one).
func perByteValid(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError && len(s[i:]) > 0 {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				b.WriteString("\uFFFD")
				continue
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}
