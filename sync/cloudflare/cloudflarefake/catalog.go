package cloudflarefake

import (
	"fmt"
	"slices"
)

// RemoveRole deletes a role from the account's catalog, as when Cloudflare
// retires one; false when there was none by that name. Members keep the
// id, and a write naming it is refused as Cloudflare refuses it: HTTP 400,
// code 1001, "Invalid role assignments found".
func (s *Server) RemoveRole(accountID, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	for i, n := range a.roles {
		if n.Name == name {
			a.roles = slices.Delete(a.roles, i, i+1)
			return true
		}
	}
	return false
}

// ReplaceRole gives the named role a new id, as when Cloudflare retires a
// role and introduces its successor under the same name, and returns the
// new id. The old id is then unknown to the account. It fails the test
// when the account has no role by that name.
func (s *Server) ReplaceRole(accountID, name string) string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	for i, n := range a.roles {
		if n.Name == name {
			s.seq++
			a.roles[i].ID = catalogID("role", fmt.Sprint("replaced ", s.seq), name)
			return a.roles[i].ID
		}
	}
	s.t.Fatalf("cloudflarefake: account %s has no role %q", accountID, name)
	return ""
}
