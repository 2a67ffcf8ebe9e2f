-- Video assets: what the bundle says of each video (codec, frame size, duration), checked against the file
-- once it is downloaded and against each screen's profile before it is played.
ALTER TABLE assets ADD COLUMN codec TEXT;
ALTER TABLE assets ADD COLUMN width INTEGER;
ALTER TABLE assets ADD COLUMN height INTEGER;
ALTER TABLE assets ADD COLUMN duration_s REAL;
