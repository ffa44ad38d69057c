package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetprof/fleetprof/aggregator"
	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

func init() {
	register("query", "query an aggregator: top, flame, diff (table, JSON, pprof, folded)", runQuery)
}

// selectionFlags are one selection's flags, with a name prefix ("", "base-", "cmp-").
type selectionFlags struct {
	service, from, to, profileType string
	filters                        stringList
}

func (s *selectionFlags) register(fs *flag.FlagSet, prefix, what string) {
	if prefix == "" {
		fs.StringVar(&s.service, "service", "", "service (default: all)")
		fs.StringVar(&s.profileType, "profile-type", "", "profile type: cpu, or an imported profile's TYPE/UNIT (alloc_space/bytes, goroutine/count, ...; default cpu)")
	}
	fs.StringVar(&s.from, prefix+"from", "", what+"start: RFC 3339, Unix seconds or now-DURATION (default: to-1h)")
	fs.StringVar(&s.to, prefix+"to", "", what+"end (default: now)")
	fs.Var(&s.filters, prefix+"filter", what+"label filter key=value; repeatable")
}

// selection resolves the flags; shared supplies defaults for a diff side.
func (s *selectionFlags) selection(prefix string, shared *selectionFlags, now time.Time) (model.Selection, error) {
	sel := model.Selection{Service: s.service, ProfileType: s.profileType}
	from, to := s.from, s.to
	var filters []string
	if shared != nil {
		sel.Service, sel.ProfileType = shared.service, shared.profileType
		from, to = pick(s.from, shared.from), pick(s.to, shared.to)
		filters = append(filters, shared.filters...)
	}
	filters = append(filters, s.filters...)
	if sel.ProfileType != "" {
		if err := samplebatch.CheckProfileType(sel.ProfileType); err != nil {
			return sel, fmt.Errorf("--profile-type: %w", err)
		}
	}
	sel.To = now
	if to != "" {
		t, err := aggregator.ParseTime(to, now)
		if err != nil {
			return sel, fmt.Errorf("--%sto: %w", prefix, err)
		}
		sel.To = t
	}
	sel.From = sel.To.Add(-aggregator.DefaultRange)
	if from != "" {
		t, err := aggregator.ParseTime(from, now)
		if err != nil {
			return sel, fmt.Errorf("--%sfrom: %w", prefix, err)
		}
		sel.From = t
	}
	if !sel.From.Before(sel.To) {
		return sel, fmt.Errorf("--%sfrom %s is not before --%sto %s", prefix, sel.From.Format(time.RFC3339), prefix, sel.To.Format(time.RFC3339))
	}
	for _, f := range filters {
		flt, err := aggregator.ParseFilter(f)
		if err != nil {
			return sel, fmt.Errorf("--%sfilter: %w", prefix, err)
		}
		sel.Filters = append(sel.Filters, flt)
	}
	return sel, nil
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func runQuery(ctx context.Context, args []string, stdout io.Writer) error {
	const queryUsage = "usage: fleetprof query top|flame|diff [flags]\n\n  top    busiest functions (self and inclusive)\n  flame  call tree (or --format pprof|folded)\n  diff   movers between a baseline and a comparison selection\n\nRun 'fleetprof query top -h' for a query's flags."
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		_, err := fmt.Fprintln(stdout, queryUsage)
		return err
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{errors.New("usage: fleetprof query top|flame|diff [flags] (fleetprof query --help says more)")}
	}
	sub, args := args[0], args[1:]
	if sub != "top" && sub != "flame" && sub != "diff" {
		return usageError{fmt.Errorf("unknown query %q: want top, flame or diff", sub)}
	}
	fs := flag.NewFlagSet("query "+sub, flag.ContinueOnError)
	addr := fs.String("http", queryclient.DefaultBaseURL, "aggregator HTTP address (default: the fleetprof up running with ./fleetprof-data, else this)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	token := fs.String("read-token", "", "aggregator read token (default $FLEETPROF_READ_TOKEN)")
	tokenFile := fs.String("read-token-file", "", "file holding the aggregator read token")
	var sel, base, cmp selectionFlags
	sel.register(fs, "", "")
	var format, out *string
	var limit, movers *int
	var minPct *float64
	switch sub {
	case "top", "flame":
		format = fs.String("format", "", "export the selection's profile instead: pprof or folded")
		out = fs.String("o", "", "write the export to this file (default stdout)")
		if sub == "top" {
			limit = fs.Int("limit", 20, "functions to show")
		} else {
			minPct = fs.Float64("min-pct", 1, "hide flame nodes under this share of the total (%)")
		}
	case "diff":
		base.register(fs, "base-", "baseline ")
		cmp.register(fs, "cmp-", "comparison ")
		movers = fs.Int("movers", 20, "functions to show, by change of inclusive share")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	client, err := queryclient.New(localHTTP(*addr, flagSet(fs, "http"), defaultDataDir), nil)
	if err != nil {
		return usageError{err}
	}
	tok, err := readToken(*token, *tokenFile)
	if err != nil {
		return usageError{err}
	}
	client.SetToken(tok)
	now := time.Now()
	if sub == "diff" {
		b, err := base.selection("base-", &sel, now)
		if err != nil {
			return usageError{err}
		}
		c, err := cmp.selection("cmp-", &sel, now)
		if err != nil {
			return usageError{err}
		}
		d, err := client.Diff(ctx, b, c, *movers)
		if err != nil {
			return withConnHint(err)
		}
		if d.BaseTotal == 0 {
			hint(emptyHint(ctx, client, "baseline", b))
		}
		if d.CmpTotal == 0 {
			hint(emptyHint(ctx, client, "comparison", c))
		}
		if *asJSON {
			return printJSON(stdout, d)
		}
		return printDiff(stdout, d)
	}
	s, err := sel.selection("", nil, now)
	if err != nil {
		return usageError{err}
	}
	if *format != "" {
		if *format != "pprof" && *format != "folded" {
			return usageError{fmt.Errorf("--format %q: want pprof or folded", *format)}
		}
		data, err := client.ProfileBytes(ctx, s, *format)
		if err != nil {
			return withConnHint(err)
		}
		if *out == "" {
			_, err = stdout.Write(data)
			return err
		}
		if err := os.WriteFile(*out, data, 0o600); err != nil { //nolint:gosec // --out is the user's own choice of file
			return fmt.Errorf("write export: %w", err)
		}
		return nil
	}
	if sub == "top" {
		if *limit < 1 {
			return usageError{fmt.Errorf("--limit %d: must be at least 1", *limit)}
		}
		t, err := client.Top(ctx, s, *limit)
		if err != nil {
			return withConnHint(err)
		}
		if t.Total == 0 {
			hint(emptyHint(ctx, client, "selection", s))
		}
		if *asJSON {
			return printJSON(stdout, t)
		}
		return printTop(stdout, t)
	}
	f, err := client.Flame(ctx, s)
	if err != nil {
		return withConnHint(err)
	}
	if f.Total == 0 {
		hint(emptyHint(ctx, client, "selection", s))
	}
	if *asJSON {
		return printJSON(stdout, f)
	}
	return printFlame(stdout, f, *minPct)
}

// hint writes a hint about an empty result to stderr (stdout stays the result).
func hint(msg string) {
	if msg != "" {
		fmt.Fprintln(os.Stderr, "fleetprof query: "+msg)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTop(w io.Writer, t *model.Top) error {
	fmt.Fprintf(w, "%d samples\n", t.Total)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SELF%\tSELF\tINCL%\tINCL\t FUNCTION")
	for _, f := range t.Functions {
		name := f.Function
		if f.File != "" {
			name += "  " + samplebatch.Location(f.File, f.Line)
		}
		fmt.Fprintf(tw, "%.2f\t%d\t%.2f\t%d\t %s\n", f.SelfPct, f.Self, f.InclusivePct, f.Inclusive, name)
	}
	return tw.Flush()
}

// printFlame prints the tree indented, children by size, hiding small nodes.
func printFlame(w io.Writer, root *model.FlameNode, minPct float64) error {
	total := root.Total
	if total == 0 {
		_, err := fmt.Fprintln(w, "0 samples")
		return err
	}
	var walk func(n *model.FlameNode, depth int)
	walk = func(n *model.FlameNode, depth int) {
		pct := float64(n.Total) / float64(total) * 100
		fmt.Fprintf(w, "%6.2f%% %8d  %s%s\n", pct, n.Total, strings.Repeat("  ", depth), n.Name)
		kids := append([]*model.FlameNode(nil), n.Children...)
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].Total > kids[j].Total })
		for _, c := range kids {
			if float64(c.Total)/float64(total)*100 >= minPct {
				walk(c, depth+1)
			}
		}
	}
	walk(root, 0)
	return nil
}

func printDiff(w io.Writer, d *model.Diff) error {
	fmt.Fprintf(w, "baseline %d samples, comparison %d samples\n", d.BaseTotal, d.CmpTotal)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "BASE INCL%\tCMP INCL%\tDELTA\tBASE SELF%\tCMP SELF%\t FUNCTION")
	for _, m := range d.Movers {
		fmt.Fprintf(tw, "%.2f\t%.2f\t%+.2f\t%.2f\t%.2f\t %s\n", m.BaseInclusivePct, m.CmpInclusivePct, m.DeltaInclusivePct,
			m.BaseSelfPct, m.CmpSelfPct, m.Function)
	}
	return tw.Flush()
}

// readToken picks the read token: the flag, else the file, else $FLEETPROF_READ_TOKEN.
func readToken(flagValue, file string) (string, error) {
	switch {
	case flagValue != "":
		return flagValue, nil
	case file != "":
		b, err := os.ReadFile(file) //nolint:gosec // the user names the file to read
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("FLEETPROF_READ_TOKEN"), nil
}
