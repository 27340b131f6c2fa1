-- One CRL builder at a time across replicas: a lease per issuer, taken before building and
-- given back after; it expires by itself if its holder dies.
CREATE TABLE crl_leases (
    issuer_id   BIGINT  PRIMARY KEY REFERENCES issuers (id),
    holder      TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL
);
