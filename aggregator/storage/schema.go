package storage

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// SchemaVersion is the newest schema migration this code applies (SCHEMA.md).
const SchemaVersion = 4

// features are the optional ClickHouse features the schema uses when the
// engine has them; the base schema works on 18.16.
type features struct {
	TTL            bool // table TTL (19.6+)
	Codecs         bool // column compression codecs (conservatively 20.1+)
	LowCardinality bool // LowCardinality without an experimental setting (conservatively 20.1+)
	ThreadPriority bool // the os_thread_priority query setting (conservatively 20.1+; 18.16 refuses it)
}

func featuresFor(v Version) features {
	return features{
		TTL:            v.AtLeast(19, 6),
		Codecs:         v.AtLeast(20, 1),
		LowCardinality: v.AtLeast(20, 1),
		ThreadPriority: v.AtLeast(20, 1),
	}
}

// profileTypeColumn is what a samples row's value counts (samplebatch.ProfileCPU or
// TYPE/UNIT); rows written before schema v3 are CPU. It is not in the sorting key:
// changing an existing table's key is not possible on 18.16, and non-CPU data is
// imported profiles, small next to the agents' CPU samples.
const profileTypeColumn = "profile_type {LC} DEFAULT 'cpu'"

// locationsColumn holds each frame's source location (samplebatch.Location),
// parallel to frames; empty for stacks stored without locations (and before
// schema v4).
const locationsColumn = "locations Array(String){C:ZSTD(3)}"

// commitSeqColumn marks the rows of one staged commit (commit.go); 0 for
// rows written without staging (bulk writes, cluster mode, schema v1).
const commitSeqColumn = "commit_seq UInt64 DEFAULT 0"

// tableDef is one table of the schema. Column types use {LC} for a string
// type that is LowCardinality(String) where supported and {C:...} for a codec.
type tableDef struct {
	name    string
	columns []string
	// engine is the ENGINE clause; {TTL} is replaced by the retention TTL.
	engine string
	// shard is the Distributed sharding key in cluster mode.
	shard  string
	ttlCol string
}

var tables = []tableDef{
	{
		name: "samples",
		columns: []string{
			// LZ4 everywhere on the hot columns: ZSTD/T64 made a 10M-row
			// GROUP BY stack_id ~1.7x slower in CPU for ~20% less disk.
			"ts DateTime{C:Delta, LZ4}",
			"service {LC}", "version {LC}", "host {LC}", "namespace {LC}", "pod {LC}", "container {LC}", "comm {LC}",
			"pid UInt32",
			"label_keys Array({LC})", "label_values Array(String)",
			"stack_id UInt64",
			"value UInt64",
			"period_ns UInt64",
			commitSeqColumn,
			// After commit_seq: where ALTER ADD COLUMN appends it to an upgraded
			// table, so stage and public tables keep one column order.
			profileTypeColumn,
		},
		engine: "MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (service, ts, stack_id){TTL}",
		shard:  "cityHash64(service, host)",
		ttlCol: "ts",
	},
	{
		name:    "stacks",
		columns: []string{"stack_id UInt64", "frames Array(String){C:ZSTD(3)}", locationsColumn},
		engine:  "ReplacingMergeTree ORDER BY stack_id",
		shard:   "cityHash64(stack_id)",
	},
	{
		name: "function_rollup",
		columns: []string{
			"service {LC}", "version {LC}", "host_group UInt8",
			"bucket DateTime{C:Delta, LZ4}", "function String",
			"self UInt64", "inclusive UInt64",
			commitSeqColumn,
		},
		// Only the counters are summed: commit_seq must survive merges.
		engine: "SummingMergeTree((self, inclusive)) PARTITION BY toYYYYMMDD(bucket) ORDER BY (service, bucket, function, version, host_group){TTL}",
		shard:  "cityHash64(service, function)",
		ttlCol: "bucket",
	},
	{
		name:    "ingested_batches",
		columns: []string{"batch_id String", "ts DateTime", "rows UInt64", commitSeqColumn},
		engine:  "ReplacingMergeTree ORDER BY batch_id",
		shard:   "cityHash64(batch_id)",
	},
	{
		name:    "findings",
		columns: []string{"id String", "kind String", "service String", "created DateTime", "body String", "revision UInt64"},
		engine:  "ReplacingMergeTree(revision) ORDER BY id",
		shard:   "cityHash64(id)",
	},
}

// columnsSQL renders the column list for the engine's features.
func (t tableDef) columnsSQL(f features) string {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		lc := "String"
		if f.LowCardinality {
			lc = "LowCardinality(String)"
		}
		c = strings.ReplaceAll(c, "{LC}", lc)
		if j := strings.Index(c, "{C:"); j >= 0 {
			k := strings.Index(c[j:], "}") + j
			codec := ""
			if f.Codecs {
				codec = " CODEC(" + c[j+3:k] + ")"
			}
			c = c[:j] + codec + c[k+1:]
		}
		cols[i] = c
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

func (t tableDef) engineSQL(f features, retention time.Duration) string {
	ttl := ""
	if f.TTL && retention > 0 && t.ttlCol != "" {
		ttl = fmt.Sprintf(" TTL %s + toIntervalSecond(%d)", t.ttlCol, int64(retention/time.Second))
	}
	return strings.ReplaceAll(t.engine, "{TTL}", ttl)
}

// layout says where tables live: one node, or local tables on every node of
// a cluster behind Distributed tables with the public names.
type layout struct {
	db        string
	cluster   string
	onCluster bool
}

func (l layout) onClusterSQL() string {
	if l.cluster != "" && l.onCluster {
		return " ON CLUSTER " + l.cluster
	}
	return ""
}

// localName is where a table's rows are stored on a node.
func (l layout) localName(t string) string {
	if l.cluster != "" {
		return t + "_local"
	}
	return t
}

// createStatements is the DDL for schema version 4.
func (l layout) createStatements(f features, retention time.Duration) []string {
	var out []string
	for _, t := range tables {
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s %s ENGINE = %s",
			l.db, l.localName(t.name), l.onClusterSQL(), t.columnsSQL(f), t.engineSQL(f, retention)))
	}
	if l.cluster != "" {
		for _, t := range tables {
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s %s ENGINE = Distributed(%s, %s, %s, %s)",
				l.db, t.name, l.onClusterSQL(), t.columnsSQL(f), l.cluster, l.db, l.localName(t.name), t.shard))
		}
	}
	return out
}

// migrate brings one node to SchemaVersion; it is idempotent. The migrations
// table is per node (never distributed): it records what DDL that node ran.
func migrate(ctx context.Context, b Backend, l layout, f features, retention time.Duration) error {
	if err := b.Exec(ctx, fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", l.db, l.onClusterSQL())); err != nil {
		return fmt.Errorf("create database %s: %w", l.db, err)
	}
	if err := b.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_migrations%s (version UInt32, applied DateTime) ENGINE = TinyLog", l.db, l.onClusterSQL())); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	r, err := b.Query(ctx, fmt.Sprintf("SELECT toUInt64(max(version)) FROM %s.schema_migrations", l.db))
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	have := 0
	if len(r.Data) == 1 {
		have = int(asUint(r.Data[0][0]))
	}
	if have > SchemaVersion {
		return fmt.Errorf("schema version %d in %s is newer than this build's %d: upgrade fleetprof", have, l.db, SchemaVersion)
	}
	if have == SchemaVersion {
		return nil
	}
	for _, stmt := range l.createStatements(f, retention) {
		if err := b.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate schema to v%d: %w (statement: %s)", SchemaVersion, err, stmt)
		}
	}
	if have == 1 {
		if err := upgradeV1(ctx, b, l, f, retention); err != nil {
			return fmt.Errorf("migrate schema v1 to v2: %w", err)
		}
	}
	if have >= 1 && have < 3 {
		for _, name := range l.tableNames("samples") {
			if err := addColumn(ctx, b, l, name, profileTypeColumn, f); err != nil {
				return fmt.Errorf("migrate schema v2 to v3: %w", err)
			}
		}
	}
	if have >= 1 && have < 4 {
		for _, name := range l.tableNames("stacks") {
			if err := addColumn(ctx, b, l, name, locationsColumn, f); err != nil {
				return fmt.Errorf("migrate schema v3 to v4: %w", err)
			}
		}
	}
	// INSERT ... SELECT: clickhouse-go waits for a data block after INSERT ... VALUES on 18.16.
	if err := b.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, applied) SELECT %d, now()", l.db, SchemaVersion)); err != nil {
		return fmt.Errorf("record schema version: %w", err)
	}
	return nil
}

// tableNames are the tables holding t's columns on a node: t, or in cluster
// mode its local table and the Distributed one.
func (l layout) tableNames(t string) []string {
	names := []string{l.localName(t)}
	if l.cluster != "" {
		names = append(names, t)
	}
	return names
}

// addColumn adds column (a tableDef column, {LC} and codecs resolved for f) to
// table unless the table has it; 18.16 has no ADD COLUMN IF NOT EXISTS.
func addColumn(ctx context.Context, b Backend, l layout, table, column string, f features) error {
	def := tableDef{columns: []string{column}}.columnsSQL(f)
	def = def[1 : len(def)-1]
	name, _, _ := strings.Cut(def, " ")
	r, err := b.Query(ctx, fmt.Sprintf("SELECT count() FROM system.columns WHERE database = %s AND table = %s AND name = %s", quote(l.db), quote(table), quote(name)))
	if err != nil {
		return fmt.Errorf("read columns of %s: %w", table, err)
	}
	if len(r.Data) == 1 && asUint(r.Data[0][0]) > 0 {
		return nil
	}
	if err := b.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s%s ADD COLUMN %s", l.db, table, l.onClusterSQL(), def)); err != nil {
		return fmt.Errorf("add %s to %s: %w", name, table, err)
	}
	return nil
}

// committedTables carry commit_seq since schema v2.
var committedTables = []string{"samples", "function_rollup", "ingested_batches"}

// upgradeV1 adds commit_seq to the v1 tables and, on a single node, rebuilds
// function_rollup so that merges sum only self and inclusive (a plain
// SummingMergeTree would sum commit_seq too). Every step can be re-run.
func upgradeV1(ctx context.Context, b Backend, l layout, f features, retention time.Duration) error {
	for _, t := range committedTables {
		for _, name := range l.tableNames(t) {
			if err := addColumn(ctx, b, l, name, commitSeqColumn, f); err != nil {
				return err
			}
		}
	}
	if l.cluster != "" {
		return nil // cluster mode does not stage commits; the old summing is harmless there
	}
	const rollup = "function_rollup"
	old, tmp := rollup+"_v1", rollup+"_v2"
	r, err := b.Query(ctx, fmt.Sprintf("SELECT engine_full FROM system.tables WHERE database = %s AND name = %s", quote(l.db), quote(rollup)))
	if err != nil {
		return fmt.Errorf("read engine of %s: %w", rollup, err)
	}
	if len(r.Data) == 1 && !strings.Contains(asString(r.Data[0][0]), "SummingMergeTree((") {
		var def tableDef
		for _, t := range tables {
			if t.name == rollup {
				def = t
			}
		}
		cols := "service, version, host_group, bucket, function, self, inclusive, commit_seq"
		for _, stmt := range []string{
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", l.db, tmp),
			fmt.Sprintf("CREATE TABLE %s.%s %s ENGINE = %s", l.db, tmp, def.columnsSQL(f), def.engineSQL(f, retention)),
			fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", l.db, tmp, cols, cols, l.db, rollup),
			fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", l.db, rollup, l.db, old, l.db, tmp, l.db, rollup),
		} {
			if err := b.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("rebuild %s: %w", rollup, err)
			}
		}
	}
	if err := b.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", l.db, old)); err != nil {
		return fmt.Errorf("drop old %s: %w", rollup, err)
	}
	return nil
}
