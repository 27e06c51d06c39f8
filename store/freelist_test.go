package store

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// freelistPage reads, from the newer of a bbolt file's two meta pages,
// the page its list of free pages starts at; noFreelist when commits do
// not write one.
func freelistPage(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A meta page: 16-byte page header, then magic, version, page size and
	// flags (4 bytes each), the root bucket (16), the free list's page,
	// the high-water page and the transaction id (8 each).
	pageSize := int(binary.LittleEndian.Uint32(f[16+8:]))
	var best, txid uint64
	for _, at := range []int{0, pageSize} {
		m := f[at+16:]
		if id := binary.LittleEndian.Uint64(m[48:]); id >= txid {
			txid, best = id, binary.LittleEndian.Uint64(m[32:])
		}
	}
	return best
}

const noFreelist = ^uint64(0)

// TestStateFileListsItsFreePagesOnlyWhenClosed: commits do not write the
// list of free pages (a long-lived file's list was hundreds of pages,
// written by every commit), Close does (so that the next Open reads it
// rather than walking the whole file), and the first commit after the
// next Open drops it again. A file left without Close opens too: bbolt
// walks it, and finds the same free pages.
func TestStateFileListsItsFreePagesOnlyWhenClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	churn := func(s *BoltStore) {
		t.Helper()
		scratch := []byte("test/scratch")
		if err := s.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(scratch)
			if err != nil {
				return err
			}
			for i := range 2000 {
				if err := b.Put(binary.BigEndian.AppendUint32(nil, uint32(i)), make([]byte, 2000)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(scratch) }); err != nil {
			t.Fatal(err)
		}
		// The pages the delete freed are free once a later write begins.
		if err := s.PutStatus("k", []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	churn(s)
	if got := freelistPage(t, path); got != noFreelist {
		t.Fatalf("a commit wrote the list of free pages (at page %d)", got)
	}
	free := s.db.Stats().FreePageN
	if free < 500 {
		t.Fatalf("setup: %d free pages, want hundreds", free)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := freelistPage(t, path); got == noFreelist {
		t.Fatal("Close left no list of free pages: the next Open walks the whole file")
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Less the pages the list itself took.
	if got := s.db.Stats().FreePageN; got < free-8 {
		t.Fatalf("reopened with %d free pages, closed with %d", got, free)
	}
	if err := s.PutStatus("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got := freelistPage(t, path); got != noFreelist {
		t.Fatalf("the first commit after Open kept the list of free pages (at page %d)", got)
	}
	// Left without Close: the next Open walks the file.
	churn(s)
	free = s.db.Stats().FreePageN
	if err := s.db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.db.Stats().FreePageN; got < free-8 {
		t.Fatalf("walked the file and found %d free pages, left with %d", got, free)
	}
}
