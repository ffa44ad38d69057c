package skills

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetprof/fleetprof/analyzer/findings"
)

func TestRegistry(t *testing.T) {
	t.Setenv(EnvLLMURL, "")
	r := Default()
	names := []string{}
	for _, s := range r.All() {
		names = append(names, s.Doc().Name)
		if d := s.Doc(); d.Summary == "" || d.Text == "" || (d.Kind != "offense" && d.Kind != "defense") {
			t.Errorf("skill %s: incomplete doc %+v", d.Name, d)
		}
	}
	if strings.Join(names, ",") != "go-source-fix,regression-mitigation" {
		t.Errorf("skills %v", names)
	}
	t.Setenv(EnvLLMURL, "http://127.0.0.1:1/v1")
	if _, ok := Default().Get("llm-advice"); !ok {
		t.Error("llm-advice not registered with " + EnvLLMURL + " set")
	}
}

func TestDefenseNeedsRootCause(t *testing.T) {
	c := &Context{Finding: findings.Finding{Kind: findings.KindRegression, Function: "f"}}
	if (Defense{}).Applies(c) {
		t.Error("applies without root causes")
	}
	if _, err := (Defense{}).Resolve(context.Background(), c); !errors.Is(err, ErrNoResolution) {
		t.Errorf("err %v", err)
	}
}

func TestOffenseNoTransform(t *testing.T) {
	dir := writeModule(t, "package m\n\nfunc F() int { return 1 }\n")
	c := &Context{ModuleDir: dir, Finding: findings.Finding{Kind: findings.KindOpportunity, Function: "example.com/m.F",
		Opportunity: &findings.Opportunity{Pattern: "go-regexp-compile-hot"}}}
	if _, err := (Offense{}).Resolve(context.Background(), c); err == nil || !strings.Contains(err.Error(), "no transform matched") {
		t.Errorf("err %v", err)
	}
}

func TestLLMAdvice(t *testing.T) {
	var got struct {
		Model    string `json:"model"`
		Messages []struct{ Role, Content string }
	}
	var auth string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"content": "Hoist the regexp."}}}})
	}))
	defer ts.Close()
	t.Setenv(EnvLLMURL, ts.URL+"/v1")
	t.Setenv(EnvLLMModel, "tiny")
	t.Setenv(EnvLLMKey, "k")
	s, ok := Default().Get("llm-advice")
	if !ok {
		t.Fatal("llm-advice not registered")
	}
	c := &Context{Finding: findings.Finding{Kind: findings.KindOpportunity, Service: "s", Function: "example.com/m.F"}}
	res, err := s.Resolve(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Body, "Hoist the regexp.") || len(res.Edits) != 0 {
		t.Errorf("resolution %+v", res)
	}
	if got.Model != "tiny" || len(got.Messages) != 2 || !strings.Contains(got.Messages[1].Content, "example.com/m.F") || auth != "Bearer k" {
		t.Errorf("request %+v auth %q", got, auth)
	}
	// LLM advice ranks after deterministic skills.
	order := Default().For(c)
	if len(order) == 0 || order[len(order)-1].Doc().Name != "llm-advice" {
		t.Errorf("order %v", order)
	}
}
