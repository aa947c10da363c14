-- Platform events of an app (deploys, scaling, failed rollouts): written by
-- the controller, shown among the app's log lines. Engines only report
-- their processes' output. Removed with the app.

CREATE TABLE app_events (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- Order within the app: clocks can tie or step back, this cannot.
    seq BIGINT NOT NULL,
    created TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (app, seq)
);
