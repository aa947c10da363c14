-- Every app's processes run as a user of its own: `uid` is that user's id
-- (and its group's), allocated from the controller's configured range when
-- the app is created. Apps created before this migration have none (NULL)
-- until the controller's next start gives them one. UNIQUE: two apps never
-- share a user (NULLs do not collide on either engine).

ALTER TABLE apps ADD COLUMN uid BIGINT;
CREATE UNIQUE INDEX apps_uid ON apps (uid);
