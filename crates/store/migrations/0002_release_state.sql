-- Rollouts are judged by the reconciler, not by the request that started
-- them, so a release records where its rollout stands:
--   state               'pending' (written by the API, not judged yet),
--                       'succeeded' (every process of it became ready) or
--                       'failed' (timed out, crash-looped, superseded or
--                       refused by the engine; `failed` = 1 and `exception`
--                       holds the reason, as the API shows them);
--   previous_structure  the app's structure before a release that replaced
--                       it (JSON text, NULL when the release kept the
--                       structure), restored when the release fails, so
--                       the restore survives a controller crash.
-- Releases that existed before this migration rolled out as far as anyone
-- knows: they are `succeeded` unless marked failed.

ALTER TABLE releases ADD COLUMN state TEXT NOT NULL DEFAULT 'succeeded';
ALTER TABLE releases ADD COLUMN previous_structure TEXT;
UPDATE releases SET state = 'failed' WHERE failed <> 0;
CREATE INDEX releases_app_state ON releases (app, state);
