package cloudflare

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudflare/cloudflare-go/v7/iam"
	"github.com/cloudflare/cloudflare-go/v7/packages/pagination"
)

// Route templates of the user-group API, as used in errors and by the
// Observer.
const (
	RouteUserGroups       = "/accounts/{account_id}/iam/user_groups"
	RouteUserGroup        = "/accounts/{account_id}/iam/user_groups/{user_group_id}"
	RouteUserGroupMembers = "/accounts/{account_id}/iam/user_groups/{user_group_id}/members"
	RouteUserGroupMember  = "/accounts/{account_id}/iam/user_groups/{user_group_id}/members/{member_id}"
)

// UserGroup is one Cloudflare user group: a named set of account members
// that all hold its policies, on top of their own
// (sync/cloudflare/cftest/testdata/BEHAVIOURS.md, 2).
type UserGroup struct {
	ID       string
	Name     string
	Policies []Policy
}

// GroupMember is one member of a user group. ID is the account member's id
// (the id of ListMembers), which is also how a member is added and removed.
type GroupMember struct {
	ID     string
	Email  string
	Status string // the account member's status: "accepted" or "pending"
}

// ListUserGroups lists every user group of the account, 50 a page (the
// listing's maximum). The listing is complete or it fails
// (ErrIncompleteListing), by the rules of ListMembers: a missing group would
// look like one to create.
func (c *Client) ListUserGroups(ctx context.Context, accountID string) ([]UserGroup, error) {
	if accountID == "" {
		return nil, errors.New("list user groups: account id is empty")
	}
	out, err := listAll(ctx, fmt.Sprintf("list user groups of account %s", accountID),
		func(ctx context.Context, page int) ([]iam.UserGroupListResponse, string, error) {
			p := iam.UserGroupListParams{}
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = perPage, true
			p.Direction.Value, p.Direction.Present = iam.UserGroupListParamsDirectionAsc, true
			var res *pagination.V4PagePaginationArray[iam.UserGroupListResponse]
			err := do(ctx, RouteUserGroups, func(ctx context.Context) (err error) {
				res, err = c.userGroups.List(ctx, p)
				return err
			})
			if err != nil {
				return nil, "", err
			}
			return res.Result, res.JSON.RawJSON(), nil
		},
		func(g iam.UserGroupListResponse) string { return g.ID })
	if err != nil {
		return nil, err
	}
	groups := make([]UserGroup, 0, len(out))
	for _, g := range out {
		ug := UserGroup{ID: g.ID, Name: g.Name}
		for _, p := range g.Policies {
			pol := Policy{Access: string(p.Access)}
			for _, pg := range p.PermissionGroups {
				pol.PermissionGroups = append(pol.PermissionGroups, pg.ID)
			}
			for _, rg := range p.ResourceGroups {
				pol.ResourceGroups = append(pol.ResourceGroups, rg.ID)
			}
			ug.Policies = append(ug.Policies, pol)
		}
		groups = append(groups, ug)
	}
	return groups, nil
}

// CreateUserGroup creates a user group named name holding policies (none
// is allowed) and returns its id. Cloudflare does not refuse a second group
// of the same name: ownership is by id.
func (c *Client) CreateUserGroup(ctx context.Context, accountID, name string, policies []Policy) (UserGroup, error) {
	if strings.TrimSpace(name) == "" {
		return UserGroup{}, fmt.Errorf("create user group in account %s: the name is empty", accountID)
	}
	p := iam.UserGroupNewParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	p.Name.Value, p.Name.Present = name, true
	ps := make([]iam.UserGroupNewParamsPolicy, 0, len(policies))
	for _, pol := range policies {
		x := iam.UserGroupNewParamsPolicy{}
		x.Access.Value, x.Access.Present = iam.UserGroupNewParamsPoliciesAccess(access(pol)), true
		pgs := make([]iam.UserGroupNewParamsPoliciesPermissionGroup, len(pol.PermissionGroups))
		for i, id := range pol.PermissionGroups {
			pgs[i].ID.Value, pgs[i].ID.Present = id, true
		}
		rgs := make([]iam.UserGroupNewParamsPoliciesResourceGroup, len(pol.ResourceGroups))
		for i, id := range pol.ResourceGroups {
			rgs[i].ID.Value, rgs[i].ID.Present = id, true
		}
		x.PermissionGroups.Value, x.PermissionGroups.Present = pgs, true
		x.ResourceGroups.Value, x.ResourceGroups.Present = rgs, true
		ps = append(ps, x)
	}
	p.Policies.Value, p.Policies.Present = ps, true
	var g *iam.UserGroupNewResponse
	err := do(ctx, RouteUserGroups, func(ctx context.Context) (err error) {
		g, err = c.userGroups.New(ctx, p)
		return err
	})
	if err != nil {
		return UserGroup{}, fmt.Errorf("create user group %q in account %s: %w", name, accountID, err)
	}
	if g.ID == "" {
		return UserGroup{}, fmt.Errorf("create user group %q in account %s: the answer carries no group id", name, accountID)
	}
	return UserGroup{ID: g.ID, Name: g.Name, Policies: clonePolicies(policies)}, nil
}

// UpdateUserGroup sets the group's name and replaces all its policies in
// one PUT (an empty policies list leaves the group none). ErrNotFound when
// the group is gone; ErrGroupNotManageable when Cloudflare refuses to
// rename a group its own SCIM manages.
func (c *Client) UpdateUserGroup(ctx context.Context, accountID, groupID, name string, policies []Policy) (UserGroup, error) {
	if strings.TrimSpace(name) == "" {
		return UserGroup{}, fmt.Errorf("update user group %s of account %s: the name is empty", groupID, accountID)
	}
	p := iam.UserGroupUpdateParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	p.Name.Value, p.Name.Present = name, true
	ps := make([]iam.UserGroupUpdateParamsPolicy, 0, len(policies))
	for _, pol := range policies {
		// No policy id: the PUT replaces the whole set, and Cloudflare
		// takes policies without one (BEHAVIOURS.md 2a, AMENDMENTS.md 12).
		x := iam.UserGroupUpdateParamsPolicy{}
		x.Access.Value, x.Access.Present = iam.UserGroupUpdateParamsPoliciesAccess(access(pol)), true
		pgs := make([]iam.UserGroupUpdateParamsPoliciesPermissionGroup, len(pol.PermissionGroups))
		for i, id := range pol.PermissionGroups {
			pgs[i].ID.Value, pgs[i].ID.Present = id, true
		}
		rgs := make([]iam.UserGroupUpdateParamsPoliciesResourceGroup, len(pol.ResourceGroups))
		for i, id := range pol.ResourceGroups {
			rgs[i].ID.Value, rgs[i].ID.Present = id, true
		}
		x.PermissionGroups.Value, x.PermissionGroups.Present = pgs, true
		x.ResourceGroups.Value, x.ResourceGroups.Present = rgs, true
		ps = append(ps, x)
	}
	p.Policies.Value, p.Policies.Present = ps, true
	var g *iam.UserGroupUpdateResponse
	err := do(ctx, RouteUserGroup, func(ctx context.Context) (err error) {
		g, err = c.userGroups.Update(ctx, groupID, p)
		return err
	})
	if err != nil {
		return UserGroup{}, fmt.Errorf("update user group %s of account %s: %w", groupID, accountID, err)
	}
	return UserGroup{ID: g.ID, Name: g.Name, Policies: clonePolicies(policies)}, nil
}

// DeleteUserGroup deletes the group; its members lose what it granted.
// ErrNotFound when it is already gone, ErrGroupNotManageable when
// Cloudflare's SCIM manages it.
func (c *Client) DeleteUserGroup(ctx context.Context, accountID, groupID string) error {
	p := iam.UserGroupDeleteParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	err := do(ctx, RouteUserGroup, func(ctx context.Context) error {
		_, err := c.userGroups.Delete(ctx, groupID, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user group %s of account %s: %w", groupID, accountID, err)
	}
	return nil
}

// ListUserGroupMembers lists every member of the group, 50 a page, ordered
// by email. A full scan costs ⌈members/50⌉ requests. The listing is
// complete or it fails (ErrIncompleteListing): a missing member would look
// like one to add, an extra one like one to remove. ErrNotFound when the
// group is gone.
func (c *Client) ListUserGroupMembers(ctx context.Context, accountID, groupID string) ([]GroupMember, error) {
	if accountID == "" || groupID == "" {
		return nil, errors.New("list user group members: account or group id is empty")
	}
	// Page by page into GroupMembers, strings copied, as ListMembers does:
	// a user group can hold every member of the account.
	return listAll(ctx, fmt.Sprintf("list members of user group %s of account %s", groupID, accountID),
		func(ctx context.Context, page int) ([]GroupMember, string, error) {
			p := iam.UserGroupMemberListParams{}
			p.AccountID.Value, p.AccountID.Present = accountID, true
			p.Page.Value, p.Page.Present = float64(page), true
			p.PerPage.Value, p.PerPage.Present = perPage, true
			p.Direction.Value, p.Direction.Present = iam.UserGroupMemberListParamsDirectionAsc, true
			var res *pagination.V4PagePaginationArray[iam.UserGroupMemberListResponse]
			err := doBulk(ctx, RouteUserGroupMembers, func(ctx context.Context) (err error) {
				res, err = c.userGroups.Members.List(ctx, groupID, p)
				return err
			})
			if err != nil {
				return nil, "", err
			}
			ms := make([]GroupMember, len(res.Result))
			for i, m := range res.Result {
				ms[i] = GroupMember{ID: strings.Clone(m.ID), Email: strings.Clone(strings.TrimSpace(m.Email)), Status: status(string(m.Status))}
			}
			return ms, res.JSON.RawJSON(), nil
		},
		func(m GroupMember) string { return m.ID })
}

// AddUserGroupMembers adds account members (by account member id) to the
// group in one request; members already in it stay. Nothing is sent for
// an empty list. ErrPendingMember when Cloudflare refuses a member that
// has not accepted its invitation (then none of them joined);
// ErrGroupNotManageable for a group Cloudflare's SCIM manages; ErrNotFound
// when the group or a member is gone.
func (c *Client) AddUserGroupMembers(ctx context.Context, accountID, groupID string, memberIDs []string) error {
	if len(memberIDs) == 0 {
		return nil
	}
	p := iam.UserGroupMemberNewParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	for _, id := range memberIDs {
		m := iam.UserGroupMemberNewParamsMember{}
		m.ID.Value, m.ID.Present = id, true
		p.Members = append(p.Members, m)
	}
	err := do(ctx, RouteUserGroupMembers, func(ctx context.Context) error {
		_, err := c.userGroups.Members.New(ctx, groupID, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("add %d member(s) to user group %s of account %s: %w", len(memberIDs), groupID, accountID, err)
	}
	return nil
}

// RemoveUserGroupMember removes one account member (by account member id)
// from the group. ErrNotFound when it is not in the group (or the group is
// gone): the caller may take that as done. ErrGroupNotManageable for a
// group Cloudflare's SCIM manages.
func (c *Client) RemoveUserGroupMember(ctx context.Context, accountID, groupID, memberID string) error {
	p := iam.UserGroupMemberDeleteParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	err := do(ctx, RouteUserGroupMember, func(ctx context.Context) error {
		_, err := c.userGroups.Members.Delete(ctx, groupID, memberID, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove member %s from user group %s of account %s: %w", memberID, groupID, accountID, err)
	}
	return nil
}

func clonePolicies(ps []Policy) []Policy {
	var out []Policy
	for _, p := range ps {
		out = append(out, Policy{Access: access(p),
			PermissionGroups: append([]string(nil), p.PermissionGroups...),
			ResourceGroups:   append([]string(nil), p.ResourceGroups...)})
	}
	return out
}
