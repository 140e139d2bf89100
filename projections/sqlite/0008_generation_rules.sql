-- The fingerprint of the SLA policies and calendars a view generation was first projected
-- with (`Rules::fingerprint`): `assist policies` and the SLA commands compare it with the
-- rules in force and say when the views need `assist rebuild`.
CREATE TABLE generation_rules (gen INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL);
