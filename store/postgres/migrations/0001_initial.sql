-- scimflare state, schema version 1: the same records BoltStore keeps.
--
-- Keys are bytea so that every byte a caller may send (invalid UTF-8, NUL)
-- is kept and compared exactly as bbolt does, and ORDER BY is bytewise
-- like bbolt's key order. rec columns hold the JSON records of package
-- store's encoders (store.EncodeUser & co.), byte for byte: a state copied
-- between backends reads back identically. Read them with
-- convert_from(rec, 'UTF8').

CREATE TABLE scim_users (
	id          bytea PRIMARY KEY,
	user_name   bytea NOT NULL,   -- store.Fold(userName)
	external_id bytea,            -- NULL when ""
	email       bytea,            -- store.Fold(email), NULL when ""
	rec         bytea NOT NULL,
	CONSTRAINT scim_users_user_name_key UNIQUE (user_name)
);
CREATE INDEX scim_users_external_id ON scim_users (external_id, id) WHERE external_id IS NOT NULL;
CREATE INDEX scim_users_email ON scim_users (email, id) WHERE email IS NOT NULL;

CREATE TABLE scim_groups (
	id           bytea PRIMARY KEY,
	display_name bytea NOT NULL,  -- store.Fold(displayName)
	external_id  bytea,
	rec          bytea NOT NULL,
	CONSTRAINT scim_groups_display_name_key UNIQUE (display_name)
);
CREATE INDEX scim_groups_external_id ON scim_groups (external_id, id) WHERE external_id IS NOT NULL;

-- One row per group -> member edge; since is kept to the nanosecond
-- (timestamptz has microseconds) as Unix seconds and nanoseconds.
CREATE TABLE scim_members (
	group_id    bytea NOT NULL,
	member_id   bytea NOT NULL,
	member_type text NOT NULL CHECK (member_type IN ('User', 'Group')),
	since_s     bigint NOT NULL,
	since_ns    integer NOT NULL,
	PRIMARY KEY (group_id, member_id)
);
CREATE INDEX scim_members_member ON scim_members (member_id, group_id);

CREATE TABLE scim_tokens (
	name bytea PRIMARY KEY,
	rec  bytea NOT NULL
);

CREATE TABLE sync_ledger (
	account bytea NOT NULL,
	email   bytea NOT NULL,       -- store.Fold(email)
	rec     bytea NOT NULL,
	PRIMARY KEY (account, email)
);

CREATE TABLE sync_member_cache (
	account bytea NOT NULL,
	email   bytea NOT NULL,
	rec     bytea NOT NULL,
	PRIMARY KEY (account, email)
);

CREATE TABLE sync_member_scans (
	account    bytea PRIMARY KEY,
	scanned_at text NOT NULL      -- RFC 3339 with nanoseconds, UTC
);

CREATE TABLE sync_grants (
	id  bytea PRIMARY KEY,
	rec bytea NOT NULL
);

-- The audit trail: rec is the hashed canonical encoding, byte for byte.
CREATE TABLE sync_audit (
	seq bigint PRIMARY KEY,
	rec bytea NOT NULL
);

-- The head of the chain (last seq and hash), one row. Appenders lock this
-- table before their snapshot, so appends queue instead of conflicting.
CREATE TABLE sync_audit_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq  bigint NOT NULL,
	hash text NOT NULL
);
INSERT INTO sync_audit_head (seq, hash) VALUES (0, '');

-- The trail is append-only: scimflare never updates or deletes a record,
-- and the database refuses it from anyone else short of disabling the
-- trigger (which VerifyAudit would then catch).
CREATE FUNCTION sync_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the scimflare audit trail is append-only';
END $$;
CREATE TRIGGER sync_audit_append_only BEFORE UPDATE OR DELETE ON sync_audit
	FOR EACH ROW EXECUTE FUNCTION sync_audit_append_only();

CREATE TABLE sync_status (
	key   bytea PRIMARY KEY,
	value bytea NOT NULL
);
