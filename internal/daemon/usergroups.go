package daemon

import (
	"errors"

	"github.com/scimflare/scimflare/store"
)

// fencedState passes the ownership of user groups (accounts[].model:
// user_groups) through to the backend; a write first proves the term, as
// every Cloudflare write does.

func (f fencedState) userGroups() (store.UserGroupState, error) {
	ug, ok := f.State.(store.UserGroupState)
	if !ok {
		return nil, errors.New("the state backend cannot record owned user groups")
	}
	return ug, nil
}

// OwnedUserGroups implements store.UserGroupState.
func (f fencedState) OwnedUserGroups(accountID string) ([]store.OwnedUserGroup, error) {
	ug, err := f.userGroups()
	if err != nil {
		return nil, err
	}
	return ug.OwnedUserGroups(accountID)
}

// PutOwnedUserGroup implements store.UserGroupState.
func (f fencedState) PutOwnedUserGroup(g store.OwnedUserGroup, audit ...store.AuditRecord) error {
	ug, err := f.userGroups()
	if err != nil {
		return err
	}
	if err := f.Fence(); err != nil {
		return err
	}
	return ug.PutOwnedUserGroup(g, audit...)
}

// DeleteOwnedUserGroup implements store.UserGroupState.
func (f fencedState) DeleteOwnedUserGroup(accountID, key string, audit ...store.AuditRecord) error {
	ug, err := f.userGroups()
	if err != nil {
		return err
	}
	if err := f.Fence(); err != nil {
		return err
	}
	return ug.DeleteOwnedUserGroup(accountID, key, audit...)
}

var _ store.UserGroupState = fencedState{}
