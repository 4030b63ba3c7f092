package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/certgate/certgate"

// clientSide is what runs on a client's or a gateway's machine, or drives
// the server from outside as a client does: the SDK, the agent (and the
// gateway's own identity), enrollment, the gateway, the API client and the
// wire types, the feed follower, the revocation set and puller, and the
// benchmark tooling with its load generator. Everything they import is
// checked too, so a package that they start to use falls under the rules
// with them.
var clientSide = []string{
	"./certgatetls",
	"./internal/agent",
	"./internal/enroll",
	"./internal/workloadapi",
	"./internal/credexport",
	"./internal/devicekey",
	"./internal/gateway/...",
	"./internal/apiclient",
	"./internal/wire",
	"./internal/feed",
	"./internal/revocation",
	"./internal/usage",
	"./internal/ratelimit",
	"./internal/bench/...",
}

// A rule forbids the packages matched by from (less except) to import
// forbid: each entry is an import path that stands for itself and every
// package below it. By default everything linked counts (go list -deps);
// direct limits the rule to the packages' own imports. stdOnly forbids
// everything outside the standard library.
type rule struct {
	name    string
	from    []string // go list patterns relative to the module root
	except  []string // import paths (and below) that from leaves out
	forbid  []string
	direct  bool
	stdOnly bool
}

// rules are the import rules of docs/architecture.md; keep the two in step.
var rules = []rule{
	{
		name:   "the client side links no store and no database driver",
		from:   clientSide,
		forbid: []string{module + "/internal/store", "database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"},
	},
	{
		// The gateway's runtime links database/sql itself, without a
		// driver, through internal/metrics: Prometheus's collectors package
		// holds a collector of database/sql pool statistics.
		name:   "the gateway's runtime links no store and no database driver",
		from:   []string{"./internal/gatewayd"},
		forbid: []string{module + "/internal/store", "modernc.org/sqlite", "github.com/jackc/pgx"},
	},
	{
		name: "clients speak the /v1 wire types and never link the server or the CA",
		from: append([]string{"./internal/gatewayd"}, clientSide...),
		forbid: []string{module + "/internal/server", module + "/internal/ca", module + "/internal/cadir", module + "/internal/cakey",
			module + "/internal/calife", module + "/internal/certstatus"},
	},
	{
		name:    "the wire types are a leaf: standard library only",
		from:    []string{"./internal/wire"},
		stdOnly: true,
	},
	{
		name:   "only the store opens databases",
		from:   []string{"./..."},
		except: []string{module + "/internal/store"},
		forbid: []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx"},
		direct: true,
	},
	{
		name:   "only internal/metrics imports Prometheus",
		from:   []string{"./..."},
		except: []string{module + "/internal/metrics"},
		forbid: []string{"github.com/prometheus"},
		direct: true,
	},
	{
		name:   "test helpers are imported by tests only",
		from:   []string{"./..."},
		except: []string{module + "/internal/testenv", module + "/internal/testca", module + "/internal/store/storetest", module + "/internal/syslog/syslogtest"},
		forbid: []string{module + "/internal/testenv", module + "/internal/testca", module + "/internal/store/storetest", module + "/internal/syslog/syslogtest"},
		direct: true,
	},
	{
		// cmd/certgate turns flags into options and calls packages: keys,
		// certificates, protocols, test servers and databases are theirs.
		name: "cmd/certgate only wires",
		from: []string{"./cmd/..."},
		forbid: []string{
			"crypto/ecdh", "crypto/ecdsa", "crypto/ed25519", "crypto/elliptic", "crypto/rsa", "crypto/rand",
			"encoding/asn1", "encoding/pem", "golang.org/x/crypto",
			"net/http/httptest", "net/http/httputil", "golang.org/x/net",
			"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", "github.com/prometheus",
		},
		direct: true,
	},
}

// TestImportRules checks every rule against the repository.
func TestImportRules(t *testing.T) {
	root := moduleRoot(t)
	if v := violations(t, root, module, "", rules); len(v) > 0 {
		t.Errorf("import rules broken (see docs/architecture.md):\n%s", strings.Join(v, "\n"))
	}
}

// TestArchitectureListsEveryPackage: docs/architecture.md has a row for
// every package of the module and none for a package that is gone.
func TestArchitectureListsEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range docRow.FindAllSubmatch(doc, -1) {
		listed[string(m[1])] = true
	}
	_, own := load(t, root, "")
	for _, p := range own {
		name := strings.TrimPrefix(p, module+"/")
		if !listed[name] {
			t.Errorf("docs/architecture.md has no row for %s: add one (| `%s` | what it is |) where it sits in the data flow", name, name)
		}
		delete(listed, name)
	}
	for name := range listed {
		t.Errorf("docs/architecture.md lists %s, which is not a package of the module", name)
	}
}

// docRow is a row of the package tables: | `path` | what it is |.
var docRow = regexp.MustCompile("(?m)^\\| `([a-z0-9/._-]+)` \\|")

// TestImportRulesCatchForbiddenImports adds forbidden imports to the real
// tree (through an overlay, so no file changes) and checks that the rules
// report them, with the chain that links them.
func TestImportRulesCatchForbiddenImports(t *testing.T) {
	root := moduleRoot(t)
	for _, c := range []struct {
		name, file, src string
		want            []string
	}{
		{
			name: "the SDK imports the store",
			file: "certgatetls/zz_forbidden.go",
			src:  "package certgatetls\n\nimport _ \"" + module + "/internal/store\"\n",
			want: []string{
				"the client side links no store and no database driver: certgatetls links internal/store (certgatetls → internal/store)",
				"the client side links no store and no database driver: internal/agent links internal/store (internal/agent → certgatetls → internal/store)",
				"the client side links no store and no database driver: internal/enroll links internal/store (internal/enroll → certgatetls → internal/store)",
			},
		},
		{
			name: "the agent imports the server",
			file: "internal/agent/zz_forbidden.go",
			src:  "package agent\n\nimport _ \"" + module + "/internal/server\"\n",
			// The walk stops at the first forbidden package of a rule: the
			// CA behind the server is not listed again.
			want: []string{
				"clients speak the /v1 wire types and never link the server or the CA: internal/agent links internal/server (internal/agent → internal/server)",
				"the client side links no store and no database driver: internal/agent links internal/store (internal/agent → internal/server → internal/store)",
			},
		},
		{
			name: "the gateway links a database driver through a package of its own",
			file: "internal/gateway/h1/zz_forbidden.go",
			src:  "package h1\n\nimport _ \"github.com/jackc/pgx/v5/stdlib\"\n",
			want: []string{
				"only the store opens databases: internal/gateway/h1 imports github.com/jackc/pgx/v5/stdlib",
				"the client side links no store and no database driver: internal/bench links github.com/jackc/pgx/v5/stdlib (internal/bench → internal/gateway/h1 → github.com/jackc/pgx/v5/stdlib)",
				"the client side links no store and no database driver: internal/gateway links github.com/jackc/pgx/v5/stdlib (internal/gateway → internal/gateway/h1 → github.com/jackc/pgx/v5/stdlib)",
				"the client side links no store and no database driver: internal/gateway/h1 links github.com/jackc/pgx/v5/stdlib (internal/gateway/h1 → github.com/jackc/pgx/v5/stdlib)",
			},
		},
		{
			name: "the wire package imports a module package",
			file: "internal/wire/zz_forbidden.go",
			src:  "package wire\n\nimport _ \"" + module + "/internal/identity\"\n",
			want: []string{
				"the wire types are a leaf: standard library only: internal/wire imports internal/identity",
			},
		},
		{
			name: "cmd signs with its own key",
			file: "cmd/certgate/zz_forbidden.go",
			src:  "package main\n\nimport _ \"crypto/ecdsa\"\n",
			want: []string{
				"cmd/certgate only wires: cmd/certgate imports crypto/ecdsa",
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			overlay := writeOverlay(t, filepath.Join(root, c.file), c.src)
			got := violations(t, root, module, overlay, rules)
			// Every wanted line, and nothing that the added import does not
			// cause: packages that import the changed one are reported too,
			// by chains through it.
			pkg := filepath.Dir(c.file)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing violation %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
			for _, g := range got {
				if !strings.Contains(g, " "+pkg+" ") && !strings.Contains(g, " "+pkg+")") {
					t.Errorf("violation not caused by the added import: %s", g)
				}
			}
		})
	}
}

// TestViolationsInScratchModule runs the checker on a module of its own,
// so the rules' mechanics are tested apart from this repository's graph:
// a chain through a package of the module, the except list, direct-only
// rules and the standard-library-only rule.
func TestViolationsInScratchModule(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":       "module example.com/scratch\n\ngo 1.22\n",
		"client/c.go":  "package client\n\nimport _ \"example.com/scratch/db\"\n",
		"db/db.go":     "package db\n\nimport _ \"database/sql\"\n",
		"leaf/leaf.go": "package leaf\n\nimport (\n\t_ \"strings\"\n\n\t_ \"example.com/scratch/client\"\n)\n",
		"ok/ok.go":     "package ok\n\nimport _ \"net/http\"\n",
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scratch := []rule{
		{name: "no sql", from: []string{"./client", "./ok"}, forbid: []string{"database/sql"}},
		{name: "no sql outside db", from: []string{"./..."}, except: []string{"example.com/scratch/db"}, forbid: []string{"database/sql"}, direct: true},
		{name: "leaf", from: []string{"./leaf", "./ok"}, stdOnly: true},
	}
	got := violations(t, dir, "example.com/scratch", "", scratch)
	want := []string{
		"leaf: leaf imports client",
		"no sql: client links database/sql (client → db → database/sql)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// pkg is what go list says about one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
	DepOnly    bool
	Error      *struct{ Err string }
}

// violations lists, sorted, how the module in dir breaks rules: one line
// per package and forbidden package it reaches, with the shortest chain
// of imports (the first in import order) that reaches it. Paths are shown
// without the module prefix. Reaching a forbidden package ends the walk
// there, so what it imports in turn is not listed again.
func violations(t *testing.T, dir, mod, overlay string, rules []rule) []string {
	t.Helper()
	graph, own := load(t, dir, overlay)
	short := func(p string) string {
		if p == mod {
			return "."
		}
		return strings.TrimPrefix(p, mod+"/")
	}
	var out []string
	for _, r := range rules {
		forbidden := func(p string) bool {
			if r.stdOnly {
				return !graph[p].Standard
			}
			return slices.ContainsFunc(r.forbid, func(f string) bool { return under(p, f) })
		}
		for _, from := range own {
			if !matches(dir, mod, r.from, from) || slices.ContainsFunc(r.except, func(e string) bool { return under(from, e) }) {
				continue
			}
			if r.direct || r.stdOnly {
				for _, imp := range graph[from].Imports {
					if forbidden(imp) {
						out = append(out, fmt.Sprintf("%s: %s imports %s", r.name, short(from), short(imp)))
					}
				}
				continue
			}
			for _, chain := range reach(graph, from, forbidden) {
				names := make([]string, len(chain))
				for i, p := range chain {
					names[i] = short(p)
				}
				out = append(out, fmt.Sprintf("%s: %s links %s (%s)", r.name, names[0], names[len(names)-1], strings.Join(names, " → ")))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// reach walks the imports of from breadth first and returns, for every
// forbidden package it reaches, the chain that reached it first.
func reach(graph map[string]*pkg, from string, forbidden func(string) bool) [][]string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	var found [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range graph[p].Imports {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = p
			if !forbidden(imp) {
				queue = append(queue, imp)
				continue
			}
			chain := []string{imp}
			for q := p; q != ""; q = prev[q] {
				chain = append([]string{q}, chain...)
			}
			found = append(found, chain)
		}
	}
	return found
}

// under reports whether path is p or below it.
func under(path, p string) bool {
	return path == p || strings.HasPrefix(path, p+"/")
}

// matches reports whether the package path is matched by one of the
// patterns, "./x" (that package) or "./x/..." (it and below) relative to
// the module root, the only forms the rules use.
func matches(dir, mod string, patterns []string, path string) bool {
	for _, pat := range patterns {
		rel, all := strings.CutSuffix(pat, "/...")
		p := mod
		if rel = strings.TrimPrefix(strings.TrimPrefix(rel, "."), "/"); rel != "" {
			p += "/" + rel
		}
		if path == p || all && under(path, p) {
			return true
		}
	}
	return false
}

// load runs go list over every package of the module in dir and returns
// the import graph, with the standard library, and the module's own
// packages (sorted). A package that does not load fails the test.
func load(t *testing.T, dir, overlay string) (map[string]*pkg, []string) {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	args := []string{"list", "-e", "-deps", "-json=ImportPath,Imports,Standard,DepOnly,Error"}
	if overlay != "" {
		args = append(args, "-overlay="+overlay)
	}
	cmd := exec.Command(gocmd, append(args, "./...")...)
	cmd.Dir = dir
	// The graph of the platform the tests run on; no cgo, like the releases.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	graph := map[string]*pkg{}
	var own []string
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = &p
		if !p.DepOnly {
			own = append(own, p.ImportPath)
		}
	}
	slices.Sort(own)
	return graph, own
}

// writeOverlay returns a go build overlay file that adds src at path.
func writeOverlay(t *testing.T, path, src string) string {
	t.Helper()
	dir := t.TempDir()
	srcFile := filepath.Join(dir, "src.go")
	if err := os.WriteFile(srcFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {path: srcFile}})
	if err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return overlay
}

// moduleRoot is the repository root: two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}
