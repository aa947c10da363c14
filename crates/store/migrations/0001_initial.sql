-- Initial schema of the Drycc store.
--
-- Portable between SQLite and PostgreSQL on purpose: ids are UUID strings made
-- by the store, timestamps are RFC 3339 UTC text, integers are BIGINT,
-- booleans are BIGINT 0/1 (the sqlx Any driver cannot decode a SQLite BOOLEAN
-- column) and maps are JSON text. See the crate documentation.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    is_superuser BIGINT NOT NULL DEFAULT 0,
    password_hash TEXT NOT NULL,
    created TEXT NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created TEXT NOT NULL
);

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE apps (
    uuid TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL REFERENCES users (username),
    structure TEXT NOT NULL,
    restart_generations TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE TABLE builds (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    image TEXT NOT NULL,
    stack TEXT NOT NULL,
    sha TEXT NOT NULL,
    procfile TEXT NOT NULL,
    dockerfile TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE INDEX builds_app ON builds (app);

CREATE TABLE configs (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    env_values TEXT NOT NULL,
    cpu TEXT NOT NULL,
    memory TEXT NOT NULL,
    healthcheck TEXT NOT NULL,
    termination_grace_period TEXT NOT NULL,
    tags TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE INDEX configs_app ON configs (app);

CREATE TABLE releases (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    summary TEXT NOT NULL,
    build_uuid TEXT REFERENCES builds (uuid),
    config_uuid TEXT NOT NULL REFERENCES configs (uuid),
    failed BIGINT NOT NULL DEFAULT 0,
    exception TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    UNIQUE (app, version)
);

CREATE INDEX releases_build_uuid ON releases (build_uuid);

CREATE TABLE settings (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL UNIQUE REFERENCES apps (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    autoscale TEXT NOT NULL,
    routable BIGINT NOT NULL DEFAULT 1,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE TABLE app_perms (
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    created TEXT NOT NULL,
    PRIMARY KEY (app, username)
);

CREATE INDEX app_perms_username ON app_perms (username);
