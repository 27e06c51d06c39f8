-- Owned user groups (accounts[].model: user_groups): the Cloudflare user
-- group scimflare created for each mapping key of an account. rec is
-- store.EncodeOwnedUserGroup, as bbolt's sync/userGroups bucket holds it.
CREATE TABLE sync_user_groups (
	account bytea NOT NULL,
	key     bytea NOT NULL,
	rec     bytea NOT NULL,
	PRIMARY KEY (account, key)
);
