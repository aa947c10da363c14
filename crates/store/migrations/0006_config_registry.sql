-- Credentials for the app's private image registry (`drycc registry:set
-- username=... password=...`): a JSON object, used to read image configs
-- and to pull images. Part of the config, so a change makes a release.

ALTER TABLE configs ADD COLUMN registry TEXT NOT NULL DEFAULT '{}';
