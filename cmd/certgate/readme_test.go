package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/certgate/certgate/internal/config"
)

// TestReadmeExamples keeps README.md honest: its gateway.yaml loads with
// the strict decoder, and every certgate subcommand it shows exists.
func TestReadmeExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no yaml example")
	}
	for _, b := range blocks {
		g, err := config.ParseGateway("README gateway.yaml", []byte(b[1]))
		if err != nil {
			t.Fatalf("README's gateway.yaml does not load: %v", err)
		}
		if len(g.Routes) == 0 || g.Identity.Dir == "" {
			t.Fatalf("README's gateway.yaml lost its route or identity: %+v", g)
		}
	}
	root := newRootCmd(strings.NewReader(""), nil, nil)
	var shell strings.Builder
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1) {
		shell.WriteString(b[1])
	}
	for _, m := range regexp.MustCompile(`certgate ([a-z]+(?: [a-z]+)?)`).FindAllStringSubmatch(shell.String(), -1) {
		words := strings.Fields(m[1])
		cmd, rest, err := root.Find(words)
		if err != nil || cmd == root || (len(rest) > 0 && cmd.HasSubCommands()) {
			t.Errorf("README shows `certgate %s`, which is not a command", m[1])
		}
	}
}
