// Package buildinfo describes the running binary from the build
// information the Go toolchain embeds in it: no link-time flags are
// involved.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Info describes a binary.
type Info struct {
	// Version is the main module's version: a release tag such as v1.2.0,
	// a pseudo-version derived from the commit (with "+dirty" when the tree
	// had uncommitted changes), or "(devel)" when the build carries no
	// version control information.
	Version string
	// Revision is the commit the binary was built from, shortened to 12
	// hexadecimal digits as in Go pseudo-versions; "" when unknown.
	Revision string
	// Modified reports that the working tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// shortRevisionLen is the length of a shortened commit hash.
const shortRevisionLen = 12

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(devel)", GoVersion: "unknown"}
	}
	return From(bi)
}

// From extracts the version, the shortened vcs.revision and
// vcs.modified from bi.
func From(bi *debug.BuildInfo) Info {
	b := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if b.GoVersion == "" {
		b.GoVersion = "unknown"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
			if len(b.Revision) > shortRevisionLen {
				b.Revision = b.Revision[:shortRevisionLen]
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the line `stepup version` prints:
//
//	stepup VERSION (commit REVISION[, modified]) GOVERSION
//
// with "commit unknown" when the build carries no version control
// information.
func (b Info) String() string {
	commit := "commit unknown"
	if b.Revision != "" {
		commit = "commit " + b.Revision
		if b.Modified {
			commit += ", modified"
		}
	}
	return fmt.Sprintf("stepup %s (%s) %s", b.Version, commit, b.GoVersion)
}
