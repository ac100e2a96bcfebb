package orders

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Main runs the orders command line (the image's entrypoint is `rehearse orders`):
//
//	serve   [--listen :8080] [--version v1|v2|v3|v2-bad] [--dsn URL] [--drain 10s] [--grace 15s]
//	migrate up|down NAME [--dsn URL] [--batch 500]      NAME: create, expand, backfill, contract
//
// --version defaults to $ORDERS_VERSION, --dsn to $DATABASE_URL. ctx ends on SIGTERM.
func Main(ctx context.Context, args []string) error {
	if len(args) < 1 {
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:])
	case "migrate":
		return migrate(ctx, args[1:])
	}
	return errUsage
}

var errUsage = fmt.Errorf("usage: orders serve [flags] | orders migrate up|down NAME [flags]")

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", ":8080", "listen address")
	version := fs.String("version", os.Getenv(VersionEnv), "release to serve: v1, v2, v3 or v2-bad")
	dsn := fs.String("dsn", os.Getenv("DATABASE_URL"), "PostgreSQL connection URL, or memory: (orders kept in this process only)")
	drain := fs.Duration("drain", 10*time.Second, "after SIGTERM, keep serving this long with readiness failing")
	grace := fs.Duration("grace", 15*time.Second, "then wait this long for requests in flight")
	_ = fs.Parse(args)
	v, err := ParseVersion(*version)
	if err != nil {
		return err
	}
	var store Store = newMemStore()
	if *dsn != "memory:" {
		if store, err = OpenPG(context.WithoutCancel(ctx), *dsn, v); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Printf("orders %s listening on %s", v, ln.Addr())
	err = NewServer(store, v).Serve(ctx, ln, *drain, *grace)
	log.Printf("orders %s stopped: %v", v, err)
	return err
}

func migrate(ctx context.Context, args []string) error {
	if len(args) < 2 || (args[0] != "up" && args[0] != "down") {
		return errUsage
	}
	fs := flag.NewFlagSet("migrate", flag.ExitOnError)
	dsn := fs.String("dsn", os.Getenv("DATABASE_URL"), "PostgreSQL connection URL")
	batch := fs.Int("batch", 500, "rows per backfill batch")
	_ = fs.Parse(args[2:])
	pool, err := connect(ctx, *dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	m := &Migrator{Pool: pool, BatchSize: *batch, Log: os.Stdout}
	if args[0] == "up" {
		err = m.Up(ctx, args[1])
	} else {
		err = m.Down(ctx, args[1])
	}
	if err != nil {
		return err
	}
	applied, err := m.Applied(ctx)
	fmt.Printf("migrate: schema now at %v\n", applied)
	return err
}

// connect waits up to three minutes for the database: the sample's first schema Job starts with the
// database members (DeploySample), before the primary accepts connections.
func connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return pool, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("database unreachable: %w", err)
		}
		time.Sleep(time.Second)
	}
}
