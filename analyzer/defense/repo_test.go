package defense

import (
	"os"
	"path/filepath"
	"testing"
)

func TestConfigRepo(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"billing/.git", "notgit"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		service string
		want    string
	}{
		{"explicit repo", Config{Repos: map[string]string{"billing": "/src/billing"}, RepoDir: root}, "billing", "/src/billing"},
		{"repo dir", Config{RepoDir: root}, "billing", filepath.Join(root, "billing")},
		{"not a work tree", Config{RepoDir: root}, "notgit", ""},
		{"missing", Config{RepoDir: root}, "api", ""},
		{"path in name", Config{RepoDir: root}, "../billing", ""},
		{"dot dot", Config{RepoDir: root}, "..", ""},
		{"no repo dir", Config{}, "billing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.cfg.repo(tc.service)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("repo(%q) = %q, %v; want %q", tc.service, got, ok, tc.want)
			}
		})
	}
}
