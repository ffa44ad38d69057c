package tools

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSelection(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tb, err := New(Config{Now: func() time.Time { return now }, Window: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in       SelectionInput
		from, to time.Time
		filters  int
		bad      bool
	}{
		{in: SelectionInput{}, from: now.Add(-2 * time.Hour), to: now},
		{in: SelectionInput{From: "30m"}, from: now.Add(-30 * time.Minute), to: now},
		{in: SelectionInput{From: "-3h", To: "1h"}, from: now.Add(-3 * time.Hour), to: now.Add(-time.Hour)},
		{in: SelectionInput{From: "2026-01-01T10:00:00Z", To: "2026-01-01T11:00:00Z", Filters: []string{"version=v2", "host=a"}},
			from: now.Add(-2 * time.Hour), to: now.Add(-time.Hour), filters: 2},
		{in: SelectionInput{From: "yesterday"}, bad: true},
		{in: SelectionInput{From: "1h", To: "2h"}, bad: true},
		{in: SelectionInput{Filters: []string{"novalue"}}, bad: true},
	} {
		sel, err := tb.Selection(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%+v: no error", tc.in)
			}
			continue
		}
		if err != nil || !sel.From.Equal(tc.from) || !sel.To.Equal(tc.to) || len(sel.Filters) != tc.filters {
			t.Errorf("%+v: %+v %v", tc.in, sel, err)
		}
	}
}

func TestCodeSearch(t *testing.T) {
	tb, err := New(Config{Repo: "../testdata/hotmod"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loc, err := tb.FindFunction(ctx, CodeInput{Function: "example.com/hotmod.Squares"})
	if err != nil || len(loc.Locations) != 1 || loc.Locations[0].File != "hot.go" || loc.Locations[0].Text != "func Squares(n int) []int {" {
		t.Fatalf("find: %+v %v", loc, err)
	}
	cl, err := tb.Callers(ctx, CodeInput{Function: "example.com/hotmod.Squares"})
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]bool{}
	for _, l := range cl.Locations {
		callers[l.Function] = true
	}
	if !callers["example.com/hotmod.TestSquares"] || !callers["example.com/hotmod.BenchmarkHot"] {
		t.Errorf("callers %+v", cl.Locations)
	}
	noRepo, _ := New(Config{})
	if _, err := noRepo.FindFunction(ctx, CodeInput{Function: "x.F"}); !errors.Is(err, ErrNoRepo) {
		t.Errorf("no repo: %v", err)
	}
	if _, err := noRepo.History(ctx, HistoryInput{}); !errors.Is(err, ErrNoRepo) {
		t.Errorf("no repo history: %v", err)
	}
}

func TestDocs(t *testing.T) {
	tb, _ := New(Config{Docs: []Doc{{Name: "a", Kind: "offense"}, {Name: "b", Kind: "defense"}}})
	all, err := tb.Docs(context.Background(), DocsInput{})
	if err != nil || len(all.Skills) != 2 {
		t.Fatalf("%+v %v", all, err)
	}
	if _, err := tb.Docs(context.Background(), DocsInput{Name: "zz"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown skill: %v", err)
	}
}
