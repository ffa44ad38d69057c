package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/storage"
	"github.com/fleetprof/fleetprof/analyzer/defense"
	"github.com/fleetprof/fleetprof/analyzer/detect"
	"github.com/fleetprof/fleetprof/analyzer/findings"
	"github.com/fleetprof/fleetprof/analyzer/offense"
	"github.com/fleetprof/fleetprof/analyzer/opportunity"
	"github.com/fleetprof/fleetprof/analyzer/rootcause"
	"github.com/fleetprof/fleetprof/model"
)

func init() {
	register("analyze", "run regression detection and opportunity ranking once over the store and print findings", runAnalyze)
}

// kvFlag collects repeated KEY=VALUE flags.
type kvFlag map[string]string

func (m kvFlag) String() string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("%q: want SERVICE=VALUE", s)
	}
	m[k] = v
	return nil
}

// listFlag collects repeated values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// analyzeOptions is the parsed command line.
type analyzeOptions struct {
	storage string
	chdbLib string
	// aggregator, when set, analyzes through that server (POST /api/v1/analyze);
	// dataDir finds a running local up and its token.
	aggregator, dataDir string
	token, tokenFile    string
	// remote is the request sent to an aggregator; set lists the flags given.
	remote model.AnalyzeRequest
	set    map[string]bool
	json   bool
	// kind is what to run: regression, opportunity or all.
	kind string
	// limit bounds the findings printed per kind (0 = all).
	limit   int
	cfg     defense.Config
	offense offense.Config
}

// defaultAnalyzeLimit is how many findings of each kind analyze prints by default:
// a screenful, largest first.
const defaultAnalyzeLimit = 20

// Analysis kinds (--kind).
const (
	kindRegression  = "regression"
	kindOpportunity = "opportunity"
	kindAll         = "all"
)

func (o *analyzeOptions) runs(kind string) bool { return o.kind == kindAll || o.kind == kind }

func parseAnalyzeFlags(args []string) (*analyzeOptions, error) {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	o := &analyzeOptions{cfg: defense.DefaultConfig(), offense: offense.DefaultConfig()}
	repos, vmaps := kvFlag{}, kvFlag{}
	var services listFlag
	var now string
	var dryRun bool
	fs.StringVar(&o.storage, "storage", "", "analyze this store directly (offline): embedded:DIR (in-process chDB) or clickhouse://HOST:PORT/DB")
	fs.StringVar(&o.aggregator, "aggregator", "", "analyze through this aggregator (POST /api/v1/analyze), e.g. http://127.0.0.1:7070 (default: the fleetprof up running with --data, else the store in --data)")
	fs.StringVar(&o.dataDir, "data", defaultDataDir, "data directory of fleetprof up: its running instance, or its store when none runs")
	fs.StringVar(&o.token, "token", "", "bearer token for --aggregator (default: the local up's token file)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token for --aggregator")
	fs.StringVar(&o.chdbLib, "chdb-lib", "", "explicit libchdb.so path for embedded storage")
	fs.Var(&services, "service", "service to analyze (repeatable; default: every service with samples)")
	fs.DurationVar(&o.cfg.Window, "window", o.cfg.Window, "analysis window: changes starting in it are reported")
	fs.DurationVar(&o.cfg.History, "history", o.cfg.History, "history read before the window (baseline; 48h, two daily periods, enables the seasonality filter)")
	fs.DurationVar(&o.cfg.Step, "step", o.cfg.Step, "detector time bucket")
	fs.Float64Var(&o.cfg.MinShare, "min-share", o.cfg.MinShare, "skip functions below this inclusive share (0..1)")
	fs.StringVar(&o.kind, "kind", kindAll, "what to run: regression (defense), opportunity (offense) or all")
	fs.DurationVar(&o.offense.Window, "opportunity-window", o.offense.Window, "data ranked for opportunities: the last this long")
	fs.Float64Var(&o.offense.Opportunity.MinShare, "opportunity-min-share", 0, "drop opportunities below this share of the service (0..1; default 0.001)")
	o.offense.Opportunity = o.offense.Opportunity.WithEvidence()
	fs.Int64Var(&o.offense.Opportunity.MinSamples, "opportunity-min-samples", o.offense.Opportunity.MinSamples, "evidence an opportunity needs: at least this many samples (0 = none)")
	fs.Float64Var(&o.offense.Opportunity.MinSavingCores, "opportunity-min-saving-cores", o.offense.Opportunity.MinSavingCores, "report only opportunities saving at least this many cores (0 = none)")
	fs.Float64Var(&o.offense.Opportunity.MaxIntervalRatio, "opportunity-max-interval", o.offense.Opportunity.MaxIntervalRatio, "report only opportunities whose share's 95% interval is at most this multiple of the share (0 = any)")
	fs.Float64Var(&o.offense.Opportunity.CostPerCoreYear, "cost-per-core-year", 0, "money one core costs for a year (default 250)")
	fs.Float64Var(&o.offense.Opportunity.WattsPerCore, "watts-per-core", 0, "watts one busy core draws (default 6)")
	fs.Var(repos, "repo", "SERVICE=PATH: git repository for root cause (repeatable)")
	fs.Var(vmaps, "version-map", "SERVICE=FILE: version → commit map (JSON object or \"VERSION COMMIT\" lines; default: versions are git refs)")
	fs.StringVar(&now, "now", "", "analyze as of this time (RFC 3339; default: now)")
	fs.BoolVar(&o.json, "json", false, "print findings as JSON (schema fleetprof.findings/v1)")
	fs.BoolVar(&dryRun, "dry-run", false, "do not store the findings")
	fs.IntVar(&o.limit, "limit", defaultAnalyzeLimit, "print at most this many findings of each kind (0 = all; all are stored)")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.aggregator != "" && o.storage != "" {
		return nil, usageError{errors.New("give either --aggregator or --storage, not both")}
	}
	o.remote = model.AnalyzeRequest{Kind: o.kind, Services: services, DryRun: dryRun}
	if o.set["window"] {
		o.remote.Window = o.cfg.Window.String()
	}
	if o.set["history"] {
		o.remote.History = o.cfg.History.String()
	}
	if o.set["step"] {
		o.remote.Step = o.cfg.Step.String()
	}
	if o.set["opportunity-window"] {
		o.remote.OpportunityWindow = o.offense.Window.String()
	}
	if o.limit < 0 {
		return nil, usageError{fmt.Errorf("--limit %d: want >= 0", o.limit)}
	}
	switch o.kind {
	case kindRegression, kindOpportunity, kindAll:
	default:
		return nil, usageError{fmt.Errorf("--kind %q: want regression, opportunity or all", o.kind)}
	}
	o.cfg.Services = services
	o.cfg.Store = !dryRun
	o.offense.Services = services
	o.offense.Store = !dryRun
	if len(repos) > 0 {
		o.cfg.Repos = repos
	}
	for svc, path := range vmaps {
		m, err := rootcause.LoadVersionMap(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("version map for %s: %w", svc, err)}
		}
		if o.cfg.VersionMaps == nil {
			o.cfg.VersionMaps = map[string]map[string]string{}
		}
		o.cfg.VersionMaps[svc] = m
	}
	if now != "" {
		t, err := time.Parse(time.RFC3339, now)
		if err != nil {
			return nil, usageError{fmt.Errorf("--now: %w", err)}
		}
		o.cfg.Now = func() time.Time { return t }
		o.offense.Now = o.cfg.Now
		o.remote.Now = t
	}
	if err := o.cfg.Validate(); err != nil {
		return nil, usageError{err}
	}
	if err := o.offense.Validate(); err != nil {
		return nil, usageError{fmt.Errorf("opportunities: %w", err)}
	}
	if o.storage != "" {
		if err := (storage.Config{URI: o.storage}).Validate(); err != nil {
			return nil, usageError{err}
		}
	}
	return o, nil
}

// localOnlyFlags are analyze flags an aggregator does not take per request (its own
// configuration applies).
var localOnlyFlags = []string{"min-share", "opportunity-min-samples", "opportunity-min-saving-cores", "opportunity-min-share", "cost-per-core-year", "watts-per-core", "repo", "version-map", "chdb-lib"}

func runAnalyze(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseAnalyzeFlags(args)
	if err != nil {
		return err
	}
	uri := o.storage
	if uri == "" && o.aggregator == "" {
		if st := runningUp(o.dataDir); st != nil {
			o.aggregator = "http://" + st.HTTP
			fmt.Fprintf(os.Stderr, "fleetprof analyze: analyzing through the fleetprof up running on %s (PID %d)\n", o.aggregator, st.PID)
		} else {
			if _, err := os.Stat(filepath.Join(o.dataDir, "clickhouse")); err != nil {
				return fmt.Errorf("no fleetprof up is running with data dir %s and it holds no store: start one (make up, or fleetprof up), or give --aggregator URL or --storage URI", o.dataDir)
			}
			uri = embeddedURI(o.dataDir)
		}
	}
	if o.aggregator != "" {
		for _, f := range localOnlyFlags {
			if o.set[f] {
				return usageError{fmt.Errorf("--%s is not taken by an aggregator (its own configuration applies); use --storage to analyze offline with it", f)}
			}
		}
		return analyzeRemote(ctx, o, stdout)
	}
	store, err := openStore(ctx, storage.Config{URI: uri, ChdbLib: o.chdbLib})
	if err != nil {
		return err
	}
	defer store.Close()
	return analyzeOnce(ctx, store, o, stdout, slog.New(slog.NewTextHandler(os.Stderr, nil)))
}

// analyzeOnce runs one analysis of each selected kind over st and prints the findings:
// a table per kind, or one findings document with --json.
func analyzeOnce(ctx context.Context, st defense.Store, o *analyzeOptions, stdout io.Writer, log *slog.Logger) error {
	var all []findings.Finding
	var generated time.Time
	var def *defense.Report
	if o.runs(kindRegression) {
		rep, err := defense.Analyze(ctx, st, o.cfg)
		if err != nil {
			return err
		}
		for _, e := range rep.Errors {
			log.Warn("root cause failed", "err", e)
		}
		def, generated = rep, rep.To
		all = append(all, rep.Findings...)
	}
	var off *offense.Report
	if o.runs(kindOpportunity) {
		rep, err := offense.Analyze(ctx, st, o.offense)
		if err != nil {
			return err
		}
		off = rep
		if generated.IsZero() {
			generated = rep.To
		}
		all = append(all, rep.Findings...)
	}
	if o.json {
		return findings.Encode(stdout, generated, all)
	}
	return printReports(stdout, def, off, o)
}

// printReports prints the regression and opportunity tables (those run), each cut
// to o.limit rows with a line saying how many were left out.
func printReports(w io.Writer, def *defense.Report, off *offense.Report, o *analyzeOptions) error {
	if def != nil {
		d := *def
		var more int
		d.Findings, more = limitFindings(d.Findings, o.limit)
		if err := printFindings(w, &d); err != nil {
			return err
		}
		printMore(w, more, "regressions")
	}
	if off != nil {
		if def != nil {
			fmt.Fprintln(w)
		}
		p := *off
		var more int
		p.Findings, more = limitFindings(p.Findings, o.limit)
		if err := printOpportunities(w, &p, o.offense.Opportunity); err != nil {
			return err
		}
		printMore(w, more, "opportunities")
	}
	return nil
}

func limitFindings(fs []findings.Finding, limit int) ([]findings.Finding, int) {
	if limit == 0 || len(fs) <= limit {
		return fs, 0
	}
	return fs[:limit], len(fs) - limit
}

func printMore(w io.Writer, more int, what string) {
	if more > 0 {
		fmt.Fprintf(w, "… and %d more %s (--limit 0 prints all, --json gives them as a document)\n", more, what)
	}
}

// printOpportunities writes the opportunities as a table, largest saving first.
// The yearly saving uses the configured cost of a core.
func printOpportunities(w io.Writer, rep *offense.Report, cfg opportunity.Config) error {
	cfg = cfg.WithDefaults()
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "no opportunities in %s … %s (%d services)\n", rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), rep.Services)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tFUNCTION\tPATTERN\tSHARE\tSAVING\tCORES SAVED\tPER YEAR\tCONFIDENCE")
	for _, f := range rep.Findings {
		op := f.Opportunity
		if op == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f%%\t%.3f%%\t%.4f\t%.0f %s\t%.0f%%\n", f.Service, f.Function, op.Pattern,
			100*f.Before.Value, 100*op.EstimatedSavingShare, op.EstimatedSavingCores,
			op.EstimatedSavingCores*cfg.CostPerCoreYear, cfg.Currency, 100*op.Confidence)
	}
	return tw.Flush()
}

// newFunctionShare: a function whose share before the change was below this is
// reported as new, not as a percentage over almost nothing.
const newFunctionShare = 1e-6

// printFindings writes the step regressions as a table, one line per finding plus
// its top root cause, then the gradual ones (ramps) as another, each with a line
// explaining the columns.
func printFindings(w io.Writer, rep *defense.Report) error {
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "no regressions in %s … %s (%d series)\n", rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), rep.Series)
		return err
	}
	var steps, ramps []findings.Finding
	for _, f := range rep.Findings {
		if f.Gradual != nil {
			ramps = append(ramps, f)
		} else {
			steps = append(steps, f)
		}
	}
	if len(steps) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tFUNCTION\tCHANGED AT (UTC)\tCPU SHARE BEFORE → AFTER\tCHANGE\tEXTRA CORES\tVERSIONS\tLIKELY CAUSE")
		for _, f := range steps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%+.3f\t%s\t%s\n", f.Service, f.Function,
				f.ChangeTime.UTC().Format("2006-01-02 15:04"), shareLabel(&f),
				changeLabel(&f), f.EstimatedCores, versionsLabel(f.VersionBefore, f.VersionAfter), likelyCause(&f))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(w, "CPU share: the function's share of its service's CPU samples (inclusive; self: its own code, the inclusive share beside it); extra cores: what the change costs the fleet; likely cause: the pull request root cause ranks first (with --repo)."); err != nil {
			return err
		}
	}
	if len(ramps) == 0 {
		return nil
	}
	if len(steps) > 0 {
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tFUNCTION\tRAMP (UTC)\tCPU SHARE START → END\tCHANGE\tPER DAY\tEXTRA CORES\tRELEASES\tLIKELY CAUSE")
	for _, f := range ramps {
		g := f.Gradual
		rel := strings.Join(g.Releases, ", ")
		if rel == "" {
			rel = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s … %s\t%.3f%% → %.3f%%\t%s\t%+.4f%%\t%+.3f\t%s\t%s\n", f.Service, f.Function,
			g.Start.UTC().Format("2006-01-02 15:04"), g.End.UTC().Format("01-02 15:04"), 100*f.Before.Value, 100*f.After.Value,
			changeLabel(&f), 100*24*g.SlopePerHour, f.EstimatedCores, rel, likelyCause(&f))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "Gradual: the function's inclusive CPU share rose along a line over the ramp; per day: the rise in share points per day; releases: the versions deployed during the ramp, which root cause ranks.")
	return err
}

// shareLabel is "before → after" of the finding's share, marked self (with the
// inclusive shares when known) on a self-share finding.
func shareLabel(f *findings.Finding) string {
	l := fmt.Sprintf("%.3f%% → %.3f%%", 100*f.Before.Value, 100*f.After.Value)
	if !slices.Contains(f.FiltersPassed, detect.FilterSelfShare) {
		return l
	}
	l += " self"
	if f.InclusiveBefore != nil && f.InclusiveAfter != nil {
		l += fmt.Sprintf(" (inclusive %.3f%% → %.3f%%)", 100*f.InclusiveBefore.Value, 100*f.InclusiveAfter.Value)
	}
	return l
}

// changeLabel is the relative change, or "new" for a function that had no share.
func changeLabel(f *findings.Finding) string {
	if f.Before.Value < newFunctionShare {
		return "new"
	}
	return fmt.Sprintf("%+.1f%%", 100*f.RelativeChange)
}

// likelyCause is the top root cause as "#PR title (confidence)", "-" without one.
func likelyCause(f *findings.Finding) string {
	if len(f.RootCauses) == 0 {
		return "-"
	}
	c := f.RootCauses[0]
	if c.PR == 0 {
		return fmt.Sprintf("%.10s %s (%.0f%%)", c.Commit, c.Title, 100*c.Confidence)
	}
	return fmt.Sprintf("#%d %s (%.0f%%)", c.PR, c.Title, 100*c.Confidence)
}

// versionsLabel says which release the change came with: "v1 → v2", "in v2" when
// it happened within one version, "-" when versions are unknown.
func versionsLabel(before, after string) string {
	known := func(v string) bool { return v != "" && v != "?" }
	switch {
	case known(before) && known(after) && before != after:
		return before + " → " + after
	case known(after):
		return "in " + after
	case known(before):
		return "in " + before
	}
	return "-"
}
