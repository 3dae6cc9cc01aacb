package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestBuildInfoString(t *testing.T) {
	const rev = "3f2a1b9c0d1e4f5a6b7c8d9e0f1a2b3c4d5e6f70"
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{
			name: "release tag, clean tree",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/stepup-dev/stepup", Version: "v1.2.0"},
				Settings: []debug.BuildSetting{
					{Key: "vcs", Value: "git"},
					{Key: "vcs.revision", Value: rev},
					{Key: "vcs.modified", Value: "false"},
				},
			},
			want: "stepup v1.2.0 (commit 3f2a1b9c0d1e) go1.26.8",
		},
		{
			name: "pseudo-version, modified tree",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/stepup-dev/stepup", Version: "v0.0.0-20261207101500-3f2a1b9c0d1e+dirty"},
				Settings: []debug.BuildSetting{
					{Key: "-buildmode", Value: "exe"},
					{Key: "vcs.revision", Value: rev},
					{Key: "vcs.modified", Value: "true"},
				},
			},
			want: "stepup v0.0.0-20261207101500-3f2a1b9c0d1e+dirty (commit 3f2a1b9c0d1e, modified) go1.26.8",
		},
		{
			name: "no version control information",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Path: "github.com/stepup-dev/stepup", Version: "(devel)"},
				Settings:  []debug.BuildSetting{{Key: "CGO_ENABLED", Value: "0"}},
			},
			want: "stepup (devel) (commit unknown) go1.26.8",
		},
		{
			name: "modified without a revision is not claimed",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Settings:  []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}},
			},
			want: "stepup (devel) (commit unknown) go1.26.8",
		},
		{
			name: "short revision kept whole",
			bi: debug.BuildInfo{
				GoVersion: "go1.26.8",
				Main:      debug.Module{Version: "v1.0.0"},
				Settings:  []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}},
			},
			want: "stepup v1.0.0 (commit abc123) go1.26.8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := From(&tt.bi).String()
			if got != tt.want {
				t.Errorf("From(...).String()\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
