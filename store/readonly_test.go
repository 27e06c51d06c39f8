package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOpenReadOnlyNeverCreatesNorWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := OpenReadOnly(path); !errors.Is(err, ErrNoStateFile) {
		t.Fatalf("OpenReadOnly of a missing file: %v, want ErrNoStateFile", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("OpenReadOnly created %s", path)
	}
	st, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutToken(Token{Name: "okta", Hash: []byte("h"), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if toks, err := ro.Tokens(); err != nil || len(toks) != 1 {
		t.Fatalf("Tokens = %v, %v", toks, err)
	}
	if err := ro.PutToken(Token{Name: "other", Hash: []byte("h"), CreatedAt: time.Now()}); err == nil {
		t.Error("a write through a read-only store succeeded")
	}
}
