-- The ledger tally: per account, the number of managed keys in its ledger
-- (the sum of the lengths of each record's "managed" list), the removal
-- guard's percent base. A targeted run reads it instead of counting the
-- whole ledger. Statement-level triggers keep it in the transaction of
-- every write to sync_ledger, whoever makes it (Commit, Load's COPY), one
-- aggregate per statement; concurrent writers serialize on the account's
-- tally row.
CREATE TABLE sync_ledger_tally (
	account bytea PRIMARY KEY,
	managed bigint NOT NULL
);

CREATE FUNCTION scimflare_managed_len(rec bytea) RETURNS bigint
	LANGUAGE sql IMMUTABLE STRICT
	AS $$ SELECT coalesce(jsonb_array_length(convert_from(rec, 'UTF8')::jsonb -> 'managed'), 0)::bigint $$;

INSERT INTO sync_ledger_tally (account, managed)
	SELECT account, sum(scimflare_managed_len(rec)) FROM sync_ledger GROUP BY account;

CREATE FUNCTION scimflare_ledger_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO sync_ledger_tally AS t (account, managed)
			SELECT account, sum(scimflare_managed_len(rec)) FROM tally_new GROUP BY account ORDER BY account
			ON CONFLICT (account) DO UPDATE SET managed = t.managed + EXCLUDED.managed;
	ELSIF TG_OP = 'UPDATE' THEN
		INSERT INTO sync_ledger_tally AS t (account, managed)
			SELECT account, sum(n) FROM (
				SELECT account, scimflare_managed_len(rec) AS n FROM tally_new
				UNION ALL
				SELECT account, -scimflare_managed_len(rec) FROM tally_old) d
			GROUP BY account ORDER BY account
			ON CONFLICT (account) DO UPDATE SET managed = t.managed + EXCLUDED.managed;
	ELSE
		INSERT INTO sync_ledger_tally AS t (account, managed)
			SELECT account, -sum(scimflare_managed_len(rec)) FROM tally_old GROUP BY account ORDER BY account
			ON CONFLICT (account) DO UPDATE SET managed = t.managed + EXCLUDED.managed;
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER sync_ledger_tally_insert AFTER INSERT ON sync_ledger
	REFERENCING NEW TABLE AS tally_new FOR EACH STATEMENT EXECUTE FUNCTION scimflare_ledger_tally();
CREATE TRIGGER sync_ledger_tally_update AFTER UPDATE ON sync_ledger
	REFERENCING OLD TABLE AS tally_old NEW TABLE AS tally_new FOR EACH STATEMENT EXECUTE FUNCTION scimflare_ledger_tally();
CREATE TRIGGER sync_ledger_tally_delete AFTER DELETE ON sync_ledger
	REFERENCING OLD TABLE AS tally_old FOR EACH STATEMENT EXECUTE FUNCTION scimflare_ledger_tally();
