-- Which revocations a CRL covers. Every transaction that revokes bumps one revision (the
-- row's lock makes revisions commit in the order they are taken), and each CRL records the
-- revision it was built from. So any replica, or a CA whose revocations another process
-- made (`latchkey rotate-admin`), can tell that a revocation is in no CRL yet, even when the
-- replica that made it died before building one.
CREATE TABLE crl_demand (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    revision  BIGINT  NOT NULL
);
ALTER TABLE crls ADD COLUMN covers BIGINT NOT NULL DEFAULT 0;
