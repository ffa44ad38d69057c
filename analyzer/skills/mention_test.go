package skills

import "testing"

func TestMention(t *testing.T) {
	logins := map[string]string{"dana@example.com": "dcohen", "Eve Adams": "@eadams", "blank@example.com": ""}
	for _, tc := range []struct {
		author string
		logins map[string]string
		want   string
	}{
		{"Dana Cohen <dana@example.com>", nil, "Dana Cohen"},
		{"Dana Cohen <12345+dcohen@users.noreply.github.com>", nil, "@dcohen"},
		{"Dana Cohen <dcohen@users.noreply.github.com>", nil, "@dcohen"},
		{"Dana Cohen <12345+DCohen@Users.Noreply.GitHub.com>", nil, "@dcohen"},
		{"Dana Cohen", nil, "Dana Cohen"},
		{"Bob Builder <bob@users.noreply.github.com.evil.example>", nil, "Bob Builder"},
		{"Dana Cohen <Dana@Example.com>", logins, "@dcohen"},        // mapped by email, any case
		{"Eve Adams <eve@corp.example>", logins, "@eadams"},         // mapped by name
		{"Eve Adams <1+eve@users.noreply.github.com>", nil, "@eve"}, // noreply without a map
		{"Blank <blank@example.com>", logins, "Blank"},              // empty login: the name
		{"Zed <zed@example.com>", logins, "Zed"},                    // not mapped
	} {
		if got := mention(tc.author, tc.logins); got != tc.want {
			t.Errorf("mention(%q) = %q, want %q", tc.author, got, tc.want)
		}
	}
}
