package skills

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/analyzer/tools"
)

// Environment variables configuring the LLM skill (off when FLEETPROF_LLM_URL is empty).
const (
	EnvLLMURL   = "FLEETPROF_LLM_URL"   // base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1
	EnvLLMModel = "FLEETPROF_LLM_MODEL" // model name
	EnvLLMKey   = "FLEETPROF_LLM_API_KEY"
)

// LLM completes a prompt. It is the boundary to a language model.
type LLM interface {
	Complete(ctx context.Context, system, prompt string) (string, error)
}

// LLMFromEnv returns the configured LLM, or nil when FLEETPROF_LLM_URL is unset.
func LLMFromEnv() LLM {
	u := os.Getenv(EnvLLMURL)
	if u == "" {
		return nil
	}
	return &ChatClient{URL: u, Model: os.Getenv(EnvLLMModel), Key: os.Getenv(EnvLLMKey)}
}

// ChatClient calls an OpenAI-compatible /chat/completions endpoint.
type ChatClient struct {
	URL, Model, Key string
	HTTP            *http.Client
}

// Complete implements LLM.
func (c *ChatClient) Complete(ctx context.Context, system, prompt string) (string, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	body, err := json.Marshal(map[string]any{
		"model": c.Model,
		"messages": []map[string]string{
			{"role": "system", "content": system},
			{"role": "user", "content": prompt},
		},
		"temperature": 0,
	})
	if err != nil {
		return "", fmt.Errorf("llm request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("llm request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("llm request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("llm response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("llm response: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("llm response: %w", err)
	}
	if len(out.Choices) == 0 || out.Choices[0].Message.Content == "" {
		return "", errors.New("llm response: no choices")
	}
	return out.Choices[0].Message.Content, nil
}

// LLMAdvice asks a language model for a fix suggestion (text only, never a patch:
// unverified code is not proposed).
type LLMAdvice struct{ LLM LLM }

// Doc implements Skill.
func (LLMAdvice) Doc() tools.Doc {
	return tools.Doc{Name: "llm-advice", Kind: "offense",
		Summary: "optional: ask a language model for fix advice (text only); on when " + EnvLLMURL + " is set",
		Text: "Sends the finding, its evidence and the function's source location to an OpenAI-compatible API (" +
			EnvLLMURL + ", " + EnvLLMModel + ", " + EnvLLMKey + ") and returns its advice as a PR comment. Never produces a patch.\n"}
}

// Applies implements Skill.
func (l LLMAdvice) Applies(*Context) bool { return l.LLM != nil }

// Resolve implements Skill.
func (l LLMAdvice) Resolve(ctx context.Context, c *Context) (*Resolution, error) {
	if l.LLM == nil {
		return nil, ErrNoResolution
	}
	f, err := json.MarshalIndent(c.Finding, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("llm advice: %w", err)
	}
	var p strings.Builder
	fmt.Fprintf(&p, "Finding (fleetprof.findings/v1):\n%s\n", f)
	for _, loc := range c.Locations {
		fmt.Fprintf(&p, "Defined at %s:%d: %s\n", loc.File, loc.Line, loc.Text)
	}
	ans, err := l.LLM.Complete(ctx, "You are a performance engineer. Suggest a concrete, minimal code change that removes the CPU cost described. Answer in Markdown.", p.String())
	if err != nil {
		return nil, fmt.Errorf("llm advice: %w", err)
	}
	return &Resolution{Skill: "llm-advice", Kind: "offense",
		Title: fmt.Sprintf("Suggestion for %s in %s", shortName(c.Finding.Function), c.Finding.Service),
		Body:  "## Suggestion (language model, unverified)\n\n" + strings.TrimSpace(ans) + "\n"}, nil
}
