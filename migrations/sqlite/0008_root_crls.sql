-- CRLs the root signs (they list revoked intermediates), numbered apart from the
-- intermediates' CRLs: the root key may be kept offline, and a CRL signed there cannot see
-- the numbers the CA used. A root CRL's number is its signing time in seconds, raised above
-- the newest stored one when needed, so numbers grow wherever the CRL is signed.
CREATE TABLE root_crls (
    issuer_id    BIGINT  NOT NULL REFERENCES issuers (id),
    number       BIGINT  NOT NULL,
    this_update  BIGINT  NOT NULL,
    next_update  BIGINT  NOT NULL,
    der          BLOB   NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (issuer_id, number)
);
