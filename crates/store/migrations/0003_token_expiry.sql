-- Tokens expire: `expires` is when a token stops being accepted (RFC 3339
-- UTC text, like every timestamp). Tokens issued before this migration
-- have none (NULL); the controller treats them as expiring `created` plus
-- its current token lifetime, so an upgrade does not leave eternal tokens.

ALTER TABLE tokens ADD COLUMN expires TEXT;
CREATE INDEX tokens_expires ON tokens (expires);
