package storage

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultURI is where the store lives when Config.URI is empty.
const DefaultURI = "embedded:./fleetprof-data/clickhouse" // the store of `fleetprof up` (one data-dir default for every command)

// DefaultDatabase is the database used when the URI names none.
const DefaultDatabase = "fleetprof"

// Config configures a Store.
type Config struct {
	// URI is "embedded:DIR" (chDB in-process, data in DIR; default
	// embedded:./fleetprof-data/clickhouse) or "clickhouse://HOST:PORT[,HOST:PORT...]/DB?..."
	// (native protocol). Extra query parameters: database=NAME for embedded;
	// cluster=NAME and ddl=on_cluster|per_node for a sharded server cluster.
	// Any other clickhouse:// parameter is passed to clickhouse-go.
	URI string
	// Retention is how long samples and rollups are kept (0 = forever). Applied
	// as a table TTL where the server supports it, else by EnforceRetention.
	Retention time.Duration
	// HostGroups is the number of host groups in the rollup (default 16, max 256).
	HostGroups int
	// RollupBucket is the rollup's time bucket (default 1m, whole seconds).
	RollupBucket time.Duration
	// ChdbLib is an explicit libchdb.so path for the embedded engine.
	ChdbLib string
	// StackCache is how many stacks' frames the store remembers in process
	// (to skip re-inserting known stacks and to answer queries); default 200,000.
	StackCache int
	// Writer names this process's stage tables (`<table>_stage_<Writer>`,
	// default "default"). Processes writing one database at the same time
	// need distinct names, each stable across its restarts so that it
	// recovers its own stage (SCHEMA.md, "Exactly-once ingest").
	Writer string
}

func (c Config) withDefaults() Config {
	if c.URI == "" {
		c.URI = DefaultURI
	}
	if c.HostGroups == 0 {
		c.HostGroups = 16
	}
	if c.RollupBucket == 0 {
		c.RollupBucket = time.Minute
	}
	if c.StackCache == 0 {
		c.StackCache = 200_000
	}
	if c.Writer == "" {
		c.Writer = DefaultWriter
	}
	return c
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := parseURI(c.URI); err != nil {
		return err
	}
	if c.Retention < 0 {
		return fmt.Errorf("storage config: retention %v is negative", c.Retention)
	}
	if c.Retention > 0 && c.Retention < time.Hour {
		return fmt.Errorf("storage config: retention %v is under one hour", c.Retention)
	}
	if c.HostGroups < 1 || c.HostGroups > 256 {
		return fmt.Errorf("storage config: host groups %d out of range [1, 256]", c.HostGroups)
	}
	if c.RollupBucket < time.Second || c.RollupBucket%time.Second != 0 || c.RollupBucket > 24*time.Hour {
		return fmt.Errorf("storage config: rollup bucket %v must be whole seconds between 1s and 24h", c.RollupBucket)
	}
	if !writerRE.MatchString(c.Writer) {
		return fmt.Errorf("storage config: writer %q must be 1 to 32 letters, digits or underscores", c.Writer)
	}
	if c.StackCache < 0 {
		return fmt.Errorf("storage config: stack cache %d is negative", c.StackCache)
	}
	return nil
}

// target is a parsed Config.URI.
type target struct {
	embedded  bool
	dir       string // embedded data directory
	database  string
	dsn       string   // clickhouse-go DSN without fleetprof's own parameters
	hosts     []string // server addresses
	cluster   string   // remote_servers cluster name; "" = single node
	onCluster bool     // DDL with ON CLUSTER instead of node by node
}

// DefaultWriter is Config.Writer's default.
const DefaultWriter = "default"

var writerRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func parseURI(uri string) (target, error) {
	switch {
	case strings.HasPrefix(uri, "embedded:"):
		rest := strings.TrimPrefix(uri, "embedded:")
		t := target{embedded: true, database: DefaultDatabase}
		if i := strings.LastIndexByte(rest, '?'); i >= 0 {
			q, err := url.ParseQuery(rest[i+1:])
			if err != nil {
				return target{}, fmt.Errorf("storage uri %q: bad query: %w", uri, err)
			}
			rest = rest[:i]
			for k := range q {
				if k != "database" {
					return target{}, fmt.Errorf("storage uri %q: unknown parameter %q (embedded accepts database)", uri, k)
				}
			}
			if db := q.Get("database"); db != "" {
				t.database = db
			}
		}
		if rest == "" {
			return target{}, fmt.Errorf("storage uri %q: empty data directory (want embedded:DIR)", uri)
		}
		if !identRE.MatchString(t.database) {
			return target{}, fmt.Errorf("storage uri %q: database %q is not a plain identifier", uri, t.database)
		}
		t.dir = rest
		return t, nil
	case strings.HasPrefix(uri, "clickhouse://"):
		u, err := url.Parse(uri)
		if err != nil {
			return target{}, fmt.Errorf("storage uri: %w", err)
		}
		if u.Host == "" {
			return target{}, fmt.Errorf("storage uri %q: no host (want clickhouse://HOST:PORT/DB)", redact(uri))
		}
		t := target{database: strings.Trim(u.Path, "/")}
		if t.database == "" {
			t.database = "default"
		}
		if !identRE.MatchString(t.database) {
			return target{}, fmt.Errorf("storage uri %q: database %q is not a plain identifier", redact(uri), t.database)
		}
		for _, h := range strings.Split(u.Host, ",") {
			if h == "" || !strings.Contains(h, ":") {
				return target{}, fmt.Errorf("storage uri %q: host %q needs a port (native protocol, usually 9000)", redact(uri), h)
			}
			t.hosts = append(t.hosts, h)
		}
		q := u.Query()
		t.cluster = q.Get("cluster")
		q.Del("cluster")
		switch d := q.Get("ddl"); d {
		case "", "per_node":
		case "on_cluster":
			t.onCluster = true
		default:
			return target{}, fmt.Errorf("storage uri %q: ddl=%q, want on_cluster or per_node", redact(uri), d)
		}
		q.Del("ddl")
		if t.cluster != "" && !identRE.MatchString(t.cluster) {
			return target{}, fmt.Errorf("storage uri %q: cluster %q is not a plain identifier", redact(uri), t.cluster)
		}
		u.RawQuery = q.Encode()
		t.dsn = u.String()
		return t, nil
	case uri == "":
		return target{}, errors.New("storage uri is empty")
	default:
		scheme := uri
		if i := strings.Index(uri, ":"); i >= 0 {
			scheme = uri[:i]
		}
		return target{}, fmt.Errorf("storage uri %q: unknown scheme %q (want embedded:DIR or clickhouse://HOST:PORT/DB)", redact(uri), scheme)
	}
}

// redact hides a password in a URI quoted in an error.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return uri
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}
