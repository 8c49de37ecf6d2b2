package main

// The GIN indexer: an index that FerretDB's equality queries can use, beside each of its own.
//
// FerretDB 1.24's PostgreSQL backend pushes an equality filter down as jsonb containment,
// `_jsonb->'field' @> '"value"'` (internal/backends/postgresql/query.go), but the indexes it
// creates are btree on (_jsonb->'field'), which containment cannot use: every equality query is a
// Seq Scan of the collection's table. A GIN index (jsonb_ops) on the same expression serves `@>`
// as a Bitmap Index Scan. So, once at start and then every tick, for every FerretDB database (a
// PostgreSQL schema with a _ferretdb_database_metadata table), this reads FerretDB's metadata and
// keeps one GIN index per table on (_jsonb->'_id') and on (_jsonb->'field') for every top-level
// field named in any declared index, and drops its own that no declared index names any more.
// Dotted fields get none: the embeddable FerretDB never pushes them down (EnableNestedPushdown
// is off).
//
// The indexes have no fastupdate: GIN's pending list (up to 4 MB of entries not yet merged into
// the index) is read by every lookup until a vacuum merges it. Measured at 100,000 documents
// inserted after createIndexes: a find by _id took 10 ms with it, 0.9 ms without; the inserts
// took 6.4 s instead of 4.8 s.
//
// Best effort, never in FerretDB's way: FerretDB does not wait for it (a query in the first moment
// after createIndexes is still a Seq Scan, and still right); indexes are built CONCURRENTLY, so
// writers are not blocked; a lock wait gives up after lockTimeout, below PostgreSQL's
// deadlock_timeout (1 s), so that when a build and a FerretDB statement (the DROP of a test's
// database, say) wait for each other, the build is the one that gives up, and is tried again.
//
// What it looks at: a trigger on each database's metadata table notifies the indexer of every
// change to it (LISTEN/NOTIFY, see installTriggers), and the indexer reads the metadata of the
// databases notified alone. It still reads every database's metadata at start, after a reconnection, and every
// fullSweepEvery, in case a notification was missed, and every tick when the trigger could not be
// installed. Reading every database every tick, as it did before, cost FerretDB and PostgreSQL
// 45 % of a core at rest with the 438 databases that test runs had left (measured).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	ginTick          = 500 * time.Millisecond // how often notifications are waited for
	fullSweepEvery   = 30 * time.Second
	notifyChannel    = "ferretdb_gin_indexer"
	ginRetryAfter    = time.Second      // after a failed attempt on a database
	ginStuckAfter    = 30 * time.Second // failing this long is logged as a warning, once
	lockTimeout      = "250ms"
	connectTimeout   = 2 * time.Second
	metadataTable    = "_ferretdb_database_metadata"
	ginNameSuffix    = "_gin_" // + 8 hex digits; FerretDB's own index names end in _idx
	maxIdentifierLen = 63      // PostgreSQL's NAMEDATALEN - 1
)

// ginIndex is one GIN index the indexer wants.
type ginIndex struct {
	name       string // in the database's schema
	table      string
	collection string
	field      string
	expr       string // _jsonb -> 'field', as FerretDB's pushed-down filter spells it
}

// schemaState is what the indexer remembers of one FerretDB database.
type schemaState struct {
	digest       string    // of the metadata last reconciled in full; "" when not yet
	retryAt      time.Time // after a failed attempt; zero once one succeeds
	failingSince time.Time // zero while attempts succeed
	warned       bool      // the failure was logged as a warning
}

type ginIndexer struct {
	config      *pgx.ConnConfig
	l           *slog.Logger
	conn        *pgx.Conn
	unreachable bool // an outage was logged; log the recovery too
	schemas     map[string]*schemaState
	listening   bool      // the connection listens to the DDL trigger's notifications
	sweptAt     time.Time // of the last full sweep; zero: one is due
}

// The triggers that tell the indexer which database's metadata changed: a statement trigger on
// every _ferretdb_database_metadata table notifies its schema (delivered at commit, when the
// change is visible), and an event trigger puts that trigger on each such table FerretDB creates
// (one per new database). A DDL trigger alone would not do: FerretDB creates an index first and
// writes the metadata that names it afterwards, in a statement of its own. Errors inside are
// swallowed: the triggers must never fail FerretDB's own statements.
const installTriggers = `
CREATE OR REPLACE FUNCTION public.ferretdb_gin_indexer_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('` + notifyChannel + `', TG_TABLE_SCHEMA);
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.ferretdb_gin_indexer_watch(metadata regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE OR REPLACE TRIGGER ` + notifyChannel + ` '
		'AFTER INSERT OR UPDATE OR DELETE ON %s '
		'FOR EACH STATEMENT EXECUTE FUNCTION public.ferretdb_gin_indexer_notify()', metadata);
END $$;
CREATE OR REPLACE FUNCTION public.ferretdb_gin_indexer_new_table() RETURNS event_trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM public.ferretdb_gin_indexer_watch(objid::regclass)
	FROM pg_event_trigger_ddl_commands()
	WHERE object_type = 'table' AND object_identity LIKE '%.` + metadataTable + `';
EXCEPTION WHEN OTHERS THEN NULL;
END $$;
DROP EVENT TRIGGER IF EXISTS ` + notifyChannel + `;
CREATE EVENT TRIGGER ` + notifyChannel + ` ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
	EXECUTE FUNCTION public.ferretdb_gin_indexer_new_table();
SELECT public.ferretdb_gin_indexer_watch(c.oid::regclass)
FROM pg_class c WHERE c.relname = '` + metadataTable + `' AND c.relkind = 'r';
DROP FUNCTION IF EXISTS public.ferretdb_gin_indexer_ddl();
LISTEN ` + notifyChannel + `
`

// runGINIndexer keeps the GIN indexes of every FerretDB database, once at start and then every
// tick, until ctx is done.
func runGINIndexer(ctx context.Context, postgresqlURL string, l *slog.Logger) {
	config, err := pgx.ParseConfig(postgresqlURL)
	if err != nil {
		l.Error("GIN indexer not started: cannot parse the PostgreSQL URL", "error", err)
		return
	}
	for name := range config.RuntimeParams {
		if strings.HasPrefix(name, "pool_") { // pgxpool's settings, for FerretDB's pools
			delete(config.RuntimeParams, name)
		}
	}
	config.RuntimeParams["application_name"] = "ferretdb-gin-indexer"
	config.RuntimeParams["lock_timeout"] = lockTimeout
	config.ConnectTimeout = connectTimeout

	ix := &ginIndexer{config: config, l: l, schemas: map[string]*schemaState{}}
	defer ix.close()

	for ctx.Err() == nil {
		ix.tick(ctx)
	}
}

func (ix *ginIndexer) close() {
	if ix.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = ix.conn.Close(ctx)
		ix.conn = nil
	}
}

func (ix *ginIndexer) connect(ctx context.Context) *pgx.Conn {
	if ix.conn != nil && !ix.conn.IsClosed() {
		return ix.conn
	}
	ix.conn = nil
	conn, err := pgx.ConnectConfig(ctx, ix.config)
	if err != nil {
		if ctx.Err() == nil && !ix.unreachable {
			ix.l.Warn("GIN indexer: cannot connect to PostgreSQL; retrying every tick", "error", err)
			ix.unreachable = true
		}
		return nil
	}
	if ix.unreachable {
		ix.l.Info("GIN indexer: connected to PostgreSQL again")
		ix.unreachable = false
	}
	ix.conn = conn
	// Notifications sent while it was not connected are lost: a full sweep first.
	ix.sweptAt = time.Time{}
	_, err = conn.Exec(ctx, installTriggers)
	ix.listening = err == nil
	if err != nil && ctx.Err() == nil {
		ix.l.Warn("GIN indexer: cannot install its triggers; reading every database every tick",
			"error", err)
	}
	return conn
}

// tick sweeps every database when a full sweep is due, and otherwise waits up to ginTick for the
// triggers' notifications and syncs the databases they name.
func (ix *ginIndexer) tick(ctx context.Context) {
	conn := ix.connect(ctx)
	if conn == nil {
		sleep(ctx, ginTick)
		return
	}
	if !ix.listening || time.Since(ix.sweptAt) >= fullSweepEvery {
		ix.sweep(ctx, conn)
		ix.sweptAt = time.Now()
		if !ix.listening {
			sleep(ctx, ginTick)
		}
		return
	}
	ix.retryFailed(ctx, conn)
	wait, cancel := context.WithTimeout(ctx, ginTick)
	notification, err := conn.WaitForNotification(wait)
	cancel()
	if err != nil {
		if !pgconn.Timeout(err) && ctx.Err() == nil {
			ix.l.Debug("GIN indexer: waiting for notifications failed", "error", err)
			sleep(ctx, ginTick)
		}
		return
	}
	for _, schema := range strings.Split(notification.Payload, ",") {
		if ctx.Err() != nil || conn.IsClosed() {
			return
		}
		ix.syncSchema(ctx, conn, schema)
	}
}

// retryFailed syncs again the databases whose last attempt failed, once their retryAt is past: no
// notification may come for them before the next full sweep.
func (ix *ginIndexer) retryFailed(ctx context.Context, conn *pgx.Conn) {
	now := time.Now()
	for schema, st := range ix.schemas {
		if ctx.Err() != nil || conn.IsClosed() {
			return
		}
		if !st.retryAt.IsZero() && !now.Before(st.retryAt) {
			ix.syncSchema(ctx, conn, schema)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// sweep syncs every FerretDB database, and forgets the dropped ones.
func (ix *ginIndexer) sweep(ctx context.Context, conn *pgx.Conn) {
	rows, _ := conn.Query(ctx, `
		SELECT n.nspname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = $1 AND c.relkind = 'r'
		ORDER BY 1`,
		metadataTable,
	)
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		if ctx.Err() == nil {
			ix.l.Debug("GIN indexer: cannot list FerretDB databases", "error", err)
		}
		return
	}

	live := make(map[string]bool, len(schemas))
	for _, schema := range schemas {
		if ctx.Err() != nil || conn.IsClosed() {
			return
		}
		live[schema] = true
		ix.syncSchema(ctx, conn, schema)
	}
	for schema := range ix.schemas {
		if !live[schema] {
			delete(ix.schemas, schema) // dropped: nothing of it to remember
		}
	}
}

// syncSchema reconciles one database's GIN indexes when its metadata changed since the last time.
func (ix *ginIndexer) syncSchema(ctx context.Context, conn *pgx.Conn, schema string) {
	st := ix.schemas[schema]
	if st == nil {
		st = &schemaState{}
		ix.schemas[schema] = st
	}
	now := time.Now()
	if now.Before(st.retryAt) {
		return
	}

	want, digest, err := readMetadata(ctx, conn, schema)
	if err == nil && digest == st.digest {
		return
	}
	if err == nil {
		err = ix.reconcile(ctx, conn, schema, want)
	}
	if err == nil {
		st.digest, st.failingSince, st.warned, st.retryAt = digest, time.Time{}, false, time.Time{}
		return
	}

	st.retryAt = now.Add(ginRetryAfter)
	if ctx.Err() != nil {
		return
	}
	if isGone(err) {
		// Dropped meanwhile (tests drop databases all the time): nothing of it to remember.
		delete(ix.schemas, schema)
		ix.l.Debug("GIN indexer: database or collection dropped meanwhile", "db", schema, "error", err)
		return
	}
	ix.l.Debug("GIN indexer: attempt failed; trying again", "db", schema, "error", err)
	if st.failingSince.IsZero() {
		st.failingSince = now
	}
	if !st.warned && now.Sub(st.failingSince) >= ginStuckAfter {
		ix.l.Warn(
			"GIN indexer: indexes of a database still not in place; trying again",
			"db", schema, "for", now.Sub(st.failingSince).Round(time.Second), "error", err,
		)
		st.warned = true
	}
}

// collectionMetadata is the part of a _ferretdb_database_metadata row (FerretDB's sjson of
// metadata.Collection; see internal/backends/postgresql/metadata) the indexer needs.
type collectionMetadata struct {
	Name    string `json:"_id"`
	UUID    string `json:"uuid"`
	Table   string `json:"table"`
	Indexes []struct {
		// {<field>: 1 or -1, ...}; a key starting with $ is sjson's, not a field.
		Key map[string]json.RawMessage `json:"key"`
	} `json:"indexes"`
}

// readMetadata returns the GIN indexes that one database's metadata asks for, and a digest of that
// metadata (it includes each collection's uuid: a collection dropped and created again under the
// same name, so the same table name, changes it).
func readMetadata(ctx context.Context, conn *pgx.Conn, schema string) ([]ginIndex, string, error) {
	q := fmt.Sprintf(`SELECT _jsonb::text FROM %s`, pgx.Identifier{schema, metadataTable}.Sanitize())
	rows, _ := conn.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
	docs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, "", err
	}
	sort.Strings(docs)
	digest := sha256.New()

	var want []ginIndex
	for _, doc := range docs {
		digest.Write([]byte(doc))
		digest.Write([]byte{0})

		var c collectionMetadata
		if err := json.Unmarshal([]byte(doc), &c); err != nil || c.Table == "" {
			continue // not a shape this indexer knows: leave that collection alone
		}
		fields := map[string]bool{"_id": true}
		for _, index := range c.Indexes {
			for field := range index.Key {
				if !strings.HasPrefix(field, "$") {
					fields[field] = true
				}
			}
		}
		for field := range fields {
			if expr, ok := fieldExpr(field); ok {
				want = append(want, ginIndex{
					name:       ginIndexName(c.Table, field),
					table:      c.Table,
					collection: c.Name,
					field:      field,
					expr:       expr,
				})
			}
		}
	}
	sort.Slice(want, func(i, j int) bool { return want[i].name < want[j].name })
	return want, hex.EncodeToString(digest.Sum(nil)), nil
}

// reconcile drops the indexer's indexes in schema that are invalid (a build that failed) or no
// longer wanted, and creates the wanted ones that are missing.
func (ix *ginIndexer) reconcile(ctx context.Context, conn *pgx.Conn, schema string, want []ginIndex) error {
	rows, _ := conn.Query(ctx, `
		SELECT c.relname, i.indisvalid
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_am a ON a.oid = c.relam
		WHERE n.nspname = $1 AND a.amname = 'gin' AND c.relname ~ '_gin_[0-9a-f]{8}$'`,
		schema,
	)
	have := map[string]bool{} // name -> valid
	var name string
	var valid bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &valid}, func() error {
		have[name] = valid
		return nil
	}); err != nil {
		return err
	}

	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w.name] = true
	}

	var firstErr error
	for name, valid := range have {
		if valid && wanted[name] {
			continue
		}
		q := `DROP INDEX CONCURRENTLY IF EXISTS ` + pgx.Identifier{schema, name}.Sanitize()
		if _, err := conn.Exec(ctx, q); err != nil {
			firstErr = firstOf(firstErr, err)
			continue
		}
		delete(have, name)
		if !wanted[name] {
			ix.l.Info(fmt.Sprintf("GIN index dropped in %s: no index names its field any more", schema),
				"index", name)
		}
	}

	for _, w := range want {
		if _, exists := have[w.name]; exists {
			continue
		}
		q := fmt.Sprintf(
			`CREATE INDEX CONCURRENTLY IF NOT EXISTS %s ON %s USING gin ((%s)) WITH (fastupdate = off)`,
			pgx.Identifier{w.name}.Sanitize(), pgx.Identifier{schema, w.table}.Sanitize(), w.expr,
		)
		began := time.Now()
		if _, err := conn.Exec(ctx, q); err != nil {
			// A failed concurrent build leaves an INVALID index behind: the next attempt drops it.
			firstErr = firstOf(firstErr, err)
			continue
		}
		ix.l.Info(
			fmt.Sprintf("GIN index created for %s.%s field %s", schema, w.collection, w.field),
			"index", w.name, "took", time.Since(began).Round(time.Millisecond),
		)
	}
	return firstErr
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// isGone tells whether err says a schema or table does not exist (any more).
func isGone(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "3F000": // undefined_table, invalid_schema_name
		return true
	}
	return false
}

// fieldExpr returns the expression FerretDB's pushed-down equality uses for a top-level field,
// _jsonb -> 'field'; false for a dotted field, which FerretDB does not push down.
func fieldExpr(field string) (string, bool) {
	if field == "" || strings.ContainsRune(field, '.') {
		return "", false
	}
	return `_jsonb -> ` + quoteLiteral(field), true
}

// quoteLiteral returns s as an SQL string literal (FerretDB checks that
// standard_conforming_strings is on, so a backslash is not special).
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// ginIndexName is <table>_gin_<8 hex digits of sha256(table, field)>, cut to PostgreSQL's 63
// characters on the table's side; FerretDB's table names are ASCII.
func ginIndexName(table, field string) string {
	sum := sha256.Sum256([]byte(table + "\x00" + field))
	suffix := ginNameSuffix + hex.EncodeToString(sum[:4])
	if limit := maxIdentifierLen - len(suffix); len(table) > limit {
		table = table[:limit]
	}
	return table + suffix
}
