-- User lookups read four columns of live users only. A partial covering
-- index holds exactly those, so PostgreSQL answers them from the index
-- (an index-only scan) without visiting the heap: measured with pgbench,
-- 32-id `= ANY` lookups on 1M users took about 30 % less time (0.15-0.23 ms
-- against 0.22-0.38 ms, prepared, warm buffers).
--
-- Costs: the index repeats those columns (about 80 MB for 1M users), and an
-- update of username, email or last_active is no longer HOT. For this
-- read-heavy API that is the right trade. Index-only scans need the
-- visibility map: seeding vacuums, and autovacuum keeps it current.
--
-- On a large, busy table, build it by hand first with
-- CREATE INDEX CONCURRENTLY (this migration then finds it and does nothing).
CREATE INDEX IF NOT EXISTS users_live_cover ON users (user_id)
    INCLUDE (username, email, last_active)
    WHERE deleted_at IS NULL;
