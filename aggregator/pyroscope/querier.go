package pyroscope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/fleetprof/fleetprof/aggregator/pprofconv"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
	googlev1 "github.com/grafana/pyroscope/api/gen/proto/go/google/v1"
	querierv1 "github.com/grafana/pyroscope/api/gen/proto/go/querier/v1"
	"github.com/grafana/pyroscope/api/gen/proto/go/querier/v1/querierv1connect"
	typesv1 "github.com/grafana/pyroscope/api/gen/proto/go/types/v1"
	"google.golang.org/protobuf/proto"
)

// Store is what the querier reads: a part of the aggregator's store.
type Store interface {
	LabelKeys(ctx context.Context, sel model.Selection) ([]string, error)
	LabelValues(ctx context.Context, sel model.Selection, key string) ([]string, error)
	Profile(ctx context.Context, sel model.Selection) (*model.Profile, error)
	FunctionSeries(ctx context.Context, sel model.Selection, function string, step time.Duration) ([]model.SeriesPoint, error)
}

// Query limits.
const (
	// DefaultRange is the range of a request without start and end.
	DefaultRange = time.Hour
	// MaxMatcherValues bounds the stored values a =~, != or !~ matcher may resolve to.
	MaxMatcherValues = 1000
	// DefaultStep is SelectSeries' step when the request has none.
	DefaultStep = time.Minute
	// MaxSeriesPoints bounds the points of one SelectSeries series, as /api/v1/series does.
	MaxSeriesPoints = 10_000
	// MaxGroups bounds the series of one SelectSeries group_by.
	MaxGroups = 100
)

// Querier serves querier.v1.QuerierService over a Store.
type Querier struct {
	st  Store
	now func() time.Time
}

// NewQuerier returns the query API over st; now is the clock for requests
// without a range (nil: time.Now).
func NewQuerier(st Store, now func() time.Time) *Querier {
	if now == nil {
		now = time.Now
	}
	return &Querier{st: st, now: now}
}

// Handler returns the path and handler of the service (Connect, gRPC and
// gRPC-Web; binary and JSON).
func (q *Querier) Handler() (string, http.Handler) {
	return querierv1connect.NewQuerierServiceHandler(querierService{q: q})
}

type querierService struct {
	querierv1connect.UnimplementedQuerierServiceHandler
	q *Querier
}

func invalid(err error) error { return connect.NewError(connect.CodeInvalidArgument, err) }

func storeErr(err error) error {
	return connect.NewError(connect.CodeInternal, fmt.Errorf("storage: %w", err))
}

// timeRange reads a request's [start, end) in milliseconds; zero means the last DefaultRange.
func (q *Querier) timeRange(startMS, endMS int64) (time.Time, time.Time, error) {
	to := q.now()
	if endMS > 0 {
		to = time.UnixMilli(endMS)
	}
	from := to.Add(-DefaultRange)
	if startMS > 0 {
		from = time.UnixMilli(startMS)
	}
	if !from.Before(to) {
		return from, to, invalid(fmt.Errorf("start %d is not before end %d", startMS, endMS))
	}
	return from, to, nil
}

// storeKey and apiName map between Pyroscope's and fleetprof's label names.
func storeKey(name string) string {
	if name == labelServiceName {
		return "service"
	}
	return name
}

func apiName(key string) string {
	if key == "service" {
		return labelServiceName
	}
	return key
}

// errEmpty marks a selector that no stored data can satisfy.
var errEmpty = errors.New("selector selects nothing")

// labelProfileType is the label Grafana names a query's profile type with.
const labelProfileType = "__profile_type__"

// selection turns a selector into a fleetprof selection (see the package doc)
// of profile type typ; nil means the selector's __profile_type__ if it has an
// equality on one, else CPU.
func (q *Querier) selection(ctx context.Context, typ *profileType, selector string, startMS, endMS int64) (model.Selection, error) {
	from, to, err := q.timeRange(startMS, endMS)
	if err != nil {
		return model.Selection{}, err
	}
	sel := model.Selection{From: from, To: to}
	ms, err := ParseSelector(selector)
	if err != nil {
		return sel, invalid(err)
	}
	if typ == nil {
		typ = &profileType{stored: samplebatch.ProfileCPU, name: cpuProfileName}
		for _, m := range ms {
			if m.Name == labelProfileType && m.Op == "=" {
				t, err := parseProfileType(m.Value)
				if err != nil {
					return sel, err
				}
				typ = &t
			}
		}
	}
	if typ.stored != samplebatch.ProfileCPU {
		sel.ProfileType = typ.stored
	}
	byKey := map[string][]Matcher{}
	var keys []string
	for _, m := range ms {
		if m.Name == labelName {
			if !m.Matches(typ.name) {
				return sel, errEmpty
			}
			continue
		}
		if strings.HasPrefix(m.Name, "__") {
			continue // Pyroscope's internal labels (__profile_type__ ...): the type is chosen apart
		}
		k := storeKey(m.Name)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], m)
	}
	// Equalities first: they narrow what the other matchers are resolved against.
	var rest []string
	for _, k := range keys {
		eq := byKey[k][0]
		if eq.Op != "=" || slices.ContainsFunc(byKey[k], func(m Matcher) bool { return m.Op != "=" }) {
			rest = append(rest, k)
			continue
		}
		for _, m := range byKey[k] {
			if m.Value != eq.Value {
				return sel, errEmpty
			}
		}
		sel.Filters = append(sel.Filters, model.Filter{Key: k, Value: eq.Value})
	}
	base := sel
	for _, k := range rest {
		vals, err := q.st.LabelValues(ctx, base, k)
		if err != nil {
			return sel, storeErr(err)
		}
		var keep []string
		for _, v := range vals {
			if !slices.ContainsFunc(byKey[k], func(m Matcher) bool { return !m.Matches(v) }) {
				keep = append(keep, v)
			}
		}
		if len(keep) == 0 {
			return sel, errEmpty
		}
		if len(keep) > MaxMatcherValues {
			return sel, invalid(fmt.Errorf("label %s: the matchers select %d values, limit %d: narrow them", apiName(k), len(keep), MaxMatcherValues))
		}
		for _, v := range keep {
			sel.Filters = append(sel.Filters, model.Filter{Key: k, Value: v})
		}
	}
	return sel, nil
}

// isPromName reports whether a label key can be written in a selector.
func isPromName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isNameByte(k[i], i == 0) || k[i] == '.' {
			return false
		}
	}
	return true
}

// matchersSelections resolves each of a request's matchers (ORed in Pyroscope);
// none means everything. Selectors that select nothing are left out.
func (q *Querier) matchersSelections(ctx context.Context, matchers []string, startMS, endMS int64) ([]model.Selection, error) {
	if len(matchers) == 0 {
		matchers = []string{""}
	}
	var out []model.Selection
	for _, m := range matchers {
		sel, err := q.selection(ctx, nil, m, startMS, endMS)
		if errors.Is(err, errEmpty) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sel)
	}
	return out, nil
}

// ProfileTypes lists the Pyroscope types of every profile type stored in
// range, CPU's first.
func (s querierService) ProfileTypes(ctx context.Context, req *connect.Request[querierv1.ProfileTypesRequest]) (*connect.Response[querierv1.ProfileTypesResponse], error) {
	sel, err := s.q.selection(ctx, nil, "", req.Msg.GetStart(), req.Msg.GetEnd())
	if err != nil {
		return nil, err
	}
	types, err := s.q.storedTypes(ctx, sel)
	if err != nil {
		return nil, storeErr(err)
	}
	stored := map[string]bool{}
	for _, ts := range types {
		for _, t := range ts {
			stored[t] = true
		}
	}
	resp := &querierv1.ProfileTypesResponse{}
	for _, t := range sortedKeys(stored) {
		pts := pyroscopeTypes(t)
		if t == samplebatch.ProfileCPU {
			resp.ProfileTypes = append(pts, resp.ProfileTypes...)
			continue
		}
		resp.ProfileTypes = append(resp.ProfileTypes, pts...)
	}
	return connect.NewResponse(resp), nil
}

func (s querierService) LabelNames(ctx context.Context, req *connect.Request[typesv1.LabelNamesRequest]) (*connect.Response[typesv1.LabelNamesResponse], error) {
	sels, err := s.q.matchersSelections(ctx, req.Msg.GetMatchers(), req.Msg.GetStart(), req.Msg.GetEnd())
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, sel := range sels {
		keys, err := s.q.st.LabelKeys(ctx, sel)
		if err != nil {
			return nil, storeErr(err)
		}
		set[labelName] = true
		for _, k := range keys {
			if isPromName(k) {
				set[apiName(k)] = true
			}
		}
	}
	return connect.NewResponse(&typesv1.LabelNamesResponse{Names: sortedKeys(set)}), nil
}

func (s querierService) LabelValues(ctx context.Context, req *connect.Request[typesv1.LabelValuesRequest]) (*connect.Response[typesv1.LabelValuesResponse], error) {
	name := req.Msg.GetName()
	if !isPromName(name) {
		return nil, invalid(fmt.Errorf("label name %q: want [a-zA-Z_][a-zA-Z0-9_]*", name))
	}
	sels, err := s.q.matchersSelections(ctx, req.Msg.GetMatchers(), req.Msg.GetStart(), req.Msg.GetEnd())
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, sel := range sels {
		if name == labelName {
			types, err := s.q.storedTypes(ctx, sel)
			if err != nil {
				return nil, storeErr(err)
			}
			for _, ts := range types {
				for _, t := range ts {
					set[pyroscopeTypes(t)[0].Name] = true
				}
			}
			continue
		}
		vals, err := s.q.st.LabelValues(ctx, sel, storeKey(name))
		if err != nil {
			return nil, storeErr(err)
		}
		for _, v := range vals {
			if v != "" {
				set[v] = true
			}
		}
	}
	return connect.NewResponse(&typesv1.LabelValuesResponse{Names: sortedKeys(set)}), nil
}

// Series lists one label set per service and profile type: service_name,
// __name__ and __profile_type__ (what Grafana's query editor asks for).
func (s querierService) Series(ctx context.Context, req *connect.Request[querierv1.SeriesRequest]) (*connect.Response[querierv1.SeriesResponse], error) {
	sels, err := s.q.matchersSelections(ctx, req.Msg.GetMatchers(), req.Msg.GetStart(), req.Msg.GetEnd())
	if err != nil {
		return nil, err
	}
	svcs := map[string]map[string]bool{} // service → stored types
	for _, sel := range sels {
		types, err := s.q.storedTypes(ctx, sel)
		if err != nil {
			return nil, storeErr(err)
		}
		for svc, ts := range types {
			if svcs[svc] == nil {
				svcs[svc] = map[string]bool{}
			}
			for _, t := range ts {
				svcs[svc][t] = true
			}
		}
	}
	want := req.Msg.GetLabelNames()
	keep := func(n string) bool { return len(want) == 0 || slices.Contains(want, n) }
	resp := &querierv1.SeriesResponse{}
	for _, svc := range slices.Sorted(maps.Keys(svcs)) {
		var pts []*typesv1.ProfileType
		for _, t := range sortedKeys(svcs[svc]) {
			pts = append(pts, pyroscopeTypes(t)...)
		}
		for _, pt := range pts {
			var ls []*typesv1.LabelPair
			for _, p := range [][2]string{{labelName, pt.Name}, {labelProfileType, pt.ID}, {labelServiceName, svc}} {
				if keep(p[0]) {
					ls = append(ls, &typesv1.LabelPair{Name: p[0], Value: p[1]})
				}
			}
			resp.LabelsSet = append(resp.LabelsSet, &typesv1.Labels{Labels: ls})
		}
	}
	return connect.NewResponse(resp), nil
}

// profile reads the stacks of a merge request, keeping those under the call site.
func (q *Querier) profile(ctx context.Context, typeID, selector string, startMS, endMS int64, sts *typesv1.StackTraceSelector) (*model.Profile, int64, error) {
	typ, err := parseProfileType(typeID)
	if err != nil {
		return nil, 0, err
	}
	sel, err := q.selection(ctx, &typ, selector, startMS, endMS)
	if errors.Is(err, errEmpty) {
		return &model.Profile{}, 1, nil
	}
	if err != nil {
		return nil, 0, err
	}
	p, err := q.st.Profile(ctx, sel)
	if err != nil {
		return nil, 0, storeErr(err)
	}
	if cs := callSite(sts); len(cs) > 0 {
		kept := p.Stacks[:0:0]
		p.Total = 0
		for _, st := range p.Stacks {
			if len(st.Frames) >= len(cs) && slices.Equal(st.Frames[:len(cs)], cs) {
				kept = append(kept, st)
				p.Total += st.Value
			}
		}
		p.Stacks = kept
	}
	return p, typ.scale(p.PeriodNS), nil
}

func callSite(sts *typesv1.StackTraceSelector) []string {
	var out []string
	for _, l := range sts.GetCallSite() {
		out = append(out, l.GetName())
	}
	return out
}

func (s querierService) SelectMergeStacktraces(ctx context.Context, req *connect.Request[querierv1.SelectMergeStacktracesRequest]) (*connect.Response[querierv1.SelectMergeStacktracesResponse], error) {
	m := req.Msg
	if m.GetFormat() != querierv1.ProfileFormat_PROFILE_FORMAT_UNSPECIFIED && m.GetFormat() != querierv1.ProfileFormat_PROFILE_FORMAT_FLAMEGRAPH {
		return nil, connect.NewError(connect.CodeUnimplemented, fmt.Errorf("format %s is not supported: ask for FLAMEGRAPH, or SelectMergeProfile for pprof", m.GetFormat()))
	}
	p, sc, err := s.q.profile(ctx, m.GetProfileTypeID(), m.GetLabelSelector(), m.GetStart(), m.GetEnd(), m.GetStackTraceSelector())
	if err != nil {
		return nil, err
	}
	root := buildTree([]*model.Profile{p}, []int64{sc})
	names, levels, maxSelf := layout(root, 1, m.GetMaxNodes())
	fg := &querierv1.FlameGraph{Names: names, Total: root.total[0], MaxSelf: maxSelf}
	for _, l := range levels {
		fg.Levels = append(fg.Levels, &querierv1.Level{Values: l})
	}
	return connect.NewResponse(&querierv1.SelectMergeStacktracesResponse{Flamegraph: fg}), nil
}

func (s querierService) Diff(ctx context.Context, req *connect.Request[querierv1.DiffRequest]) (*connect.Response[querierv1.DiffResponse], error) {
	var profs [2]*model.Profile
	var scales [2]int64
	maxNodes := int64(0)
	for i, side := range []*querierv1.SelectMergeStacktracesRequest{req.Msg.GetLeft(), req.Msg.GetRight()} {
		if side == nil {
			return nil, invalid(errors.New("diff needs left and right"))
		}
		p, sc, err := s.q.profile(ctx, side.GetProfileTypeID(), side.GetLabelSelector(), side.GetStart(), side.GetEnd(), side.GetStackTraceSelector())
		if err != nil {
			return nil, fmt.Errorf("diff side %d: %w", i, err)
		}
		profs[i], scales[i] = p, sc
		maxNodes = max(maxNodes, side.GetMaxNodes())
	}
	root := buildTree(profs[:], scales[:])
	names, levels, maxSelf := layout(root, 2, maxNodes)
	fg := &querierv1.FlameGraphDiff{Names: names, MaxSelf: maxSelf, LeftTicks: root.total[0], RightTicks: root.total[1], Total: root.total[0] + root.total[1]}
	for _, l := range levels {
		fg.Levels = append(fg.Levels, &querierv1.Level{Values: l})
	}
	return connect.NewResponse(&querierv1.DiffResponse{Flamegraph: fg}), nil
}

func (s querierService) SelectMergeProfile(ctx context.Context, req *connect.Request[querierv1.SelectMergeProfileRequest]) (*connect.Response[googlev1.Profile], error) {
	m := req.Msg
	p, _, err := s.q.profile(ctx, m.GetProfileTypeID(), m.GetLabelSelector(), m.GetStart(), m.GetEnd(), m.GetStackTraceSelector())
	if err != nil {
		return nil, err
	}
	from, to, _ := s.q.timeRange(m.GetStart(), m.GetEnd())
	var buf bytes.Buffer
	if err := pprofconv.ToPprof(p, from, to.Sub(from)).WriteUncompressed(&buf); err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("write pprof: %w", err))
	}
	// google.v1.Profile is profile.proto: the pprof bytes are its encoding.
	out := &googlev1.Profile{}
	if err := proto.Unmarshal(buf.Bytes(), out); err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("decode pprof: %w", err))
	}
	return connect.NewResponse(out), nil
}

// totalOnly is a function name no frame has: FunctionSeries then returns the
// step totals alone.
const totalOnly = "\x00"

func (s querierService) SelectSeries(ctx context.Context, req *connect.Request[querierv1.SelectSeriesRequest]) (*connect.Response[querierv1.SelectSeriesResponse], error) {
	m := req.Msg
	typ, err := parseProfileType(m.GetProfileTypeID())
	if err != nil {
		return nil, err
	}
	step := DefaultStep
	if m.GetStep() > 0 {
		step = max(time.Duration(m.GetStep()*float64(time.Second)).Truncate(time.Second), time.Second)
	}
	sel, err := s.q.selection(ctx, &typ, m.GetLabelSelector(), m.GetStart(), m.GetEnd())
	if errors.Is(err, errEmpty) {
		return connect.NewResponse(&querierv1.SelectSeriesResponse{}), nil
	}
	if err != nil {
		return nil, err
	}
	if n := sel.To.Sub(sel.From) / step; n > MaxSeriesPoints {
		return nil, invalid(fmt.Errorf("step %v gives %d points over the range, limit %d", step, n, MaxSeriesPoints))
	}
	fn := totalOnly
	if cs := callSite(m.GetStackTraceSelector()); len(cs) > 0 {
		fn = cs[len(cs)-1]
	}
	groups, err := s.q.groups(ctx, sel, m.GetGroupBy())
	if err != nil {
		return nil, err
	}
	// The period that turns samples into nanoseconds is the selection's.
	period := int64(1)
	if typ.nanos {
		p, err := s.q.st.Profile(ctx, sel)
		if err != nil {
			return nil, storeErr(err)
		}
		period = max(p.PeriodNS, 1)
	}
	resp := &querierv1.SelectSeriesResponse{}
	for _, g := range groups {
		pts, err := s.q.st.FunctionSeries(ctx, g.sel, fn, step)
		if err != nil {
			return nil, storeErr(err)
		}
		series := &typesv1.Series{Labels: g.labels}
		for _, pt := range pts {
			v := pt.Total
			if fn != totalOnly {
				v = pt.Inclusive
			}
			if v == 0 {
				continue
			}
			series.Points = append(series.Points, &typesv1.Point{Value: float64(v * period), Timestamp: pt.Time.UnixMilli()})
		}
		if len(series.Points) > 0 {
			resp.Series = append(resp.Series, series)
		}
	}
	return connect.NewResponse(resp), nil
}

type group struct {
	sel    model.Selection
	labels []*typesv1.LabelPair
}

// groups splits sel by each combination of the group_by labels' values.
func (q *Querier) groups(ctx context.Context, sel model.Selection, by []string) ([]group, error) {
	out := []group{{sel: sel}}
	for _, name := range by {
		if !isPromName(name) {
			return nil, invalid(fmt.Errorf("group_by %q: not a label name", name))
		}
		var next []group
		for _, g := range out {
			vals, err := q.st.LabelValues(ctx, g.sel, storeKey(name))
			if err != nil {
				return nil, storeErr(err)
			}
			for _, v := range vals {
				s := g.sel
				s.Filters = append(slices.Clip(s.Filters), model.Filter{Key: storeKey(name), Value: v})
				next = append(next, group{sel: s, labels: append(slices.Clip(g.labels), &typesv1.LabelPair{Name: name, Value: v})})
			}
		}
		if len(next) > MaxGroups {
			return nil, invalid(fmt.Errorf("group_by %v gives more than %d series", by, MaxGroups))
		}
		out = next
	}
	return out, nil
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
