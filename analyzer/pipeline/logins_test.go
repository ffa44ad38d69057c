package pipeline

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadLogins(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       map[string]string
		wantErr    bool
	}{
		{"lines", "# team\nDana@Example.com dcohen\nEve Adams @eadams  # by name\n\n", map[string]string{"dana@example.com": "dcohen", "Eve Adams": "eadams"}, false},
		{"json", `{"Dana@Example.com": "@dcohen", "Eve Adams": "eadams"}`, map[string]string{"dana@example.com": "dcohen", "Eve Adams": "eadams"}, false},
		{"empty", "", map[string]string{}, false},
		{"no login", "dana@example.com\n", nil, true},
		{"bad json", `{"dana@example.com": 1}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "logins")
			if err := os.WriteFile(p, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := LoadLogins(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("LoadLogins: %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && !maps.Equal(got, tc.want) {
				t.Errorf("LoadLogins = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := LoadLogins(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
