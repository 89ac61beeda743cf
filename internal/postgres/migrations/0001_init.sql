-- Initial schema. Every hot-path table is keyed by the id it is looked up by
-- (user_id, product_id), so the tables can later be distributed on that key
-- without cross-key joins.

CREATE TABLE users (
    user_id     bigint      PRIMARY KEY,
    username    text        NOT NULL,
    email       text        NOT NULL,
    last_active timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE products (
    product_id  bigint      PRIMARY KEY,
    sku         text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    price_cents bigint      NOT NULL CHECK (price_cents >= 0),
    currency    char(3)     NOT NULL,
    category    text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE warehouses (
    warehouse_id bigint PRIMARY KEY,
    code         text   NOT NULL UNIQUE,
    name         text   NOT NULL
);

CREATE TABLE inventory (
    product_id   bigint      NOT NULL,
    warehouse_id bigint      NOT NULL REFERENCES warehouses (warehouse_id),
    on_hand      integer     NOT NULL CHECK (on_hand >= 0),
    reserved     integer     NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, warehouse_id)
);
