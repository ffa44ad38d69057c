package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// LoadLogins reads a login mapping file for PR mentions: a JSON object
// {"KEY": "LOGIN", …} or lines "KEY LOGIN" (# starts a comment), where KEY is a
// commit author's email or name (a name may contain spaces; the login is the last
// word). Emails are matched in any case, names exactly.
func LoadLogins(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("logins: %w", err)
	}
	m := map[string]string{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, &m); err != nil {
			return nil, fmt.Errorf("logins %s: %w", path, err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line, _, _ := strings.Cut(sc.Text(), "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if len(f) < 2 {
				return nil, fmt.Errorf("logins %s:%d: want \"EMAIL-OR-NAME LOGIN\"", path, n)
			}
			m[strings.Join(f[:len(f)-1], " ")] = f[len(f)-1]
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("logins %s: %w", path, err)
		}
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if strings.Contains(k, "@") {
			k = strings.ToLower(k)
		}
		out[k] = strings.TrimPrefix(v, "@")
	}
	return out, nil
}
