-- TLS certificates (`drycc certs:add`): a PEM chain and its private key,
-- owned by the user who added them. A domain points at the certificate
-- attached to it (`drycc certs:attach`); the router serves that domain
-- over TLS with it (SNI). The key is never shown back.

CREATE TABLE certs (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    certificate TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);

ALTER TABLE domains ADD COLUMN certificate TEXT REFERENCES certs (name) ON DELETE SET NULL;
