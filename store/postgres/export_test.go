package postgres

import "github.com/jackc/pgx/v5"

// SetTxHook makes fn run first in every write transaction of s (tests
// only): it lets a test hold locks inside the store's own transaction.
func (s *Store) SetTxHook(fn func(attempt int, tx pgx.Tx) error) { s.txHook = fn }
