package skills

import "testing"

func TestMention(t *testing.T) {
	for in, want := range map[string]string{
		"Dana Cohen <dana@example.com>":                      "Dana Cohen",
		"Dana Cohen <12345+dcohen@users.noreply.github.com>": "@dcohen",
		"Dana Cohen <dcohen@users.noreply.github.com>":       "@dcohen",
		"Dana Cohen <12345+DCohen@Users.Noreply.GitHub.com>": "@dcohen",
		"Dana Cohen": "Dana Cohen",
		"Bob Builder <bob@users.noreply.github.com.evil.example>": "Bob Builder",
	} {
		if got := mention(in); got != want {
			t.Errorf("mention(%q) = %q, want %q", in, got, want)
		}
	}
}
