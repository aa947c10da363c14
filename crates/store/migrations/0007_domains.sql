-- Custom domains of an app (`drycc domains:add`): the router answers for
-- them as for `<app>.<DRYCC_DOMAIN>`. A domain belongs to at most one app;
-- removed with the app.

CREATE TABLE domains (
    uuid TEXT PRIMARY KEY,
    app TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    domain TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

CREATE INDEX domains_app ON domains (app);
