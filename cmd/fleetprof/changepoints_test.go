package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChangepointsCommand(t *testing.T) {
	dir := filepath.Join("testdata", "changepoints")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // exact stdout when wantCode is 0
		wantErr  string // substring of stderr otherwise
	}{
		{name: "lines", args: []string{"step.txt"}, want: `{"changepoints":[60]}`},
		{name: "json array", args: []string{"step.json"}, want: `{"changepoints":[60]}`},
		{name: "csv first numeric column", args: []string{"step.csv"}, want: `{"changepoints":[60]}`},
		{name: "csv column flag", args: []string{"--column", "2", "two_columns.csv"}, want: `{"changepoints":[60]}`},
		{name: "csv column 1 has no shift", args: []string{"two_columns.csv", "--column=1"}, want: `{"changepoints":[]}`},
		{name: "noise", args: []string{"noise.txt"}, want: `{"changepoints":[]}`},
		{name: "constant", args: []string{"constant.txt"}, want: `{"changepoints":[]}`},
		{name: "short", args: []string{"short.txt"}, want: `{"changepoints":[]}`},
		{name: "real benchmark history", args: []string{"bench_history.txt"}, want: `{"changepoints":[5,10,77,160]}`},
		{name: "big min segment drops the burst", args: []string{"--min-segment", "15", "bench_history.txt"}, want: `{"changepoints":[77,160]}`},
		{name: "strict alpha", args: []string{"--alpha", "1e-20", "bench_history.txt"}, want: `{"changepoints":[77,160]}`},
		{name: "bad line", args: []string{"bad_line.txt"}, wantCode: 1, wantErr: `line 4: "foo" is not a number`},
		{name: "bad json element", args: []string{"bad_json.json"}, wantCode: 1, wantErr: `array element 2: "x" is not a number`},
		{name: "bad json syntax", args: []string{"bad_json_syntax.json"}, wantCode: 1, wantErr: `JSON syntax error at byte 7`},
		{name: "bad csv cell", args: []string{"--column", "2", "bad_csv.csv"}, wantCode: 1, wantErr: `line 3: column 2: "oops" is not a number`},
		{name: "nan is missing", args: []string{"nan.txt"}, want: `{"changepoints":[]}`},
		{name: "missing values keep indices", args: []string{"step_missing.txt"}, want: `{"changepoints":[60]}`},
		{name: "missing csv cells keep indices", args: []string{"--column", "2", "step_missing.csv"}, want: `{"changepoints":[62]}`},
		{name: "inf", args: []string{"inf.txt"}, wantCode: 1, wantErr: `line 2: "+Inf" is not a finite number`},
		{name: "empty", args: []string{"empty.txt"}, wantCode: 1, wantErr: `empty input`},
		{name: "missing file", args: []string{"nope.txt"}, wantCode: 1, wantErr: `read input`},
		{name: "no file", args: nil, wantCode: 2, wantErr: `want exactly one FILE`},
		{name: "bad alpha", args: []string{"--alpha", "2", "step.txt"}, wantCode: 2, wantErr: `alpha 2`},
		{name: "bad flag", args: []string{"--nope", "step.txt"}, wantCode: 2, wantErr: `flag provided but not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"changepoints"}
			for _, a := range tt.args {
				if strings.HasSuffix(a, ".txt") || strings.HasSuffix(a, ".json") || strings.HasSuffix(a, ".csv") {
					a = filepath.Join(dir, a)
				}
				args = append(args, a)
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, errb.String())
			}
			if tt.wantCode == 0 {
				if got := strings.TrimSpace(out.String()); got != tt.want {
					t.Errorf("stdout = %s, want %s", got, tt.want)
				}
				return
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", errb.String(), tt.wantErr)
			}
		})
	}
}

func TestChangepointsVerbose(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"changepoints", "--verbose", filepath.Join("testdata", "changepoints", "step.txt")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		Changepoints []int `json:"changepoints"`
		Details      []struct {
			Index         int
			Before, After float64
			PValue        float64 `json:"p_value"`
		} `json:"details"`
		N int `json:"n"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Changepoints) != 1 || got.Changepoints[0] != 60 || len(got.Details) != 1 || got.N != 120 {
		t.Fatalf("got %+v", got)
	}
	d := got.Details[0]
	if d.Index != 60 || d.Before < 9.5 || d.Before > 10.5 || d.After < 13.5 || d.After > 14.5 || d.PValue > 1e-6 {
		t.Errorf("details = %+v", d)
	}
}

func TestChangepointsStdin(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "changepoints", "step.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	var out, errb bytes.Buffer
	if code := run([]string{"changepoints", "-"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := strings.TrimSpace(out.String()); got != `{"changepoints":[60]}` {
		t.Errorf("stdout = %s", got)
	}
}
