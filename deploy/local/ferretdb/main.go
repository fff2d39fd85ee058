// Command ferretdb runs FerretDB 1.24 (MongoDB wire protocol, SQLite backend)
// for local development and integration tests.
//
// It wraps the embeddable package github.com/FerretDB/FerretDB/ferretdb
// because `go install .../cmd/ferretdb` panics at start without generated
// version files (upstream issue 2982). Telemetry is disabled by that package.
//
// Flags (each also settable by environment variable):
//
//	-listen     FERRETDB_LISTEN      TCP address, default 127.0.0.1:37017
//	-sqlite-url FERRETDB_SQLITE_URL  SQLite URI of an existing directory ending in '/'
//	-log-level  FERRETDB_LOG_LEVEL   debug, info, warn or error (default warn)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/ferretdb"
)

// quietResponses drops FerretDB's per-request dumps of error responses, which it logs
// at WARN with the full message for every command answering ok:0 (a duplicate key,
// or pymongo's endSessions on every client close, which FerretDB 1.x lacks). The
// client receives those errors anyway; run with -log-level info or debug to see them.
type quietResponses struct{ slog.Handler }

func (q quietResponses) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn &&
		(strings.HasPrefix(r.Message, "Response header: ") || strings.HasPrefix(r.Message, "Response message:")) {
		return nil
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietResponses) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietResponses{q.Handler.WithAttrs(attrs)}
}

func (q quietResponses) WithGroup(name string) slog.Handler {
	return quietResponses{q.Handler.WithGroup(name)}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	listen := flag.String("listen", envOr("FERRETDB_LISTEN", "127.0.0.1:37017"), "TCP listen address")
	sqliteURL := flag.String("sqlite-url", envOr("FERRETDB_SQLITE_URL", "file:data/"),
		"SQLite URI of an existing directory, e.g. file:/path/dir/")
	logLevel := flag.String("log-level", envOr("FERRETDB_LOG_LEVEL", "warn"), "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: bad log level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if level >= slog.LevelWarn {
		h = quietResponses{h}
	}
	logger := slog.New(h)
	slog.SetDefault(logger)

	// Reported as buildInfo.ferretdbVersion (otherwise "unknown" in embedded builds);
	// keep in sync with go.mod.
	version.Get().Version = "v1.24.2"

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		logger.Error("ferretdb: cannot start", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Printed at warn so it is visible at the default level; the address is
	// only known after Run has started the listener, hence no MongoDBURI here.
	logger.Warn("ferretdb: serving", "listen", *listen, "sqlite_url", *sqliteURL, "pid", os.Getpid())

	if err := f.Run(ctx); err != nil {
		logger.Error("ferretdb: run failed", "error", err)
		os.Exit(1)
	}
	logger.Warn("ferretdb: stopped")
}
