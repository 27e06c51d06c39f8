package plan

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"
	"weak"
)

// idNotingDir notes where the id strings a build passes to User live.
type idNotingDir struct {
	*memDir
	ids []weak.Pointer[byte]
}

func (d *idNotingDir) User(id string) (User, bool, error) {
	if id != "" {
		d.ids = append(d.ids, weak.Make(unsafe.StringData(id)))
	}
	return d.memDir.User(id)
}

// A build's identity problems outlive it: status keeps the last full run's
// in memory until the next. The build keeps every user id it met and every
// email it granted in arenas of its own (a user's row, a member's row
// point into them); a problem whose strings point there keeps both arenas
// live between runs, tens of megabytes at a million users. Problems must
// hold their own copies.
func TestIdentityProblemsKeepNoBuildArenaAlive(t *testing.T) {
	problems, ids, emails := func() ([]IdentityProblem, []weak.Pointer[byte], weak.Pointer[byte]) {
		dir := newDir().group("g", "Everyone", "")
		for i := range 5000 {
			id := fmt.Sprintf("u%04d", i)
			email := fmt.Sprintf("user%04d@example.com", i)
			switch i {
			case 1: // the same address as user 0, in other letters
				email = "USER0000@example.com"
			case 2:
				email = "not an address"
			}
			dir.user(id, email, true, at(0)).member("g", id, at(0))
		}
		nd := &idNotingDir{memDir: dir}
		d := mustBuild(t, nd, resolved(rm(0, "Everyone", prod, "role:a")), nil, nil, at(1))
		dm, ok := d.Accounts[prod].Get("user0003@example.com")
		if !ok {
			t.Fatal("user0003 is not wanted")
		}
		return d.Problems, nd.ids, weak.Make(unsafe.StringData(dm.Email))
	}()
	if len(problems) != 2 {
		t.Fatalf("problems %+v; want one shared and one invalid address", problems)
	}
	runtime.GC()
	runtime.GC()
	if emails.Value() != nil {
		t.Error("the identity problems keep the build's email arena alive")
	}
	for _, id := range ids {
		if id.Value() != nil {
			t.Error("the identity problems keep the build's user-id arena alive")
			break
		}
	}
	runtime.KeepAlive(problems)
}
