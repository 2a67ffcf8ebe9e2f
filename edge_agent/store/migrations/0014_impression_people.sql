-- People reached: how many people a camera counted in front of the touchpoint when the impression was on the glass
-- (where a camera watches it; NULL elsewhere). A number, never an image.
ALTER TABLE impressions ADD COLUMN people INTEGER CHECK (people >= 0);
