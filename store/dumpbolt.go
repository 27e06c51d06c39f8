package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Location implements Backend: the state file's path.
func (s *BoltStore) Location() string { return s.path }

// splitPair reverses pairKey.
func splitPair(k []byte) (first, second string, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", "", false
	}
	return string(k[w : w+int(n)]), string(k[w+int(n):]), true
}

// Dump implements Backend from one read transaction.
func (s *BoltStore) Dump(fn func(DumpItem) error) error {
	return s.view(func(r readTx) error { return r.dump(fn) })
}

func (r readTx) dump(fn func(DumpItem) error) error {
	each := func(b []byte, f func(k, v []byte) error) error {
		c := r.bucket(b).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if err := f(k, v); err != nil {
				return err
			}
		}
		return nil
	}
	steps := []func() error{
		func() error {
			return each(bucketUsers, func(k, v []byte) error {
				u, err := decodeUser(v)
				if err != nil {
					return fmt.Errorf("user %q: %w", k, err)
				}
				return fn(DumpItem{User: &u})
			})
		},
		func() error {
			return each(bucketGroups, func(k, v []byte) error {
				g, err := decodeGroup(v)
				if err != nil {
					return fmt.Errorf("group %q: %w", k, err)
				}
				return fn(DumpItem{Group: &g})
			})
		},
		func() error {
			return each(bucketMembers, func(k, v []byte) error {
				gid, mid, ok := splitPair(k)
				t, since, err := decodeEdge(v)
				if !ok || err != nil {
					return fmt.Errorf("membership edge %x: %w", k, errCorruptEdgeValue)
				}
				return fn(DumpItem{Member: &DumpedMember{GroupID: gid, Membership: Membership{MemberRef: MemberRef{ID: mid, Type: t}, Since: since}}})
			})
		},
		func() error {
			return each(bucketTokens, func(k, v []byte) error {
				t, err := decodeToken(v)
				if err != nil {
					return fmt.Errorf("token %q: %w", k, err)
				}
				return fn(DumpItem{Token: &t})
			})
		},
		func() error {
			return each(bucketLedger, func(k, v []byte) error {
				e, err := DecodeLedger(v)
				if err != nil {
					return fmt.Errorf("ledger key %x: %w", k, err)
				}
				return fn(DumpItem{Ledger: &e})
			})
		},
		func() error {
			return each(bucketMemberCache, func(k, v []byte) error {
				m, err := DecodeCached(v)
				if err != nil {
					return fmt.Errorf("member cache key %x: %w", k, err)
				}
				return fn(DumpItem{Cached: &m})
			})
		},
		func() error {
			return each(bucketCacheScans, func(k, v []byte) error {
				t, err := ParseScanTime(string(k), string(v))
				if err != nil {
					return err
				}
				return fn(DumpItem{CacheScan: &CacheScan{AccountID: string(k), ScannedAt: t}})
			})
		},
		func() error {
			return each(bucketGrants, func(k, v []byte) error {
				g, err := decodeGrant(v)
				if err != nil {
					return fmt.Errorf("grant %s: %w", k, err)
				}
				return fn(DumpItem{Grant: &g})
			})
		},
		func() error {
			return each(bucketAudit, func(k, v []byte) error {
				a, err := DecodeAudit(v)
				if err != nil {
					return fmt.Errorf("audit record %d: %w", decodeUint(k), err)
				}
				return fn(DumpItem{Audit: &a})
			})
		},
		func() error {
			return each(bucketStatus, func(k, v []byte) error {
				return fn(DumpItem{Status: &StatusEntry{Key: string(k), Value: append([]byte{}, v...)}})
			})
		},
		func() error {
			if r.tx.Bucket(bucketUserGroups) == nil {
				return nil // a file from before user groups, opened read-only
			}
			return each(bucketUserGroups, func(k, v []byte) error {
				g, err := DecodeOwnedUserGroup(v)
				if err != nil {
					return fmt.Errorf("owned user group key %x: %w", k, err)
				}
				return fn(DumpItem{OwnedUserGroup: &g})
			})
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// loadChunk is how many records Load writes per bbolt transaction. bbolt
// splits a node only when a transaction commits, so a million keys put in
// one transaction pile into a few huge nodes and every put that does not
// append moves half of one: quadratic. 20k keeps nodes near their size.
const loadChunk = 20000

// Load implements Backend. The records are committed in transactions of
// loadChunk; if anything fails after the first commit, every bucket is
// emptied again, so the file is left as empty as it was found. Nobody
// else may write to the store meanwhile (it is the target of a copy or a
// backup; Open's file lock keeps other processes out).
func (s *BoltStore) Load(fill func(put func(DumpItem) error) error) error {
	err := s.db.View(func(tx *bolt.Tx) error { return writeTx{newReadTx(tx)}.checkEmpty(s.path) })
	if err != nil {
		return err
	}
	l := &boltLoader{tally: ledgerTally{}}
	var tx *bolt.Tx
	committed := false
	fail := func(err error) error {
		if tx != nil {
			_ = tx.Rollback()
		}
		if committed {
			if werr := s.wipe(); werr != nil {
				return fmt.Errorf("%w (and emptying %s again failed: %v)", err, s.path, werr)
			}
		}
		return err
	}
	n := 0
	put := func(it DumpItem) error {
		if tx == nil {
			var err error
			if tx, err = s.db.Begin(true); err != nil {
				return err
			}
			l.w = newWriteTx(tx)
		}
		if err := l.put(it); err != nil {
			return err
		}
		if n++; n%loadChunk == 0 {
			if err := l.finish(); err != nil {
				return err
			}
			err := tx.Commit()
			tx = nil
			if err != nil {
				return err
			}
			committed = true
		}
		return nil
	}
	if err := fill(put); err != nil {
		return fail(err)
	}
	if tx == nil {
		var err error
		if tx, err = s.db.Begin(true); err != nil {
			return fail(err)
		}
		l.w = newWriteTx(tx)
	}
	if err := l.finish(); err != nil {
		return fail(err)
	}
	err = tx.Commit()
	tx = nil
	if err != nil {
		return fail(err)
	}
	return nil
}

// finish writes the ledger tally and the audit head reached so far.
func (l *boltLoader) finish() error {
	if err := l.w.flushTally(l.tally); err != nil {
		return err
	}
	clear(l.tally)
	if err := l.w.put(bucketSyncMeta, keyAuditSeq, encodeUint(l.seq)); err != nil {
		return err
	}
	return l.w.put(bucketSyncMeta, keyAuditHash, []byte(l.hash))
}

// wipe empties every bucket and resets the counters and the audit head.
func (s *BoltStore) wipe() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range append(allBuckets[1:], syncBuckets[1:]...) {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketUserGroups); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		if _, err := tx.CreateBucket(bucketUserGroups); err != nil {
			return err
		}
		for _, k := range [][]byte{keyUserCount, keyGroupCount} {
			if err := tx.Bucket(bucketMeta).Delete(k); err != nil {
				return err
			}
		}
		for _, k := range [][]byte{keyAuditSeq, keyAuditHash} {
			if err := tx.Bucket(bucketSyncMeta).Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (w writeTx) checkEmpty(where string) error {
	for _, b := range append(allBuckets[1:], syncBuckets[1:]...) {
		if k, _ := w.bucket(b).Cursor().First(); k != nil {
			return fmt.Errorf("%s already holds state (%s is not empty): %w", where, b, ErrNotEmpty)
		}
	}
	if ug := w.tx.Bucket(bucketUserGroups); ug != nil {
		if k, _ := ug.Cursor().First(); k != nil {
			return fmt.Errorf("%s already holds state (%s is not empty): %w", where, bucketUserGroups, ErrNotEmpty)
		}
	}
	if decodeUint(w.bucket(bucketSyncMeta).Get(keyAuditSeq)) != 0 {
		return fmt.Errorf("%s already holds an audit trail: %w", where, ErrNotEmpty)
	}
	return nil
}

type boltLoader struct {
	w     writeTx
	seq   uint64
	hash  string
	tally ledgerTally
}

func (l *boltLoader) put(it DumpItem) error {
	w := l.w
	switch {
	case it.User != nil:
		u := *it.User
		if !validID(u.ID) || w.userExists(u.ID) || w.groupExists(u.ID) {
			return fmt.Errorf("load user %q: the id is invalid or taken: %w", u.ID, ErrInvalid)
		}
		if err := validateUser(&u); err != nil {
			return err
		}
		if err := w.claimUnique(bucketUserNames, u.ID, "", u.UserName, "userName"); err != nil {
			return err
		}
		if err := w.reindex(bucketUserExtIDs, u.ID, "", u.ExternalID); err != nil {
			return err
		}
		if err := w.reindex(bucketUserEmails, u.ID, "", Fold(u.Email)); err != nil {
			return err
		}
		if err := w.putUser(u); err != nil {
			return err
		}
		return w.addCount(bucketMeta, keyUserCount, 1)
	case it.Group != nil:
		g := *it.Group
		if !validID(g.ID) || w.userExists(g.ID) || w.groupExists(g.ID) {
			return fmt.Errorf("load group %q: the id is invalid or taken: %w", g.ID, ErrInvalid)
		}
		if err := validateGroup(&g); err != nil {
			return err
		}
		if err := w.claimUnique(bucketGroupNames, g.ID, "", g.DisplayName, "displayName"); err != nil {
			return err
		}
		if err := w.reindex(bucketGroupExtIDs, g.ID, "", g.ExternalID); err != nil {
			return err
		}
		if err := w.putGroup(g); err != nil {
			return err
		}
		return w.addCount(bucketMeta, keyGroupCount, 1)
	case it.Member != nil:
		m := it.Member
		if !w.groupExists(m.GroupID) {
			return fmt.Errorf("load membership of %q in group %q: %w", m.ID, m.GroupID, ErrMemberNotFound)
		}
		ref, err := w.resolveMember(m.GroupID, m.MemberRef)
		if err != nil {
			return err
		}
		if w.isMember(m.GroupID, ref.ID) {
			return nil
		}
		edge := encodeEdge(ref.Type, m.Since)
		if err := w.put(bucketMembers, pairKey(m.GroupID, ref.ID), edge); err != nil {
			return err
		}
		if err := w.put(bucketMemberOf, pairKey(ref.ID, m.GroupID), edge); err != nil {
			return err
		}
		return w.addCount(bucketMemberCounts, []byte(m.GroupID), 1)
	case it.Token != nil:
		return w.putToken(*it.Token)
	case it.Ledger != nil:
		return w.putLedger(l.tally, *it.Ledger)
	case it.Cached != nil:
		v, err := EncodeCached(*it.Cached)
		if err != nil {
			return err
		}
		return w.put(bucketMemberCache, accountKey(it.Cached.AccountID, it.Cached.Email), v)
	case it.CacheScan != nil:
		if err := checkAccount(it.CacheScan.AccountID); err != nil {
			return err
		}
		return w.put(bucketCacheScans, []byte(it.CacheScan.AccountID), []byte(FormatScanTime(it.CacheScan.ScannedAt)))
	case it.Grant != nil:
		v, err := EncodeGrant(*it.Grant)
		if err != nil {
			return err
		}
		return w.put(bucketGrants, []byte(it.Grant.ID), v)
	case it.Audit != nil:
		a, err := ResealAudit(*it.Audit)
		if err != nil {
			return err
		}
		if a.Seq != l.seq+1 || it.Audit.PrevHash != l.hash {
			return auditBroken("audit record %d does not follow record %d: the trail being loaded is broken", a.Seq, l.seq)
		}
		l.seq, l.hash = a.Seq, a.Hash
		return w.put(bucketAudit, seqKey(a.Seq), a.Bytes)
	case it.Status != nil:
		if err := CheckStatusKey(it.Status.Key); err != nil {
			return err
		}
		return w.put(bucketStatus, []byte(it.Status.Key), it.Status.Value)
	case it.OwnedUserGroup != nil:
		g := *it.OwnedUserGroup
		if err := CheckOwnedUserGroup(g); err != nil {
			return err
		}
		v, err := EncodeOwnedUserGroup(g)
		if err != nil {
			return err
		}
		return w.put(bucketUserGroups, pairKey(g.AccountID, g.Key), v)
	}
	return fmt.Errorf("load: empty dump item: %w", ErrInvalid)
}
