package cloudflare

import (
	"context"
	"fmt"

	"github.com/cloudflare/cloudflare-go/v7/accounts"
	"github.com/cloudflare/cloudflare-go/v7/shared"
)

// In user-groups mode (accounts[].model: user_groups) a member's standing
// access comes from the user groups it is in; the member itself holds no
// policy of its own unless a temporary grant gives it one. The member API
// takes such a member as the policies shape with an empty list: the schema
// requires the `policies` key and sets no minimum on its items
// (iam_create-member-with-policies, iam_update-member-with-policies).

// InviteMemberWithoutGrants invites email with no roles or policies of its
// own (`"policies": []`). ErrAlreadyMember when the email already is a
// member or has a pending invite.
func (c *Client) InviteMemberWithoutGrants(ctx context.Context, accountID, email string) (Member, error) {
	p := accounts.MemberNewParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	b := accounts.MemberNewParamsBodyIAMCreateMemberWithPolicies{}
	b.Email.Value, b.Email.Present = email, true
	b.Policies.Value, b.Policies.Present = []accounts.MemberNewParamsBodyIAMCreateMemberWithPoliciesPolicy{}, true
	p.Body = b
	var m *shared.Member
	err := do(ctx, RouteMembers, func(ctx context.Context) (err error) {
		m, err = c.members.New(ctx, p)
		return err
	})
	if err != nil {
		return Member{}, fmt.Errorf("create member %s in account %s: %w", email, accountID, err)
	}
	return memberFrom(*m, accountID), nil
}

// ClearMemberGrants replaces the member's roles and policies with none
// (`"policies": []`): what remains is the access of its user groups.
// ErrNotFound when the member is gone.
func (c *Client) ClearMemberGrants(ctx context.Context, accountID, memberID string) (Member, error) {
	p := accounts.MemberUpdateParams{}
	p.AccountID.Value, p.AccountID.Present = accountID, true
	b := accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPolicies{}
	b.Policies.Value, b.Policies.Present = []accounts.MemberUpdateParamsBodyIAMUpdateMemberWithPoliciesPolicy{}, true
	p.Body = b
	var m *shared.Member
	err := do(ctx, RouteMember, func(ctx context.Context) (err error) {
		m, err = c.members.Update(ctx, memberID, p)
		return err
	})
	if err != nil {
		return Member{}, fmt.Errorf("update member %s of account %s: %w", memberID, accountID, err)
	}
	return memberFrom(*m, accountID), nil
}
