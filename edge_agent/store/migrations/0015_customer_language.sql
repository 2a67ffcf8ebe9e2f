-- The language a customer reads offers in (BCP 47, from the roster), for kiosks and screens.
ALTER TABLE customers ADD COLUMN language TEXT;
