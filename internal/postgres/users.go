package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"storefront/internal/shop"
)

const (
	sqlUsersByIDs = `SELECT user_id, username, email, last_active FROM users
WHERE user_id = ANY($1) AND deleted_at IS NULL`
	sqlUserByID = `SELECT user_id, username, email, last_active FROM users
WHERE user_id = $1 AND deleted_at IS NULL`
)

// stmtUsersByIDs is the coalesced user lookup, read by fetchUsers.
var stmtUsersByIDs = idsStatement{
	name:    "storefront_users_by_ids",
	sql:     sqlUsersByIDs,
	columns: []uint32{oidInt8, oidText, oidText, oidTimestamptz},
}

// User implements shop.UserService.
func (db *DB) User(ctx context.Context, id int64) (shop.User, error) {
	var (
		u     shop.User
		found bool
		err   error
	)
	if db.cfg.Coalesce {
		u, found, err = db.users.Get(ctx, id)
	} else {
		u, found, err = db.userByID(ctx, id)
	}
	if err != nil {
		return shop.User{}, translate(err)
	}
	if !found {
		return shop.User{}, errUserNotFound(id)
	}
	return u, nil
}

// UserAsync implements shop.UserService.
func (db *DB) UserAsync(id int64, deadline time.Time, r shop.Reply[shop.User]) {
	if db.cfg.Coalesce {
		db.users.Submit(id, deadline, r)
		return
	}
	goLookup(deadline, r, func(ctx context.Context) (shop.User, error) { return db.User(ctx, id) })
}

func errUserNotFound(id int64) error {
	return shop.Errorf(shop.ENOTFOUND, "user %d not found", id)
}

// userByID is the uncoalesced lookup: one query per call. (Kept apart from
// User so that the coalesced path's locals stay on the stack.)
func (db *DB) userByID(ctx context.Context, id int64) (u shop.User, found bool, err error) {
	ctx, cancel := db.withAcquireDeadline(ctx)
	defer cancel()
	err = db.queryRetry(ctx, func(r pgx.Rows) error {
		found = true
		return scanUser(r, &u)
	}, sqlUserByID, id)
	return u, found, err
}

// fetchUsers is the users coalescer's query: one "= ANY" statement for
// the batch's distinct ids, its rows decoded from the wire (wire.go).
func (db *DB) fetchUsers(ctx context.Context, ids []int64, found func(int64, shop.User, error)) error {
	return db.queryIDs(ctx, &stmtUsersByIDs, ids, func(v [][]byte) (err error) {
		var u shop.User
		if u.ID, err = int8Value(v[0]); err != nil {
			return err
		}
		u.Username, u.Email = string(v[1]), string(v[2])
		if u.LastActive, err = timestamptzValue(v[3]); err != nil {
			found(u.ID, shop.User{}, fmt.Errorf("user %d: last_active: %w", u.ID, err))
			return nil
		}
		found(u.ID, u, nil)
		return nil
	})
}

// userDest lists u's fields in the order the user queries select them.
func userDest(u *shop.User) []any {
	return []any{&u.ID, &u.Username, &u.Email, &u.LastActive}
}

func scanUser(r pgx.Rows, u *shop.User) error {
	return r.Scan(userDest(u)...)
}

// fetchUsersPipelined sends one prepared single-row query per id in a
// single pipelined round trip (one Sync per query, as pgx batches do). It
// is the alternative to the "= ANY" query, kept for measurement.
func (db *DB) fetchUsersPipelined(ctx context.Context, ids []int64, found func(int64, shop.User, error)) error {
	actx, cancel := context.WithTimeout(ctx, db.cfg.AcquireTimeout)
	conn, err := db.pool.Acquire(actx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Release()
	batch := &pgx.Batch{}
	for _, id := range ids {
		batch.Queue(sqlUserByID, id)
	}
	br := conn.SendBatch(ctx, batch)
	for _, id := range ids {
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return err
		}
		for rows.Next() {
			// last_active goes through pgtype so that an infinite one
			// fails this lookup only: a scan error would end the whole
			// pipeline.
			var u shop.User
			var lastActive pgtype.Timestamptz
			if err := rows.Scan(&u.ID, &u.Username, &u.Email, &lastActive); err != nil {
				rows.Close()
				br.Close()
				return err
			}
			if lastActive.InfinityModifier != pgtype.Finite {
				found(id, shop.User{}, fmt.Errorf("user %d: last_active: %w", id, errInfiniteTimestamp))
				continue
			}
			u.LastActive = lastActive.Time
			found(u.ID, u, nil)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			br.Close()
			return err
		}
	}
	return br.Close()
}
