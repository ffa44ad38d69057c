package debugpprof

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is where the endpoints are served.
const Prefix = "/debug/pprof/"

// Register serves net/http/pprof under Prefix on mux when on; otherwise every
// path under Prefix answers 404 with offHint, telling how to turn them on
// (instead of whatever else the mux serves at "/").
func Register(mux *http.ServeMux, on bool, offHint string) {
	if !on {
		mux.HandleFunc(Prefix, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, offHint, http.StatusNotFound)
		})
		return
	}
	mux.HandleFunc(Prefix, pprof.Index)
	mux.HandleFunc(Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(Prefix+"profile", pprof.Profile)
	mux.HandleFunc(Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(Prefix+"trace", pprof.Trace)
}
