package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"storefront/internal/postgres"
	"storefront/internal/shop"
)

// TestRefusedConnectionIsUnavailable checks that a lookup whose connection
// PostgreSQL refuses (here: the database no longer accepts connections,
// SQLSTATE 55000, as after a rotated password or a dropped database) is
// EUNAVAILABLE, a 503, like an unreachable server: not EINTERNAL.
func TestRefusedConnectionIsUnavailable(t *testing.T) {
	for _, coalesce := range []bool{true, false} {
		name := "coalesce=off"
		if coalesce {
			name = "coalesce=on"
		}
		t.Run(name, func(t *testing.T) {
			var dsn string
			// One connection: once it is gone, the next lookup must connect.
			db := openDB(t, func(c *postgres.Config) { c.Coalesce, c.MaxConns, dsn = coalesce, 1, c.DSN })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := db.User(ctx, 1); err != nil && shop.ErrorCode(err) != shop.ENOTFOUND {
				t.Fatalf("lookup before the refusal: %v", err)
			}

			// The refusal is set from another database: PostgreSQL will
			// not disallow connections to the one a session is in.
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			dbname := cfg.Database
			cfg.Database = "postgres"
			admin, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(context.Background())
			if _, err := admin.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{dbname}.Sanitize()+` ALLOW_CONNECTIONS false`); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE datname = $1`, dbname); err != nil {
				t.Fatal(err)
			}

			// The pool's connections are gone and new ones are refused.
			for _, id := range []int64{1, 2, 3} {
				_, err := db.User(ctx, id)
				if code := shop.ErrorCode(err); code != shop.EUNAVAILABLE {
					t.Errorf("user %d with connections refused: code %q (%v), want %q", id, code, err, shop.EUNAVAILABLE)
				}
			}
			if _, err := db.Stock(ctx, 1); shop.ErrorCode(err) != shop.EUNAVAILABLE {
				t.Errorf("stock with connections refused: %v, want %q", err, shop.EUNAVAILABLE)
			}
		})
	}
}
