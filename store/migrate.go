package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrCopyMismatch: after Copy, the target does not hold what the source
// holds.
var ErrCopyMismatch = errors.New("copy does not match its source")

// Summary counts the records of a state by kind and fingerprints them:
// two states with equal Summaries hold the same records (ids, meta, Since
// times, audit hashes and all), whatever order their backends keep them in.
type Summary struct {
	Users, Groups, Members, Tokens, Ledger, Cached, CacheScans, Grants, Audit, Status int
	// UserGroups counts the owned user groups (not in String: a state
	// without user groups reads as it always did).
	UserGroups int
	// AuditSeq and AuditHash are the last audit record's.
	AuditSeq  uint64
	AuditHash string
	// Digest is the sum, lane by lane, of the sha256 of every record's
	// canonical encoding: order-independent, and any changed, missing or
	// extra record changes it.
	Digest [4]uint64
}

func (s Summary) String() string {
	return fmt.Sprintf("%d users, %d groups, %d memberships, %d tokens, %d ledger entries, %d cached members, %d member listings, %d grants, %d audit records, %d status entries",
		s.Users, s.Groups, s.Members, s.Tokens, s.Ledger, s.Cached, s.CacheScans, s.Grants, s.Audit, s.Status)
}

func (s *Summary) add(it DumpItem) error {
	switch {
	case it.User != nil:
		s.Users++
	case it.Group != nil:
		s.Groups++
	case it.Member != nil:
		s.Members++
	case it.Token != nil:
		s.Tokens++
	case it.Ledger != nil:
		s.Ledger++
	case it.Cached != nil:
		s.Cached++
	case it.CacheScan != nil:
		s.CacheScans++
	case it.Grant != nil:
		s.Grants++
	case it.Audit != nil:
		s.Audit++
		s.AuditSeq, s.AuditHash = it.Audit.Seq, it.Audit.Hash
	case it.Status != nil:
		s.Status++
	case it.OwnedUserGroup != nil:
		s.UserGroups++
	}
	// Times are compared as instants in UTC: a backend may keep the zone
	// a caller passed or not, and no reader depends on it.
	b, err := json.Marshal(canonicalItem(it))
	if err != nil {
		return fmt.Errorf("fingerprint record: %w", err)
	}
	h := sha256.Sum256(b)
	for i := range s.Digest {
		s.Digest[i] += binary.BigEndian.Uint64(h[8*i:])
	}
	return nil
}

func canonicalItem(it DumpItem) DumpItem {
	if it.User != nil {
		u := *it.User
		u.ActiveSince, u.Meta.Created, u.Meta.LastModified = u.ActiveSince.UTC(), u.Meta.Created.UTC(), u.Meta.LastModified.UTC()
		it.User = &u
	}
	if it.Group != nil {
		g := *it.Group
		g.Meta.Created, g.Meta.LastModified = g.Meta.Created.UTC(), g.Meta.LastModified.UTC()
		it.Group = &g
	}
	if it.Member != nil {
		m := *it.Member
		m.Since = m.Since.UTC()
		it.Member = &m
	}
	if it.Ledger != nil {
		e := *it.Ledger
		e.UpdatedAt, e.MissingSince = e.UpdatedAt.UTC(), e.MissingSince.UTC()
		it.Ledger = &e
	}
	if it.CacheScan != nil {
		c := *it.CacheScan
		c.ScannedAt = c.ScannedAt.UTC()
		it.CacheScan = &c
	}
	if it.Grant != nil {
		g := *it.Grant
		g.Start, g.End, g.RevokedAt = g.Start.UTC(), g.End.UTC(), g.RevokedAt.UTC()
		it.Grant = &g
	}
	if it.OwnedUserGroup != nil {
		g := *it.OwnedUserGroup
		g.UpdatedAt = g.UpdatedAt.UTC()
		it.OwnedUserGroup = &g
	}
	if it.Token != nil {
		t := *it.Token
		t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
		it.Token = &t
	}
	return it
}

// Summarize reads b's whole state from one snapshot.
func Summarize(ctx context.Context, b Backend) (Summary, error) {
	var s Summary
	err := b.Dump(func(it DumpItem) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return s.add(it)
	})
	if err != nil {
		return Summary{}, fmt.Errorf("read %s: %w", b.Location(), err)
	}
	return s, nil
}

// Copy copies the whole state of from into to, which must be empty
// (ErrNotEmpty otherwise, with nothing written): users and groups with
// their ids and meta, memberships with their Since times, tokens, the
// ledger, the member cache, grants, the audit trail with every hash
// intact, and status entries. The copy is one transaction on the target,
// read from one snapshot of the source; writers to the source should be
// stopped first, or the copy is of the moment it began. Copy then
// verifies: the target's audit chain must verify and its Summary must
// equal the source's (ErrCopyMismatch otherwise). It returns the Summary.
func Copy(ctx context.Context, from, to Backend) (Summary, error) {
	var src Summary
	err := to.Load(func(put func(DumpItem) error) error {
		return from.Dump(func(it DumpItem) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := src.add(it); err != nil {
				return err
			}
			return put(it)
		})
	})
	if err != nil {
		return Summary{}, fmt.Errorf("copy %s to %s: %w", from.Location(), to.Location(), err)
	}
	return src, Verify(ctx, src, to)
}

// Verify checks that to holds exactly what want summarizes and that its
// audit chain verifies.
func Verify(ctx context.Context, want Summary, to Backend) error {
	if seq, err := to.VerifyAudit(); err != nil {
		return fmt.Errorf("the copy's audit trail does not verify at record %d: %v: %w", seq, err, ErrCopyMismatch)
	}
	if seq, hash, err := to.AuditHead(); err != nil {
		return err
	} else if seq != want.AuditSeq || hash != want.AuditHash {
		return fmt.Errorf("the copy's audit trail ends at record %d (%.12s), the source's at %d (%.12s): %w", seq, hash, want.AuditSeq, want.AuditHash, ErrCopyMismatch)
	}
	got, err := Summarize(ctx, to)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s holds %s; the source holds %s (or the records differ): %w", to.Location(), got, want, ErrCopyMismatch)
	}
	return nil
}
