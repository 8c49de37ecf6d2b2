// Command ferretdb runs an embedded FerretDB (MongoDB wire protocol on top of PostgreSQL) for local
// development and tests; infra/infra.py builds and starts it, after the PostgreSQL it uses.
//
// It embeds the public github.com/FerretDB/FerretDB/ferretdb package instead of building
// cmd/ferretdb from the module zip: that command panics at start because the module zip lacks the
// generated build/version/version.txt, while the embeddable package does not need it.
// The embeddable package never starts the telemetry reporter and disables telemetry explicitly.
//
// Beside FerretDB runs the GIN indexer (gin.go), which gives every indexed field the index that
// FerretDB's equality queries can use.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	postgresqlURL := flag.String(
		"postgresql-url", "",
		"PostgreSQL URL, e.g. postgres://ferretdb@127.0.0.1:54321/ferretdb (required)",
	)
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	if *postgresqlURL == "" {
		logger.Error("--postgresql-url is required")
		os.Exit(2)
	}
	parsed, err := url.Parse(*postgresqlURL)
	if err != nil {
		logger.Error("--postgresql-url is not a URL", "error", err)
		os.Exit(2)
	}

	// SIGTERM (from infra.py down) and SIGINT cancel ctx; Run then closes listeners and connections.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: *postgresqlURL,
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	indexerDone := make(chan struct{})
	go func() {
		defer close(indexerDone)
		runGINIndexer(ctx, *postgresqlURL, logger.With("component", "gin-indexer"))
	}()

	logger.Info("FerretDB starting", "listen", *listenAddr, "postgresql", parsed.Redacted())
	err = f.Run(ctx)
	stop() // Run may also return by itself: stop the indexer either way
	<-indexerDone
	if err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
	logger.Info("FerretDB stopped")
}
