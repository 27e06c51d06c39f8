-- Leadership leases: one row per lease name. epoch grows by one on every
-- acquisition, so a holder's (holder, epoch) names one term; a write
-- fenced by it commits only while that term lasts. Times are the
-- database's clock, the one clock every replica shares.
CREATE TABLE scimflare_leases (
	name       text PRIMARY KEY,
	holder     text NOT NULL,
	epoch      bigint NOT NULL,
	expires_at timestamptz NOT NULL
);
