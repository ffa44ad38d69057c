package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/fleetprof/fleetprof/analyzer/changepoint"
)

func init() {
	register("changepoints", "detect mean shifts in a univariate series", runChangepoints)
}

// changepointsOutput is the JSON printed on stdout. Changepoints is always present
// (an empty array when there are none); Details only with --verbose.
type changepointsOutput struct {
	Changepoints []int                     `json:"changepoints"`
	Details      []changepoint.ChangePoint `json:"details,omitempty"`
	N            int                       `json:"n,omitempty"`
	Noise        *changepoint.Noise        `json:"noise,omitempty"`
}

func runChangepoints(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("changepoints", flag.ContinueOnError)
	def := changepoint.DefaultConfig()
	alpha := fs.Float64("alpha", def.Alpha, "significance level of each split test (false-positive rate per series)")
	minSeg := fs.Int("min-segment", def.MinSegment, "shortest segment a change point may create")
	trend := fs.Bool("trend", def.Trend, "fit each segment as a level or a line, so a steady trend is one segment (slower: O(n²))")
	outlierSDs := fs.Float64("outlier-sds", def.OutlierSDs, "clip values beyond this many robust σ from the running median before the mean-shift search (0: off)")
	column := fs.Int("column", 0, "CSV column to read, 1-based (default: the first numeric column)")
	verbose := fs.Bool("verbose", false, `add segment means, p-values ("details") and the noise estimate ("noise")`)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fleetprof changepoints [flags] FILE|-")
		fmt.Fprintln(fs.Output(), "\nFILE holds numbers one per line, CSV (a header line is skipped), or a JSON array.")
		fmt.Fprintln(fs.Output(), "Missing values (nan, NA, null, an empty field or a blank line between values) are skipped; indices count them.")
		fmt.Fprintln(fs.Output(), `Prints {"changepoints":[i,...]} where i is the first index of each new segment.`)
		fs.PrintDefaults()
	}
	// Accept flags after the file name too (flag stops at the first positional).
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("want exactly one FILE (or - for stdin), got %d", len(pos))}
	}
	cfg := changepoint.Config{Alpha: *alpha, MinSegment: *minSeg, Trend: *trend, OutlierSDs: *outlierSDs}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if *column < 0 {
		return usageError{fmt.Errorf("column %d: want >= 1", *column)}
	}

	var data []byte
	var err error
	if pos[0] == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	xs, err := parseSeries(data, *column)
	if err != nil {
		return fmt.Errorf("parse %s: %w", pos[0], err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cps, noise, err := changepoint.DetectNoise(xs, cfg)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	out := changepointsOutput{Changepoints: []int{}}
	for _, c := range cps {
		out.Changepoints = append(out.Changepoints, c.Index)
	}
	if *verbose {
		out.Details = cps
		out.N = len(xs)
		out.Noise = &noise
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// parseSeries reads a JSON array of numbers, CSV, or one number per line. column is the
// 1-based CSV column (0 = first numeric column).
func parseSeries(data []byte, column int) ([]float64, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("empty input")
	}
	if trimmed[0] == '[' {
		if column > 0 {
			return nil, errors.New("--column applies to CSV input, not a JSON array")
		}
		return parseJSONSeries(trimmed)
	}
	return parseLines(data, column)
}

func parseJSONSeries(data []byte) ([]float64, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("JSON syntax error at byte %d: %w", se.Offset, err)
		}
		return nil, fmt.Errorf("JSON: want an array of numbers: %w", err)
	}
	xs := make([]float64, len(raw))
	for i, r := range raw {
		if bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			xs[i] = math.NaN() // missing
			continue
		}
		var v float64
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("array element %d: %s is not a number", i, truncate(string(r)))
		}
		xs[i] = v
	}
	return xs, nil
}

func parseLines(data []byte, column int) ([]float64, error) {
	lines := strings.Split(string(data), "\n")
	isCSV := column > 0
	for _, l := range lines {
		if strings.ContainsAny(l, ",;\t") {
			isCSV = true
			break
		}
	}
	var xs []float64
	col := column - 1 // resolved 0-based column; -1 until the first data row picks it
	if !isCSV {
		col = 0
	}
	first := true
	blanks := 0 // blank lines since the last value: missing values if more data follows
	for i, line := range lines {
		lineNo := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line == "" {
			if len(xs) > 0 {
				blanks++
			}
			continue
		}
		for ; blanks > 0; blanks-- {
			xs = append(xs, math.NaN())
		}
		fields := []string{line}
		if isCSV {
			r := csv.NewReader(strings.NewReader(line))
			r.Comma = detectComma(line)
			r.TrimLeadingSpace = true
			rec, err := r.Read()
			if err != nil {
				return nil, fmt.Errorf("line %d: bad CSV: %w", lineNo, err)
			}
			fields = rec
		}
		if col < 0 {
			for j, f := range fields {
				if v, err := parseNumber(f); err == nil && !math.IsNaN(v) {
					col = j
					break
				}
			}
			if col < 0 {
				if first {
					first = false
					continue // a header line
				}
				return nil, fmt.Errorf("line %d: no numeric column in %q", lineNo, truncate(line))
			}
		}
		if col >= len(fields) {
			return nil, fmt.Errorf("line %d: has %d columns, want column %d", lineNo, len(fields), col+1)
		}
		v, err := parseNumber(fields[col])
		if err != nil {
			if first {
				first = false
				continue // a header line
			}
			if isCSV {
				return nil, fmt.Errorf("line %d: column %d: %w", lineNo, col+1, err)
			}
			return nil, fmt.Errorf("line %d: %w", lineNo, err)
		}
		first = false
		xs = append(xs, v)
	}
	if len(xs) == 0 {
		return nil, errors.New("no numbers found")
	}
	return xs, nil
}

// detectComma picks the CSV separator of a line: comma, else semicolon, else tab.
func detectComma(line string) rune {
	for _, c := range []rune{',', ';', '\t'} {
		if strings.ContainsRune(line, c) {
			return c
		}
	}
	return ','
}

// parseNumber parses one value; NaN (also NA, N/A, null and an empty field) is a
// missing value, returned as NaN, which changepoint skips keeping indices.
func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "na", "n/a", "null":
		return math.NaN(), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", truncate(s))
	}
	if math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return v, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
