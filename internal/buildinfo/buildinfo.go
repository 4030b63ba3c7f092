package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what the go command recorded about this build.
type Info struct {
	Path      string // the main package's module path
	Version   string // module version: a tag or pseudo-version from go install, "(devel)" from a checkout
	Revision  string // VCS commit, empty when not stamped
	Time      string // VCS commit time (RFC 3339), empty when not stamped
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string // the toolchain that built the binary
	Platform  string // GOOS/GOARCH
	CGO       string // CGO_ENABLED as built ("0" for the static binary), empty when not recorded
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return From(bi, ok)
}

// From turns the go command's record into an Info; ok false (a binary
// built without module support) gives what the runtime alone knows.
func From(bi *debug.BuildInfo, ok bool) Info {
	info := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Version: "unknown"}
	if !ok || bi == nil {
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	info.Path = bi.Main.Path
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		case "CGO_ENABLED":
			info.CGO = s.Value
		}
	}
	if goos != "" && goarch != "" {
		info.Platform = goos + "/" + goarch
	}
	return info
}

// String is the multi-line text `certgate version` prints.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "certgate %s\n", i.Version)
	if i.Path != "" {
		fmt.Fprintf(&b, "module:   %s\n", i.Path)
	}
	switch {
	case i.Revision == "":
		b.WriteString("revision: unknown (built without VCS stamping: go install MODULE@VERSION, or go build -buildvcs=true in a git clone)\n")
	case i.Modified:
		fmt.Fprintf(&b, "revision: %s (with uncommitted changes)\n", i.Revision)
	default:
		fmt.Fprintf(&b, "revision: %s\n", i.Revision)
	}
	if i.Time != "" {
		fmt.Fprintf(&b, "time:     %s\n", i.Time)
	}
	fmt.Fprintf(&b, "go:       %s %s", i.GoVersion, i.Platform)
	if i.CGO == "0" {
		b.WriteString(" (static, CGO_ENABLED=0)")
	}
	b.WriteString("\n")
	return b.String()
}
