-- Stock lookups read a product's existence (live products only) and its
-- rows in inventory. Two indexes let PostgreSQL answer both from indexes
-- alone (index-only scans) instead of visiting both heaps:
--
--   * products_live: the ids of live products, a partial index, about
--     2 MB per 100k products;
--   * inventory's primary key now carries on_hand and reserved (INCLUDE),
--     so it replaces the old key instead of adding a second index.
--
-- Measured with pgbench (prepared, warm buffers, one client), 32-id stock
-- queries on 100k products: 0.29-0.33 ms against 0.42-0.49 ms with
-- index-only scans turned off.
--
-- Costs: an update of on_hand or reserved is no longer HOT (it writes a
-- new index entry), and index-only scans need the visibility map, which
-- seeding's VACUUM and autovacuum keep current. A page that is not
-- all-visible is still answered correctly, from the heap.
--
-- On a large, busy table, build both by hand first with
-- CREATE [UNIQUE] INDEX CONCURRENTLY under these names; this migration then
-- finds them and only swaps the key, which takes a brief lock.
CREATE INDEX IF NOT EXISTS products_live ON products (product_id)
    WHERE deleted_at IS NULL;

CREATE UNIQUE INDEX IF NOT EXISTS inventory_key_cover ON inventory (product_id, warehouse_id)
    INCLUDE (on_hand, reserved);

ALTER TABLE inventory
    DROP CONSTRAINT inventory_pkey,
    ADD CONSTRAINT inventory_pkey PRIMARY KEY USING INDEX inventory_key_cover;
