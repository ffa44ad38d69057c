package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetprof/fleetprof/aggregator/queryclient"
	"github.com/fleetprof/fleetprof/model"
	"github.com/fleetprof/fleetprof/proto/samplebatch"
)

// maxHintValues bounds the known values a hint lists.
const maxHintValues = 20

// emptyHint says why sel matched no samples: the service or a filter's value is not
// in the store for that time range (listing the known ones), or the range is empty.
// what names the selection ("baseline", "selection").
func emptyHint(ctx context.Context, c *queryclient.Client, what string, sel model.Selection) string {
	span := sel.From.UTC().Format(time.RFC3339) + " … " + sel.To.UTC().Format(time.RFC3339)
	services, err := c.Services(ctx, sel.From, sel.To)
	if err != nil {
		return ""
	}
	if sel.ProfileType != "" && sel.ProfileType != samplebatch.ProfileCPU {
		// Services lists CPU data (the rollup); other types have their own.
		services, err = c.LabelValues(ctx, model.Selection{From: sel.From, To: sel.To, ProfileType: sel.ProfileType}, "service")
		if err != nil {
			return ""
		}
		if len(services) == 0 {
			return fmt.Sprintf("%s matched nothing: no %s samples in %s (profile types other than cpu come from fleetprof import --sample-type)", what, sel.ProfileType, span)
		}
	}
	if len(services) == 0 {
		return fmt.Sprintf("%s matched nothing: no samples at all in %s (widen --from, or send data: fleetprof import / simulate, or the agent)", what, span)
	}
	if sel.Service != "" && !slices.Contains(services, sel.Service) {
		return fmt.Sprintf("%s matched nothing: no service %q in %s; known services: %s", what, sel.Service, span, listValues(services))
	}
	for i, f := range sel.Filters {
		rest := sel
		rest.Filters = slices.Delete(slices.Clone(sel.Filters), i, i+1)
		vals, err := c.LabelValues(ctx, rest, f.Key)
		if err != nil {
			return ""
		}
		if !slices.Contains(vals, f.Value) {
			if len(vals) == 0 {
				return fmt.Sprintf("%s matched nothing: no samples carry label %q in %s", what, f.Key, span)
			}
			return fmt.Sprintf("%s matched nothing: no samples with %s=%s in %s; known values of %s: %s", what, f.Key, f.Value, span, f.Key, listValues(vals))
		}
	}
	return fmt.Sprintf("%s matched nothing in %s (the filters together exclude every sample)", what, span)
}

func listValues(vs []string) string {
	if len(vs) > maxHintValues {
		return strings.Join(vs[:maxHintValues], ", ") + fmt.Sprintf(", … (%d in all)", len(vs))
	}
	return strings.Join(vs, ", ")
}
