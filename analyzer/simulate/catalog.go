package simulate

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// Name pools. Services are Go modules named like the service, so a function of the
// billing service's pricing package is "billing/pricing.(*Engine).Quote".
var (
	servicePool = []string{"billing", "search", "checkout", "media", "ledger", "catalog", "shipping", "identity"}
	packagePool = []string{"api", "pricing", "cache", "store", "codec", "auth", "index", "queue",
		"render", "ranking", "session", "quota", "ledger", "report", "schedule", "audit"}
	typePool   = []string{"Engine", "Cache", "Store", "Handler", "Encoder", "Client", "Index", "Pool", "Planner", "Table", "Tracker", "Writer"}
	methodPool = []string{"Quote", "Get", "Put", "Lookup", "Encode", "Decode", "Serve", "Flush", "Scan",
		"Merge", "Validate", "Load", "Compute", "Apply", "Resolve", "Render", "Rank", "Refresh", "Evict",
		"Parse", "Format", "Match", "Split", "Score", "Fetch", "Store", "Commit", "Reserve", "Release",
		"Expire", "Batch", "Filter", "Sort", "Hash", "Sign", "Verify", "Compress", "Route", "Build", "Check"}
	// stdLeaves are library functions that appear as leaves under service code.
	stdLeaves = []string{"runtime.mallocgc", "runtime.memmove", "encoding/json.Marshal",
		"encoding/json.(*decodeState).object", "crypto/sha256.block", "compress/flate.(*compressor).deflate",
		"sync.(*Mutex).Lock", "syscall.Syscall", "runtime.mapaccess2_faststr", "strconv.ParseFloat",
		"bytes.(*Buffer).Write", "sort.pdqsort", "runtime.growslice", "regexp.(*Regexp).doExecute"}
	authorPool = []Author{
		{"Ada Park", "ada@example.com"}, {"Bruno Silva", "bruno@example.com"}, {"Chen Wei", "chen@example.com"},
		{"Dana Cohen", "dana@example.com"}, {"Emeka Obi", "emeka@example.com"}, {"Fatima Zahra", "fatima@example.com"},
		{"Gus Larsen", "gus@example.com"}, {"Hana Sato", "hana@example.com"},
	}
	noiseTitles = []string{"Improve %s error messages", "Add tracing span to %s", "Handle empty input in %s",
		"Clean up %s comments", "Log %s failures at debug level", "Tidy %s argument checks"}
	regressionTitles = []string{"Add validation to %s", "Fix %s rounding", "Support new tenant rules in %s",
		"Make %s handle legacy records", "Add audit hook to %s", "Harden %s against bad input"}
	// maxOwnedFunctions keeps names unique without suffixes.
	maxOwnedFunctions = 400
)

// Author is a commit author.
type Author struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

func (a Author) String() string { return a.Name + " <" + a.Email + ">" }

// login is the GitHub-style user name used in merge subjects.
func (a Author) login() string { return strings.ToLower(strings.Fields(a.Name)[0]) }

// function is one catalogue entry.
type function struct {
	pkg   string // import path: "billing/pricing" or "runtime"
	recv  string // receiver type name, "" for a plain function
	name  string // function or method name (v1; renames change it per version)
	owned bool   // defined in the service's repository
}

// goName is how a Go profiler names the function (pointer receivers).
func (f function) goName(name string) string {
	if f.recv == "" {
		return f.pkg + "." + name
	}
	return f.pkg + ".(*" + f.recv + ")." + name
}

// file is the repository path of the file defining an owned function.
func (f function) file() string {
	dir := f.pkg[strings.IndexByte(f.pkg, '/')+1:]
	if f.recv == "" {
		return dir + "/" + pathBase(dir) + ".go"
	}
	return dir + "/" + strings.ToLower(f.recv) + ".go"
}

func pathBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// node is one call-tree node: a function reached by one call path.
type node struct {
	parent int // -1 for the root
	fn     int
	depth  int
}

// catalog is a service's functions and call tree with base self weights.
type catalog struct {
	funcs  []function
	nodes  []node
	weight []float64 // base self weight per node, sums to 1
	owned  []int     // function indexes of owned functions
	byName map[string]int
}

func buildCatalog(rng *rand.Rand, svc string, nOwned int, zipfS float64) *catalog {
	c := &catalog{byName: map[string]int{}}
	add := func(f function) int {
		c.funcs = append(c.funcs, f)
		i := len(c.funcs) - 1
		c.byName[f.goName(f.name)] = i
		return i
	}
	addNode := func(parent, fn int) int {
		d := 0
		if parent >= 0 {
			d = c.nodes[parent].depth + 1
		}
		c.nodes = append(c.nodes, node{parent: parent, fn: fn, depth: d})
		return len(c.nodes) - 1
	}
	root := addNode(-1, add(function{pkg: "runtime", name: "goexit"}))
	serve := addNode(root, add(function{pkg: "net/http", recv: "conn", name: "serve"}))
	gc := addNode(root, add(function{pkg: "runtime", name: "gcBgMarkWorker"}))
	addNode(gc, add(function{pkg: "runtime", name: "gcDrain"}))

	// Packages: "api" first (its functions are the HTTP handlers), then others.
	nPkg := min(3+nOwned/20, len(packagePool))
	pkgs := []string{"api"}
	for _, i := range rng.Perm(len(packagePool)) {
		if len(pkgs) == nPkg {
			break
		}
		if packagePool[i] != "api" {
			pkgs = append(pkgs, packagePool[i])
		}
	}
	types := map[string][]string{"api": {"Handler"}}
	for _, p := range pkgs[1:] {
		perm := rng.Perm(len(typePool))
		types[p] = []string{typePool[perm[0]], typePool[perm[1]]}
	}
	used := map[string]bool{}
	var ownedNodes []int
	for i := range nOwned {
		p := pkgs[i%len(pkgs)]
		var f function
		for {
			f = function{pkg: svc + "/" + p, owned: true}
			if p == "api" {
				f.recv = "Handler"
				f.name = "Serve" + methodPool[rng.IntN(len(methodPool))]
			} else {
				if rng.Float64() < 0.75 {
					f.recv = types[p][rng.IntN(2)]
				}
				f.name = methodPool[rng.IntN(len(methodPool))]
			}
			if !used[f.goName(f.name)] {
				break
			}
		}
		used[f.goName(f.name)] = true
		fi := add(f)
		c.owned = append(c.owned, fi)
		parent := serve
		if p != "api" && len(ownedNodes) > 0 {
			for {
				parent = ownedNodes[rng.IntN(len(ownedNodes))]
				if c.nodes[parent].depth < 7 {
					break
				}
			}
		}
		ownedNodes = append(ownedNodes, addNode(parent, fi))
	}
	stdIdx := map[string]int{}
	for range nOwned / 2 {
		name := stdLeaves[min(rng.IntN(len(stdLeaves)), rng.IntN(len(stdLeaves)))]
		fi, ok := stdIdx[name]
		if !ok {
			fi = add(parseStdName(name))
			stdIdx[name] = fi
		}
		addNode(ownedNodes[rng.IntN(len(ownedNodes))], fi)
	}
	// Zipf self weights over nodes in random rank order; the root has no self time.
	c.weight = make([]float64, len(c.nodes))
	sum := 0.0
	for rank, n := range rng.Perm(len(c.nodes) - 1) {
		w := 1 / math.Pow(float64(rank+1), zipfS)
		c.weight[n+1] = w
		sum += w
	}
	for i := range c.weight {
		c.weight[i] /= sum
	}
	return c
}

// parseStdName splits "pkg.(*T).M" / "pkg.F" back into a function.
func parseStdName(s string) function {
	slash := strings.LastIndexByte(s, '/')
	dot := slash + 1 + strings.IndexByte(s[slash+1:], '.')
	f := function{pkg: s[:dot]}
	rest := s[dot+1:]
	if strings.HasPrefix(rest, "(*") {
		end := strings.IndexByte(rest, ')')
		f.recv = rest[2:end]
		f.name = rest[end+2:]
	} else {
		f.name = rest
	}
	return f
}

// path returns the node indexes from the root to n.
func (c *catalog) path(n int) []int {
	var p []int
	for ; n >= 0; n = c.nodes[n].parent {
		p = append(p, n)
	}
	for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// nodesOf returns the nodes of function fn.
func (c *catalog) nodesOf(fn int) []int {
	var ns []int
	for i, n := range c.nodes {
		if n.fn == fn {
			ns = append(ns, i)
		}
	}
	return ns
}

// ownedFunctionNames lists the owned functions' v1 names, sorted.
func (c *catalog) ownedFunctionNames() []string {
	var names []string
	for _, fi := range c.owned {
		names = append(names, c.funcs[fi].goName(c.funcs[fi].name))
	}
	sort.Strings(names)
	return names
}
