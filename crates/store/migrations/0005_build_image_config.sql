-- What an image build runs, read from the image's config when the build is
-- made (ENTRYPOINT, CMD, exposed ports, digest) as JSON, so that deploys
-- never need the registry again. NULL for source builds.

ALTER TABLE builds ADD COLUMN image_config TEXT;
