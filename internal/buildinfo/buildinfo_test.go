package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{
			name: "stamped release",
			ok:   true,
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/certgate/certgate", Version: "v1.2.3"},
				Settings: []debug.BuildSetting{
					{Key: "CGO_ENABLED", Value: "0"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
					{Key: "vcs.revision", Value: "861c6d8b44faf61ba356889e8a5b3702d6e7c454"},
					{Key: "vcs.time", Value: "2026-12-05T10:36:35Z"}, {Key: "vcs.modified", Value: "false"},
				},
			},
			want: "certgate v1.2.3\n" +
				"module:   github.com/certgate/certgate\n" +
				"revision: 861c6d8b44faf61ba356889e8a5b3702d6e7c454\n" +
				"time:     2026-12-05T10:36:35Z\n" +
				"go:       go1.26.8 linux/arm64 (static, CGO_ENABLED=0)\n",
		},
		{
			name: "modified checkout",
			ok:   true,
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/certgate/certgate", Version: "(devel)"},
				Settings: []debug.BuildSetting{
					{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"}, {Key: "CGO_ENABLED", Value: "1"},
					{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.time", Value: "2026-12-05T10:36:35Z"}, {Key: "vcs.modified", Value: "true"},
				},
			},
			want: "certgate (devel)\n" +
				"module:   github.com/certgate/certgate\n" +
				"revision: abc (with uncommitted changes)\n" +
				"time:     2026-12-05T10:36:35Z\n" +
				"go:       go1.26.8 linux/amd64\n",
		},
		{
			name: "no vcs stamp",
			ok:   true,
			bi: &debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/certgate/certgate", Version: "(devel)"},
				Settings:  []debug.BuildSetting{{Key: "GOOS", Value: "darwin"}, {Key: "GOARCH", Value: "arm64"}},
			},
			want: "certgate (devel)\n" +
				"module:   github.com/certgate/certgate\n" +
				"revision: unknown (built without VCS stamping: go install MODULE@VERSION, or go build -buildvcs=true in a git clone)\n" +
				"go:       go1.26.8 darwin/arm64\n",
		},
		{
			name: "no build info",
			want: "certgate unknown\n" +
				"revision: unknown (built without VCS stamping: go install MODULE@VERSION, or go build -buildvcs=true in a git clone)\n" +
				"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := From(tc.bi, tc.ok).String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
